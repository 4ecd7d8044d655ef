"""``evolution``: regularized (aging) evolution with feasibility (Real et al., AAAI 2019).

Algorithm 1 of the paper, with the population read off the told history so that the strategy is a
pure function of (seed, history):

1. The first ``population_size`` proposals are the teacher configuration and random admissible
   samples (the initial population).
2. Afterwards the population is the ``population_size`` most recently told observations (aging:
   the oldest dies when a child is told, whatever its fitness).
3. A child is proposed by tournament selection: draw ``sample_size`` members uniformly, take the
   fittest as parent, mutate one block (or two, with probability ``p_two``) to another candidate.

Fitness for a target epsilon ``e`` (in a sweep, the epsilon that ``Strategy.target_epsilon`` picks for the proposal) is the key
``(0, cost)`` for members feasible at ``e`` and ``(1, violation, cost)`` otherwise, where
``violation = quality - e`` (``inf`` for failed evaluations): feasible members always win, cheaper
is fitter, infeasible members are penalised by how far they miss.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import Observation, Strategy, StrategyError, register_strategy

__all__ = ["RegularizedEvolution"]


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    """Regularized evolution with tournament selection, one/two-block mutations and aging.

    Options:
        population_size: number of living members (the most recent observations).
        sample_size: tournament size.
        p_two: probability that a mutation changes two blocks instead of one.
        max_tries: mutation attempts per child before falling back to a random configuration.

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> from tocsr_nas.strategies import Problem, make_strategy
        >>> space = SearchSpace.from_choices({f"b{i}": ["t", "s"] for i in range(4)})
        >>> s = make_strategy("evolution", Problem(space, cost=lambda c: 1.0, epsilons=(0.1,)), population_size=4)
        >>> len(s.ask(3))
        3
    """

    @dataclass(frozen=True)
    class Options:
        population_size: int = 16
        sample_size: int = 4
        p_two: float = 0.3
        max_tries: int = 200

        def __post_init__(self) -> None:
            if not (isinstance(self.population_size, int) and self.population_size >= 2):
                raise StrategyError(f"evolution: population_size must be an integer >= 2, got {self.population_size!r}")
            if not (isinstance(self.sample_size, int) and 1 <= self.sample_size <= self.population_size):
                raise StrategyError(
                    f"evolution: sample_size must be an integer in 1..population_size, got {self.sample_size!r}"
                )
            if not (isinstance(self.p_two, (int, float)) and 0.0 <= self.p_two <= 1.0):
                raise StrategyError(f"evolution: p_two must be in [0, 1], got {self.p_two!r}")
            if not (isinstance(self.max_tries, int) and self.max_tries >= 1):
                raise StrategyError(f"evolution: max_tries must be a positive integer, got {self.max_tries!r}")

    @staticmethod
    def fitness_key(obs: Observation, epsilon: float) -> tuple:
        """Smaller is fitter: feasible by cost, then infeasible by violation and cost."""
        if obs.feasible(epsilon):
            return (0, obs.cost)
        violation = obs.quality - epsilon if math.isfinite(obs.quality) else math.inf
        return (1, violation, obs.cost)

    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        opts = self.options
        out: list[Configuration] = []
        population = self.history[-opts.population_size :]
        n_started = len(self.history) + len(self._pending)
        for j in range(n):
            if n_started + j < opts.population_size or not population:
                out += self._random_unseen(rng, 1, exclude=out)
                continue
            eps = self.target_epsilon(j)
            contenders = [population[rng.randrange(len(population))] for _ in range(opts.sample_size)]
            parent = min(contenders, key=lambda o: self.fitness_key(o, eps))
            child = self._mutate(parent.config, rng, exclude=out)
            if child is None:
                out += self._random_unseen(rng, 1, exclude=out)
            else:
                out.append(child)
        return out

    def _mutate(self, config: Configuration, rng: random.Random, exclude: Sequence[Configuration]) -> Configuration | None:
        blocks = [b for b in self.space.blocks if len(b.choices) > 1]
        if not blocks:
            return None
        for _ in range(self.options.max_tries):
            k = 2 if (len(blocks) > 1 and rng.random() < self.options.p_two) else 1
            changes = {}
            for block in rng.sample(blocks, k):
                others = [c.name for c in block.choices if c.name != config[block.path]]
                changes[block.path] = rng.choice(others)
            child = Configuration({**config, **changes})
            if child not in exclude and not self.is_seen(child) and self.problem.is_admissible(child):
                return child
        return None
