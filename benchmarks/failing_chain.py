"""``failures_far`` on a failing landscape it was not chosen on: ecbo with the option off and on.

The landscape: ``chain(8, 4, seed)`` (``tocsr_nas.strategies.testing``: additive damage with
neighbour pairs, no prior given) whose configurations with at least ``3 + seed % 2`` cheap blocks
(option index 2 or 3) fail to evaluate (quality ``nan``). The stress landscape ``failing``, on
which the option was chosen, fails below a cost and where two given blocks are both skipped
instead. Prints the regret per seed at 10 / 20 / 40 evaluations and the medians.

    .venv/bin/python benchmarks/failing_chain.py [--seeds 8] [--budget 40]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from tocsr_nas.strategies import Problem, make_strategy
from tocsr_nas.strategies.testing import Landscape, chain


class FailingChain(Landscape):
    """A chain landscape whose configurations with ``cheap`` or more cheap blocks fail (``nan``)."""

    cheap = 3

    def quality(self, cfg):
        return float("nan") if (self.idx(cfg) >= 2).sum() >= self.cheap else super().quality(cfg)


def failing_chain(seed: int) -> FailingChain:
    """The landscape of ``seed``."""
    base = chain(8, 4, seed)
    land = FailingChain(base.cost_table, base.damage, base.pairs, base.epsilon)
    land.cheap = 3 + seed % 2
    return land


def regrets(land: FailingChain, seed: int, budget: int, budgets: list[int], **options) -> dict[int, float]:
    """ecbo's regret (best feasible cost over the optimum, minus 1) after each of ``budgets`` evaluations."""
    optimum = land.optimum()
    strategy = make_strategy("ecbo", Problem(land.space, cost=land.cost, epsilons=(land.epsilon,)), seed=seed, **options)
    best, out = np.inf, {}
    for t in range(1, budget + 1):
        [cfg] = strategy.ask(1)
        obs = land.observe(cfg)
        strategy.tell([obs])
        if obs.quality <= land.epsilon:
            best = min(best, obs.cost)
        if t in budgets:
            out[t] = best / optimum - 1.0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--budget", type=int, default=40)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    budgets = [b for b in (10, 20, 40, 80, 160) if b <= args.budget] or [args.budget]
    table: dict[bool, list[dict[int, float]]] = {False: [], True: []}
    for seed in range(args.seeds):
        land = failing_chain(seed)
        for on in (False, True):
            table[on].append(regrets(land, seed, args.budget, budgets, failures_far=on))
            print(f"seed {seed} failures_far={str(on).lower():5s} " + "  ".join(f"@{b}: {table[on][-1][b]:6.1%}" for b in budgets))
    for on in (False, True):
        print(f"median failures_far={str(on).lower():5s} " + "  ".join(f"@{b}: {np.median([r[b] for r in table[on]]):6.1%}" for b in budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
