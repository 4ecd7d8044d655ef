"""Search efficiency on a synthetic landscape whose constrained optimum is known exactly.

The landscape (``--blocks`` blocks in a chain, ``--options`` candidates each, option 0 = teacher):

* cost, additive: block ``b`` costs ``w_b * f_{b,k}`` with ``w_b`` log-normal block sizes and
  ``1 = f_{b,0} > f_{b,1} > ... >= 0`` (the last option nearly free, like skipping the block);
* quality loss, additive over blocks plus neighbour interactions plus bounded noise::

      q(x) = sum_b d_b[x_b] + sum_b g_b * s(x_b) * s(x_{b+1}) + a * u(x)

  ``d_b[k] = sens_b * (1 - f_{b,k})^p_b * r_{b,k}`` (block sensitivity, diminishing or
  increasing returns, jitter), ``s(k) = sqrt(d_b[k])`` of each side and ``g_b`` mostly positive
  (compounding damage of neighbours), ``u(x) in [-1, 1]`` a hash of the configuration (deterministic
  "noise", ``a`` = 2% of epsilon); ``q(teacher) = 0``.
* prior (what the distillation losses would tell): ``d_b[k] * exp(N(0, prior_noise))``.

The exact optimum ``min cost s.t. q <= epsilon`` comes from a dynamic programme over the chain
(state = previous block's choice) that keeps, per state, every partial configuration not dominated
*with margin* ``2a`` (a partial ``y`` dominates ``x`` if it is no dearer and at least ``2a`` less
damaging: then for every completion ``y + s`` is no dearer than ``x + s`` and, the noise being at
most ``a`` either way, feasible whenever ``x + s`` is); the survivors are scanned in cost order with
the exact (noisy) quality.

Run (writes CSV + PNG under --out)::

    .venv/bin/python benchmarks/synthetic_landscape.py --seeds 5 --budgets 20,40,80 \
        --strategies ecbo,random,evolution,nni-tpe,optuna-gp --out benchmarks/results/synthetic

Regret = best feasible cost found / optimum - 1 (``inf`` while nothing feasible was found).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from tocsr_nas.searchspace import SearchSpace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from landscapes import ChainLandscape, make_problem  # noqa: E402  (landscape B's chain model and its exact optimum)
from run import run_search  # noqa: E402  (benchmarks/run.py: one search loop for every landscape)

logger = logging.getLogger("synthetic_landscape")


class Landscape:
    """A synthetic ``blocks x options`` landscape: a :class:`~landscapes.ChainLandscape` (landscape B's
    quality model, evaluation and exact optimum) with its own block costs and damage scale."""

    @staticmethod
    def make(
        blocks: int = 24,
        options: int = 4,
        *,
        epsilon: float = 0.05,
        budget_fraction: float = 0.12,
        prior_noise: float = 0.5,
        seed: int = 0,
    ) -> ChainLandscape:
        """Draw a landscape; damages are scaled so that ``epsilon`` buys roughly half the savings.

        ``budget_fraction``: epsilon as a fraction of the all-cheapest configuration's additive damage.
        """
        rng = np.random.default_rng(seed)
        names = ["teacher"] + [f"c{k}" for k in range(1, options)]
        space = SearchSpace.from_choices({f"block{b:02d}": names for b in range(blocks)}, name="synthetic")
        w = rng.lognormal(0.0, 0.6, size=blocks)  # (B,)
        frac = np.sort(rng.uniform(0.0, 1.0, size=(blocks, options - 1)), axis=1)[:, ::-1]
        frac[:, -1] *= 0.1  # the last option is nearly free
        frac = np.concatenate([np.ones((blocks, 1)), frac], axis=1)  # (B, K), decreasing
        block_cost = w[:, None] * frac
        sens = rng.lognormal(0.0, 1.0, size=blocks)
        power = rng.uniform(0.6, 2.0, size=blocks)
        jitter = rng.lognormal(0.0, 0.25, size=(blocks, options))
        damage = sens[:, None] * (1.0 - frac) ** power[:, None] * jitter
        damage[:, 0] = 0.0
        pair_gain = rng.normal(0.4, 0.3, size=blocks - 1)
        # scale: epsilon = budget_fraction of the all-cheapest additive damage
        damage *= epsilon / (budget_fraction * damage[:, -1].sum())
        prior = damage * rng.lognormal(0.0, prior_noise, size=damage.shape)
        prior[:, 0] = 0.0
        return ChainLandscape("synthetic", space, list(block_cost), list(damage), pair_gain, 0.02 * epsilon,
                              epsilon, list(prior), seed)


# -- running strategies ---------------------------------------------------------------------------
def run_strategy(land: ChainLandscape, name: str, seed: int, budget: int, *, with_prior: bool = True) -> dict:
    """One search: the best-feasible-cost curve, feasibility flags and proposal times (``run.run_search``)."""
    return run_search(land, name, seed, budget, problem=make_problem(land, with_prior=with_prior))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=24)
    parser.add_argument("--options", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="20,40,80")
    parser.add_argument("--strategies", default="ecbo,ecbo-noprior,random,evolution,nni-tpe,optuna-gp")
    parser.add_argument("--landscape-seed", type=int, default=None, help="one landscape for all seeds (default: one per seed)")
    parser.add_argument("--out", default="benchmarks/results/synthetic")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("nni").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(1)  # small matrices: one thread is fastest, and fair to every strategy
    budgets = [int(b) for b in args.budgets.split(",")]
    budget = max(budgets)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], {}
    for seed in range(args.seeds):
        land = Landscape.make(args.blocks, args.options, seed=args.landscape_seed if args.landscape_seed is not None else seed)
        opt, opt_cfg = land.optimum()
        teacher_cost = land.cost(land.space.default_config())
        logger.info("landscape %d: optimum cost %.4f (teacher %.4f, ratio %.3f)", seed, opt, teacher_cost, opt / teacher_cost)
        for label in args.strategies.split(","):
            name, with_prior = (label[: -len("-noprior")], False) if label.endswith("-noprior") else (label, True)
            t0 = time.perf_counter()
            res = run_strategy(land, name, seed, budget, with_prior=with_prior)
            regret = [c / opt - 1.0 for c in res["curve"]]
            curves.setdefault(label, []).append(regret)
            within = next((i + 1 for i, r in enumerate(regret) if r <= 0.01), None)
            row = {"strategy": label, "seed": seed, "optimum": opt, "teacher_cost": teacher_cost,
                   "evals_to_1pct": within if within is not None else "",
                   "feasible_fraction": float(np.mean(res["feasible"])) if res["feasible"] else 0.0,
                   "mean_ask_s": float(np.mean(res["times"])), "wall_s": time.perf_counter() - t0}
            for b in budgets:
                row[f"regret@{b}"] = regret[b - 1]
            rows.append(row)
            logger.info("  %-14s %s  (%.1fs)", label, "  ".join(f"@{b}: {row[f'regret@{b}']:.4f}" for b in budgets), row["wall_s"])
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows, budgets)
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    print(format_table(summary, budgets))
    plot(curves, out / "regret.png")
    (out / "meta.json").write_text(json.dumps(vars(args), indent=1))
    return 0


def summarise(rows: list[dict], budgets: list[int]) -> list[dict]:
    out = []
    for label in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == label]
        row = {"strategy": label, "seeds": len(mine)}
        for b in budgets:
            vals = np.array([r[f"regret@{b}"] for r in mine], dtype=float)
            row[f"median@{b}"] = float(np.median(vals))
            row[f"iqr@{b}"] = f"{np.quantile(vals, 0.25):.4g}..{np.quantile(vals, 0.75):.4g}"
        hits = [r["evals_to_1pct"] for r in mine]
        row["median_evals_to_1pct"] = float(np.median([h if h != "" else math.inf for h in hits]))
        row["feasible_fraction"] = float(np.mean([r["feasible_fraction"] for r in mine]))
        row["mean_ask_s"] = float(np.mean([r["mean_ask_s"] for r in mine]))
        out.append(row)
    return out


def format_table(summary: list[dict], budgets: list[int]) -> str:
    head = "| strategy | " + " | ".join(f"regret@{b} (median, IQR)" for b in budgets) + " | evals to 1% | feasible | s/ask |"
    lines = [head, "|" + "---|" * (len(budgets) + 4)]
    for r in summary:
        cells = [f"{r[f'median@{b}']:.4f} ({r[f'iqr@{b}']})" for b in budgets]
        lines.append(f"| {r['strategy']} | " + " | ".join(cells) + f" | {r['median_evals_to_1pct']} | {r['feasible_fraction']:.2f} | {r['mean_ask_s']:.3f} |")
    return "\n".join(lines)


def plot(curves: dict[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in curves.items():
        arr = np.array(runs, dtype=float)  # (seeds, budget)
        med = np.median(arr, axis=0)
        x = np.arange(1, arr.shape[1] + 1)
        ax.plot(x, np.where(np.isfinite(med), med, np.nan), label=label)
        lo, hi = np.quantile(arr, 0.25, axis=0), np.quantile(arr, 0.75, axis=0)
        ax.fill_between(x, np.where(np.isfinite(lo), lo, np.nan), np.where(np.isfinite(hi), hi, np.nan), alpha=0.15)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("regret (best feasible cost / optimum - 1)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
