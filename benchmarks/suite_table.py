"""The regret table of the whole landscape suite, from the committed per-evaluation regret curves.

Every ``benchmarks/run.py`` run writes ``regrets_<tag>.csv``: one row per (landscape, strategy,
seed) with the regret after each evaluation. This script reads those files from several results
folders (runs made at different times, with different seeds and budgets), and prints one table
per landscape: median [IQR] regret at each budget, the median number of evaluations to within 1%
of the optimum, and the number of seeds and evaluations each strategy ran. Then it checks the
issue's three goals for one strategy (``--reference``, default ``ecbo``):

1. within 1% of the optimum (median) in at most 40 evaluations;
2. never worse than random (median) at any budget both ran;
3. ahead of (or level with) every peer (median) at every budget up to 100 both ran.

A later folder replaces an earlier one's runs of the same (landscape, strategy) as a whole, so
list older folders first. Labels with options (``ecbo[rbf_free=true]``) are variants, shown but not
counted as peers. Example (the committed results; the order matters)::

    .venv/bin/python benchmarks/suite_table.py --out benchmarks/results/suite.md
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: the committed results folders, oldest first (a later one replaces an earlier one's runs)
DEFAULT_SOURCES = [
    RESULTS / "tables_40",  # the tables: every peer to 40 (optuna-gp's runs are kept from here)
    RESULTS / "tables_ax20",  # the tables: Ax to 20
    RESULTS / "tables_ax_macro",  # macro: Ax, 10 seeds to 20 (seeds 0-2 from tables_ax20)
    RESULTS / "tables_ax_graph",  # the Graph tables: Ax, 5 seeds to 40
    RESULTS,  # A, B (every peer, 10 seeds to 160), the tables' cheap peers to 160
    RESULTS / "stress_peers",  # the stress landscapes: cheap peers to 160
    RESULTS / "stress_slow",  # the stress landscapes: optuna-gp to 80
    RESULTS / "stress_ax",  # the stress landscapes: Ax to 40
    RESULTS / "suite_ecbo",  # ecbo, every landscape, 10 seeds to 160 (A, B, chain30, failing, misleading: final)
    RESULTS / "suite_ecbo_far",  # ecbo with far_model on: where it can fire (deadpath, range100, the tables), 10 seeds to 160
    RESULTS / "stress_instances",  # the stress landscapes over instances 0-9 (NAME@inst): ecbo, random, optuna-tpe to 80
    RESULTS / "tables_eps",  # the tables at other epsilons: ecbo, random, optuna-tpe, 5 seeds to 40
    RESULTS / "saturating_AB",  # A and B: ecbo with the saturating warp's ceiling fitted (today's defaults), 10 seeds to 160
    RESULTS / "ax_AB",  # A and B: Ax, 5 seeds to 40
    RESULTS / "probe_instances",  # the probe landscapes over instances 100-109: ecbo (with and without the prior), random, optuna-tpe to 40
    RESULTS / "probe_instances_80",  # the same four strategies rerun to 80 with today's defaults (identical to 40)
    RESULTS / "failing_far",  # failing's instances 0-9: ecbo with failures_far (on by default), 10 seeds to 80
    RESULTS / "cell_tables",  # confirmation tables (NAS-Bench-Graph's whole cell, six unseen datasets): ecbo and the cheap peers, 10 seeds to 160
]
BUDGETS = (10, 20, 40, 80, 160)


def read_curves(sources: list[Path]) -> dict[str, dict[str, list[np.ndarray]]]:
    """``{landscape: {strategy: [curve per seed]}}`` from every ``regrets_*.csv`` in ``sources``."""
    found: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for src in sources:
        files = sorted(src.glob("regrets_*.csv")) if src.is_dir() else [src]
        here: dict[tuple[str, str], dict[int, np.ndarray]] = {}
        for path in files:
            with path.open(newline="") as fh:
                for row in csv.reader(fh):
                    if len(row) < 4:
                        continue
                    curve = np.array([float(v) if v not in ("", "inf") else math.inf for v in row[3:]])
                    here.setdefault((row[0], row[1]), {})[int(row[2])] = curve
        found.update(here)  # a later folder replaces the (landscape, strategy) as a whole
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for (land, label), seeds in found.items():
        out.setdefault(land, {})[label] = [seeds[s] for s in sorted(seeds)]
    return out


def at(curves: list[np.ndarray], budget: int) -> np.ndarray | None:
    """Each seed's regret after ``budget`` evaluations, or ``None`` where a run stopped earlier."""
    if not curves or min(len(c) for c in curves) < budget:
        return None
    return np.array([c[budget - 1] for c in curves])


def evals_to_1pct(curves: list[np.ndarray]) -> float:
    """Median evaluations to within 1% (``inf`` for a seed that never got there)."""
    firsts = [int(np.argmax(c <= 0.01)) + 1 if (c <= 0.01).any() else math.inf for c in curves]
    return float(np.median(firsts))


def _pct(v: float) -> str:
    return "-" if v is None else ("inf" if not math.isfinite(v) else f"{100 * v:.1f}%")


def table(land: str, by_label: dict[str, list[np.ndarray]], budgets: tuple[int, ...]) -> list[str]:
    """The markdown rows of one landscape."""
    head = "| strategy | seeds | evals | " + " | ".join(f"@{b}" for b in budgets) + " | to 1% |"
    lines = [f"### {land}", "", head, "|" + "---|" * (4 + len(budgets))]
    order = sorted(by_label, key=lambda s: (s != "ecbo", "[" in s, s))
    for label in order:
        curves = by_label[label]
        cells = []
        for b in budgets:
            v = at(curves, b)
            if v is None:
                cells.append("-")
            else:
                q25, med, q75 = np.percentile(v, [25, 50, 75])
                cells.append(f"{_pct(med)} [{_pct(q25)}, {_pct(q75)}]")
        n = min(len(c) for c in curves)
        to1 = evals_to_1pct(curves)
        to1s = f"{to1:g}" if math.isfinite(to1) else f">{n}"
        lines.append(f"| {label} | {len(curves)} | {n} | " + " | ".join(cells) + f" | {to1s} |")
    return lines + [""]


def goals(land: str, by_label: dict[str, list[np.ndarray]], reference: str, budgets: tuple[int, ...]) -> list[str]:
    """The goals ``reference`` misses on one landscape, one line each (empty: all met)."""
    mine = by_label.get(reference)
    if mine is None:
        return [f"{land}: no {reference} runs"]
    misses = []
    v40 = at(mine, 40)
    if v40 is None or np.median(v40) > 0.01:
        misses.append(f"{land}: {reference} at 40 evaluations {_pct(None if v40 is None else float(np.median(v40)))} (goal <= 1%)")
    for peer, curves in by_label.items():
        if peer == reference or "[" in peer:
            continue
        for b in budgets:
            a, p = at(mine, b), at(curves, b)
            if a is None or p is None:
                continue
            worse = float(np.median(a)) > float(np.median(p)) + 1e-12
            if worse and (peer == "random" or b <= 100):
                what = "worse than random" if peer == "random" else f"behind {peer}"
                misses.append(f"{land}: {reference} {what} at {b}: {_pct(float(np.median(a)))} against "
                              f"{_pct(float(np.median(p)))} ({len(curves)} seeds)")
    return misses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="*", type=Path, help="results folders or regrets_*.csv files, oldest first "
                   "(default: the committed folders)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="comma list (default 10,20,40,80,160)")
    p.add_argument("--reference", default="ecbo", help="the strategy whose goals are checked (default ecbo)")
    p.add_argument("--landscapes", default=None, help="comma list (default: every landscape found)")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = p.parse_args(argv)
    sources = args.sources or [s for s in DEFAULT_SOURCES if s.exists()]
    budgets = tuple(int(b) for b in args.budgets.split(","))
    curves = read_curves(sources)
    lands = args.landscapes.split(",") if args.landscapes else sorted(curves)
    lines = ["Median [IQR] regret after N evaluations; 'to 1%' = median evaluations to within 1% of the optimum;",
             "'evals' = the evaluations every seed ran. Sources, oldest first: "
             + ", ".join(str(s.relative_to(HERE.parent)) if s.is_relative_to(HERE.parent) else str(s) for s in sources), ""]
    misses = []
    for land in lands:
        if land not in curves:
            raise SystemExit(f"no runs of landscape {land!r} in the sources")
        lines += table(land, curves[land], budgets)
        misses += goals(land, curves[land], args.reference, budgets)
    lines += [f"## Goals of {args.reference} not met ({len(misses)})", ""] + [f"- {m}" for m in misses] + [""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
