"""How well ecbo's model predicts its own proposals in a real search (``tocsr-nas search``), per epsilon.

Runs the search of ``tocsr-nas search --strategy ecbo`` for several seeds and records, for every
proposal, what the fit behind it predicted: the warped threshold it aimed at (after the
``calib_band`` margin), the posterior mean and sd of the warped quality, and so the probability of
feasibility the acquisition used (the quality model's; with far failures observed, the far model's
``P(not far)`` also weighs the acquisition and is not included). Against the evaluated quality that gives, per epsilon of the
sweep, the calibration of the model on the configurations it chooses (the mean predicted
probability against the fraction feasible, the mean predicted quality against the observed), and
the best configuration's GMACs reduction per seed (teacher / best, the figure ``tocsr-nas search``
prints), with the mean and worst seed.

    .venv/bin/python benchmarks/sweep_trace.py --teacher RUN/teacher --surrogates RUN/surrogates \\
        --epsilon 0.05,0.02,0.1 --seeds 10 --budget 40 [--sweep gain] [--strategy-option KEY=VALUE] [--rows]

The recording wraps ``ECBO._propose_one`` for the duration of the run (a diagnosis, not an API).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from tocsr_nas.commands.search import parse_strategy_option
from tocsr_nas.search.setup import run_search
from tocsr_nas.strategies.ecbo.strategy import ECBO


@contextlib.contextmanager
def recording() -> Iterator[list[dict]]:
    """Record every ecbo proposal's prediction while the context is open (``ECBO._propose_one`` wrapped)."""
    records: list[dict] = []
    original = ECBO._propose_one

    def traced(self, gp, eps, believed, seen, np_rng, gen, thompson=False):
        threshold = float(self._warp(eps))
        aimed = threshold - self._threshold_margin(gp, threshold)
        choice = original(self, gp, eps, believed, seen, np_rng, gen, thompson)
        if choice is not None:
            row, cfg, _ = choice
            mean, var = gp.predict(self._features(row[None]))
            mu, sd = float(mean[0]), math.sqrt(float(var[0]))
            records.append({
                "hash": cfg.hash, "n_told": len(self.history), "epsilon": eps, "model": self.last_selection.get("model", "-"),
                "aimed_q": self._warp.inverse(aimed), "predicted_q": self._warp.inverse(mu),
                "p_feasible": float(norm.cdf((aimed - mu) / sd)),
            })
        return choice

    ECBO._propose_one = traced
    try:
        yield records
    finally:
        ECBO._propose_one = original


def trace_seed(seed: int, out: Path, args: argparse.Namespace) -> tuple[pd.DataFrame, dict[float, float]]:
    """One traced search: its proposals ``(DataFrame)`` joined with the evaluated qualities, and the best
    reduction per epsilon (1.0 where nothing cheaper than the teacher is feasible)."""
    with recording() as records:
        result = run_search(
            teacher=args.teacher, surrogates=args.surrogates, out=out, epsilon=args.epsilon, strategy="ecbo",
            strategy_options=dict(args.strategy_option), budget=args.budget, seed=seed, sweep=args.sweep,
            val_samples=args.val_samples, progress=False, threads=1,
        )
    trials = pd.read_csv(out / "trials.csv", dtype={"hash": str})
    teacher = float(result.teacher["gmacs"])
    by_hash = trials.set_index("hash")
    rows = pd.DataFrame(records, columns=["hash", "n_told", "epsilon", "model", "aimed_q", "predicted_q", "p_feasible"])
    rows["quality"] = [by_hash["quality"].get(h, math.nan) for h in rows["hash"]]
    rows["feasible"] = rows["quality"] <= rows["epsilon"]
    rows["reduction"] = [teacher / by_hash["gmacs"].get(h, math.nan) for h in rows["hash"]]
    rows = rows.drop(columns="hash").assign(seed=seed)
    best = {e: teacher / float(trials.loc[trials["quality"] <= e, "gmacs"].min()) for e in args.epsilon}
    return rows, best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--surrogates", type=Path, required=True)
    p.add_argument("--epsilon", type=lambda s: [float(x) for x in s.split(",")], default=[0.05, 0.02, 0.1])
    p.add_argument("--seeds", type=int, default=10, help="search seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--sweep", choices=("cycle", "gain"), default="cycle")
    p.add_argument("--val-samples", type=int, default=32)
    p.add_argument("--after", type=int, default=8, help="calibration over proposals made from at least this many observations")
    p.add_argument("--strategy-option", type=parse_strategy_option, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--rows", action="store_true", help="print every proposal")
    args = p.parse_args(argv)
    all_rows, best = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows, best[seed] = trace_seed(seed, Path(tmp) / f"s{seed}", args)
            all_rows.append(rows)
    rows = pd.concat(all_rows, ignore_index=True)
    if args.rows:
        print(rows.round(4).to_string())
    late = rows[rows["n_told"] >= args.after]
    print(f"calibration over the proposals made from >= {args.after} observations:")
    for e in args.epsilon:
        r = late[late["epsilon"] == e]
        print(f"  epsilon {e:g}: {len(r)} proposals, predicted P(feasible) {r['p_feasible'].mean():.2f}, "
              f"feasible {r['feasible'].mean():.0%}; predicted quality {r['predicted_q'].mean():.4f}, "
              f"observed {r['quality'].mean():.4f}")
    print("GMACs reduction of the best configuration (teacher / best; 1.00 = the teacher):")
    for e in args.epsilon:
        v = np.array([best[s][e] for s in best])
        print(f"  epsilon {e:g}: mean {v.mean():.2f}x, worst {v.min():.2f}x  [{' '.join(f'{x:.2f}' for x in v)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
