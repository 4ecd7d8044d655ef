"""Small synthetic landscapes for the strategy tests (model-free spaces, exact optima by enumeration).

``chain(blocks, options, seed)``: additive cost; quality = per-block damage + neighbour-pair terms,
with teacher (option 0) = no damage. ``small()`` is the 8 x 3 landscape of the conformance suite,
with one interaction (blocks 2 and 3 together hurt more than apart).
"""

from __future__ import annotations

import math

import numpy as np

from tocsr_nas.searchspace import Configuration, MaxCount, SearchSpace
from tocsr_nas.strategies import Observation, Problem


class Landscape:
    def __init__(self, cost: np.ndarray, damage: np.ndarray, pairs: np.ndarray, epsilon: float, constraints=()) -> None:
        self.cost_table, self.damage, self.pairs, self.epsilon = cost, damage, pairs, epsilon  # (B, K), (B, K), (B-1,)
        B, K = cost.shape
        names = ["teacher"] + [f"c{k}" for k in range(1, K)]
        self.space = SearchSpace.from_choices({f"b{b}": names for b in range(B)}, constraints, name="landscape")

    def idx(self, cfg: Configuration) -> np.ndarray:
        return np.array(self.space.encode(cfg))

    def cost(self, cfg: Configuration) -> float:
        i = self.idx(cfg)
        return float(self.cost_table[np.arange(len(i)), i].sum())

    def quality(self, cfg: Configuration) -> float:
        i = self.idx(cfg)
        d = self.damage[np.arange(len(i)), i]
        s = np.sqrt(d)
        return float(d.sum() + (self.pairs * s[:-1] * s[1:]).sum())

    def problem(self, *, max_cost: float | None = None, prior: bool = False, epsilons=None) -> Problem:
        admissible = (lambda c: self.cost(c) <= max_cost) if max_cost is not None else (lambda c: True)
        table = None
        if prior:
            table = {b.path: {n: float(self.damage[i, k]) for k, n in enumerate(b.names)} for i, b in enumerate(self.space.blocks)}
        return Problem(self.space, cost=self.cost, epsilons=tuple(epsilons or (self.epsilon,)), admissible=admissible, prior=table)

    def observe(self, cfg: Configuration) -> Observation:
        return Observation(cfg, self.quality(cfg), self.cost(cfg))

    def optimum(self, max_cost: float = math.inf) -> float:
        return min(
            self.cost(c) for c in self.space.enumerate() if self.quality(c) <= self.epsilon and self.cost(c) <= max_cost
        )


def chain(blocks: int, options: int, seed: int, *, fraction: float = 0.15, constraints=()) -> Landscape:
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 0.5, size=blocks)
    frac = np.sort(rng.uniform(0.0, 1.0, size=(blocks, options - 1)), axis=1)[:, ::-1]
    frac[:, -1] *= 0.1  # the cheapest option is nearly free
    frac = np.concatenate([np.ones((blocks, 1)), frac], axis=1)  # (B, K), decreasing
    cost = w[:, None] * frac
    sens = rng.lognormal(0.0, 1.0, size=blocks)
    damage = sens[:, None] * (1.0 - frac) ** rng.uniform(0.6, 2.0, size=(blocks, 1)) * rng.lognormal(0, 0.25, size=(blocks, options))
    damage[:, 0] = 0.0
    epsilon = 0.05
    damage *= epsilon / (fraction * damage[:, -1].sum())
    pairs = rng.normal(0.4, 0.3, size=blocks - 1)
    return Landscape(cost, damage, pairs, epsilon, constraints)


def small(constraints=()) -> Landscape:
    """8 blocks x 3 options, one strong interaction between blocks 2 and 3."""
    cost = np.array([[4.0, 2.0, 0.5], [3.0, 1.5, 0.3], [5.0, 2.0, 0.2], [5.0, 2.5, 0.2],
                     [2.0, 1.0, 0.1], [3.0, 1.0, 0.5], [4.0, 3.0, 1.0], [1.0, 0.5, 0.0]])
    damage = np.array([[0, 0.004, 0.02], [0, 0.002, 0.008], [0, 0.006, 0.015], [0, 0.006, 0.015],
                       [0, 0.001, 0.03], [0, 0.003, 0.006], [0, 0.001, 0.003], [0, 0.01, 0.05]])
    pairs = np.zeros(7)
    pairs[2] = 2.0  # blocks 2 and 3 interact
    return Landscape(cost, damage, pairs, 0.03, constraints)


def small_constrained() -> Landscape:
    """``small()`` with a space constraint: at most two blocks at their cheapest option."""
    return small(constraints=[MaxCount(candidate="c2", count=2)])
