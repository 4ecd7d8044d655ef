"""What ecbo's quality model believes on landscape B after a search, against the truth.

Runs one ecbo search on landscape B and prints, for the GP fitted at the end:

* per (block, candidate) cell, the median ratios prior/true and model/prior, separately for the
  cells that appeared in some evaluated configuration ("tried") and the others: the winner's curse
  shows as prior/true < 1 for tried cells, and a model that inflates the prior's scale as
  model/prior > 1 everywhere;
* the model's prediction (mean, sd) at the exact optimum and at the incumbent, in units of epsilon,
  and in how many blocks the two differ.

    .venv/bin/python benchmarks/ecbo_diagnosis.py --seed 0 --budget 40 [--strategy-option prior_rel_sd=null]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import make_problem, paper_landscape  # noqa: E402

from tocsr_nas.commands.search import parse_strategy_option  # noqa: E402
from tocsr_nas.strategies import Observation, make_strategy  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--strategy-option", type=parse_strategy_option, action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    land, _ = paper_landscape()
    _, opt_cfg = land.optimum()
    eps = land.epsilon
    strategy = make_strategy("ecbo", make_problem(land), seed=args.seed, **dict(args.strategy_option))
    for _ in range(args.budget):
        [cfg] = strategy.ask(1)
        strategy.tell([Observation(cfg, land.quality(cfg), land.cost(cfg))])
    strategy.ask(1)  # fit the GP to every observation
    gp = strategy._last_gp
    # the model the last fit chose (warp="auto", use_prior="auto"): warped units are q / epsilon up to 2 epsilon
    print(f"model: {strategy.last_selection['model']}  leave-one-out feasibility scores: "
          + ", ".join(f"{k} {v:.2f}" for k, v in strategy.last_selection["scores"].items()))
    U = gp.chain_tables(0).U[0].numpy()  # posterior mean of the per-cell terms (warped = q / epsilon)
    tried = np.zeros(U.shape, dtype=bool)
    for obs in strategy.history:
        tried[np.arange(U.shape[0]), land.space.encode(obs.config)] = True
    cells = [(tried[b, k], land.damage[b][k] / eps, land.prior_table[b][k] / eps, U[b, k] - U[b, 0])
             for b in range(U.shape[0]) for k in range(1, len(land.block_cost[b]))]
    cells = np.array(cells, dtype=float)
    for flag, name in ((1.0, "tried"), (0.0, "untried")):
        c = cells[cells[:, 0] == flag]
        print(f"{name:>8} cells: {len(c):3d}  median prior/true {np.median(c[:, 2] / c[:, 1]):.2f}  "
              f"median model/prior {np.median(c[:, 3] / c[:, 2]):.2f}")
    incumbent = strategy.best_feasible(eps)
    for label, cfg in (("optimum", opt_cfg), ("incumbent", incumbent.config)):
        mean, var = gp.predict(strategy._features(np.array([land.space.encode(cfg)])))
        print(f"{label:>9}: true quality {land.quality(cfg) / eps:.3f} eps, model {float(mean):.3f} "
              f"+- {math.sqrt(float(var)):.3f} eps, cost {land.cost(cfg):.1f} GMACs")
    apart = sum(a != b for a, b in zip(land.space.encode(opt_cfg), land.space.encode(incumbent.config)))
    print(f"the incumbent differs from the optimum in {apart} of {U.shape[0]} blocks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
