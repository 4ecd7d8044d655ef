"""One ecbo search traced evaluation by evaluation on a stress or probe landscape or a real table (where and why it stalls).

Per evaluation: the quality in units of epsilon, the cost as a fraction of the teacher's, the
regret so far, the model the last fit chose (``strategy.last_selection``), and in how many blocks
the proposal differs from the optimum and from the incumbent, and what that fit's model predicted
for the optimum (posterior mean and sd of the warped quality, over the warped threshold: above 1
means the model believed the optimum infeasible) and the acquisition (``log((c* - c)^+ P^gamma)``,
:meth:`ECBO._score`) that fit gave the proposal and the optimum: an optimum that scores above the
proposal was missed by the pool, one that scores below it by the model. At the end: the blocks in
which the best feasible configuration found differs from the optimum (choice indices).

    .venv/bin/python benchmarks/ecbo_trace.py --landscape chain30 --seed 0 --budget 40 [--strategy-option cost_prior=true]
    .venv/bin/python benchmarks/ecbo_trace.py --landscape chain30 --landscape-seed 103 --seed 3   # run.py --instances' pairing
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import make_problem  # noqa: E402
from probe_landscapes import PROBE, probe_landscape  # noqa: E402
from stress_landscapes import STRESS, stress_landscape  # noqa: E402
from table_landscapes import TABLES, table_landscape  # noqa: E402

from tocsr_nas.commands.search import parse_strategy_option  # noqa: E402
from tocsr_nas.strategies import Observation, make_strategy  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--landscape", default="chain30", help=f"one of {', '.join(STRESS)}, a probe landscape "
                   f"({', '.join(PROBE)}) or a table: {', '.join(TABLES)} (NAME@qQ)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--landscape-seed", type=int, default=0, help="a stress or probe landscape's instance (run.py --landscape-seed; "
                   "with --instances search seed s meets instance landscape-seed + s)")
    p.add_argument("--no-prior", action="store_true", help="withhold the landscape's prior (run.py's 'ecbo-noprior')")
    p.add_argument("--strategy-option", type=parse_strategy_option, action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.landscape in STRESS:
        land = stress_landscape(args.landscape, args.landscape_seed)
    elif args.landscape in PROBE:
        land = probe_landscape(args.landscape, args.landscape_seed)
    else:
        land = table_landscape(args.landscape)
    opt, opt_cfg = land.optimum()
    teacher = land.cost(land.space.default_config())
    optimum = np.array(land.space.encode(opt_cfg))
    strategy = make_strategy("ecbo", make_problem(land, with_prior=not args.no_prior), seed=args.seed, **dict(args.strategy_option))
    best, incumbent, infeasible = math.inf, None, 0
    for t in range(args.budget):
        c_star = best
        [cfg] = strategy.ask(1)
        q, c = land.quality(cfg), land.cost(cfg)
        strategy.tell([Observation(cfg, q, c)])
        idx = np.array(land.space.encode(cfg))
        to_inc = int((idx != incumbent).sum()) if incumbent is not None else -1
        if q <= land.epsilon and c < best:
            best, incumbent = c, idx
        infeasible += not q <= land.epsilon
        at_opt = "-"
        if getattr(strategy, "_last_gp", None) is not None:  # set by every fit (the first proposal is random)
            mu, var = strategy._last_gp.predict(strategy._features(optimum[None]))
            thr = float(strategy._warp(land.epsilon))
            at_opt = f"{float(mu[0]) / thr:5.2f} +- {float(var[0]) ** 0.5 / thr:4.2f}"
            if math.isfinite(c_star):  # the acquisition of the fit behind this proposal: proposal vs optimum
                t_eff = thr - strategy._threshold_margin(strategy._last_gp, thr)
                acq, _ = strategy._score(strategy._last_gp, np.stack([idx, optimum]), c_star, t_eff)
                at_opt += f"  acq prop {acq[0]:7.2f} opt {acq[1]:7.2f}"
        print(f"{t:3d}  q/eps {q / land.epsilon:7.2f}  cost/teacher {c / teacher:.3f}  regret {best / opt - 1:7.1%}  "
              f"model {strategy.last_selection.get('model', '-'):12s}  blocks from optimum {int((idx != optimum).sum()):2d}"
              f"  from incumbent {to_inc:2d}  model at optimum {at_opt}")
    print(f"infeasible proposals: {infeasible} of {args.budget}")
    print("optimum  ", optimum.tolist())
    print("incumbent", incumbent.tolist())
    names = land.space.blocks
    for b in np.nonzero(optimum != incumbent)[0]:
        print(f"  block {b}: optimum {names[b].names[optimum[b]]}, incumbent {names[b].names[incumbent[b]]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
