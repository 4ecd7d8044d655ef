"""Search-efficiency benchmark: every strategy on landscapes with a known constrained optimum.

One command::

    .venv/bin/python benchmarks/run.py                       # landscapes A and B, defaults below
    .venv/bin/python benchmarks/run.py --quick               # toy landscapes, seconds (the smoke test)
    .venv/bin/python benchmarks/run.py --landscapes B --seeds 10 --budgets 20,40,80,160

Landscapes (see ``benchmarks/landscapes.py``):

* ``A``: the committed tiny teacher + its distilled library (``--library``), a 1024-configuration
  subspace evaluated exhaustively with SupernetQuality (cached in
  ``benchmarks/results/landscape_a_evaluations.csv``); epsilon = a quantile of all qualities.
* ``B``: the sd21-vae16 cost table at 512 px (GMACs, attention counted) with a synthetic quality
  model (per-block sensitivities + neighbour interactions + hash noise), optimum by dynamic
  programme (minutes; cached in ``results/landscape_b_optima.json``), checked by local search.
  One landscape (``--landscape-seed``, default 0) for all search seeds.
* the stress landscapes (``stress_landscapes.py``), the probe landscapes (``probe_landscapes.py``:
  classes the stress suite does not have) and the real tables (``table_landscapes.py``).
  A stress or probe landscape is one instance (``--landscape-seed``, default 0) for every search seed;
  with ``--instances`` search seed ``s`` meets instance ``landscape-seed + s`` instead, named
  ``NAME@inst`` in the outputs (one instance N other than 0 is ``NAME@N``), so the summary is
  over instances a strategy was not tuned on.

Every strategy gets the same :class:`~tocsr_nas.strategies.Problem` (known cost, the epsilon,
the prior where the landscape has one) and proposes the teacher configuration first (the
strategies' contract). One configuration is asked and told at a time. Outputs in ``--out``:
``runs.csv`` (one row per landscape x strategy x seed), ``summary.csv`` (median and IQR of the
regret per budget, median evaluations to within 1%, feasible fraction, seconds per ask),
``curves.csv`` (median regret per evaluation) and ``regret_<landscape>.png``.

Regret = best feasible cost found / optimum - 1 (``inf`` while nothing feasible was found;
the teacher is feasible, so after the first evaluation it is finite).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import (  # noqa: E402
    build_tiny_landscape,
    make_problem,
    paper_landscape,
    toy_chain_landscape,
    toy_enumerated_landscape,
)
from probe_landscapes import PROBE, probe_landscape  # noqa: E402
from stress_landscapes import STRESS, stress_landscape  # noqa: E402

from table_landscapes import TABLES, table_landscape  # noqa: E402

from tocsr_nas.commands.search import parse_strategy_option  # noqa: E402
from tocsr_nas.strategies import Observation, available_strategies, make_strategy  # noqa: E402

logger = logging.getLogger("benchmarks.run")

PEERS = ["ecbo", "random", "evolution", "nni-tpe", "nni-evolution", "optuna-tpe", "optuna-nsga2", "optuna-gp", "ax"]

#: options given to a strategy in every benchmark run. Optuna's GPSampler keeps proposing
#: configurations it has already seen once it has mapped a small space; the adapter answers each
#: repeat and asks again, refitting the GP every time, so with the default 20 retries one
#: 80-evaluation run on landscape A took over 10 minutes. After 3 repeats it now falls back to a
#: random unseen configuration, as the adapter does for every tuner.
STRATEGY_OPTIONS: dict[str, dict] = {"optuna-gp": {"max_retries": 3}}


#: the synthetic families drawn per instance: ``--landscapes FAMILY`` runs every member, a member's name runs it alone
FAMILIES = {"stress": (STRESS, stress_landscape), "probe": (PROBE, probe_landscape)}


def run_search(land, name: str, seed: int, budget: int, *, with_prior: bool = True, problem=None,
               options: Mapping[str, object] | None = None) -> dict:
    """One search of ``budget`` evaluations: best-feasible-cost curve, feasibility flags, ask times, best configuration.

    ``land`` needs ``quality(cfg)``, ``cost(cfg)`` and ``epsilon``; ``problem`` defaults to
    :func:`landscapes.make_problem` of it; ``options`` are added to (and override)
    :data:`STRATEGY_OPTIONS`.
    """
    problem = problem if problem is not None else make_problem(land, with_prior=with_prior)
    strategy = make_strategy(name, problem, seed=seed, **{**STRATEGY_OPTIONS.get(name, {}), **(options or {})})
    best, best_config, curve, feasible, times = math.inf, None, [], [], []
    while len(curve) < budget:
        t0 = time.perf_counter()
        configs = strategy.ask(1)
        times.append(time.perf_counter() - t0)
        if not configs:
            break
        cfg = configs[0]
        q, c = land.quality(cfg), land.cost(cfg)
        strategy.tell([Observation(cfg, q, c)])
        ok = q <= land.epsilon
        feasible.append(ok)
        if ok and c < best:
            best, best_config = c, cfg
        curve.append(best)
    curve += [best] * (budget - len(curve))
    return {"curve": curve, "feasible": feasible, "times": times, "best_config": best_config}


def landscapes_for(label: str, seed: int, args: argparse.Namespace) -> list:
    """The landscape(s) named ``label`` for ``seed`` (one per epsilon)."""
    if label == "A":
        base = build_tiny_landscape(args.library, args.a_cache, quality=args.quality)
        return [_named(base.with_epsilon(base.epsilon_at_quantile(f)), f"A@q{f:g}") for f in args.a_quantiles]
    if label == "B":
        land, _ = paper_landscape(seed=args.landscape_seed, epsilon=args.b_epsilon, prior_noise=args.b_prior_noise)
        return [_named(land, "B" if args.b_prior_noise == 0.5 else f"B@prior{args.b_prior_noise:g}")]
    if label == "toyA":
        return [_named(toy_enumerated_landscape(seed=seed), "toyA")]
    if label == "toyB":
        return [_named(toy_chain_landscape(seed=seed), "toyB")]
    for family, (members, build) in FAMILIES.items():  # one instance for every search seed, or one per seed (--instances)
        if label in members or label == family:
            names = members if label == family else (label,)
            if args.instances:
                return [_named(build(n, args.landscape_seed + seed), f"{n}@inst") for n in names]
            if args.landscape_seed:
                return [_named(build(n, args.landscape_seed), f"{n}@{args.landscape_seed}") for n in names]
            return [build(n) for n in names]
    if label.partition("@")[0] in TABLES:  # real NAS benchmark tables (table_landscapes.py), e.g. macro@q0.05
        return [table_landscape(label)]
    raise SystemExit(
        f"unknown landscape {label!r}; choose from A, B, toyA, toyB, stress, {', '.join(STRESS)}, probe, {', '.join(PROBE)}, "
        f"{', '.join(TABLES)} (NAME@qQ: epsilon at quantile Q)"
    )


def _named(land, name: str):
    land.name = name
    return land


def summarise(rows: list[dict], budgets: list[int]) -> list[dict]:
    """Median and IQR of the regret per budget, evaluations to 1%, feasible fraction, per landscape x strategy."""
    out = []
    keys = list(dict.fromkeys((r["landscape"], r["strategy"]) for r in rows))
    for land, strat in keys:
        mine = [r for r in rows if r["landscape"] == land and r["strategy"] == strat]
        row = {"landscape": land, "strategy": strat, "seeds": len(mine)}
        for b in budgets:
            vals = np.array([r[f"regret@{b}"] for r in mine], dtype=float)
            row[f"median@{b}"] = float(np.median(vals))
            row[f"q25@{b}"] = float(np.quantile(vals, 0.25))
            row[f"q75@{b}"] = float(np.quantile(vals, 0.75))
        hits = [r["evals_to_1pct"] if r["evals_to_1pct"] != "" else math.inf for r in mine]
        row["median_evals_to_1pct"] = float(np.median(hits))
        row["solved_fraction"] = float(np.mean([math.isfinite(h) for h in hits]))
        row["feasible_fraction"] = float(np.mean([r["feasible_fraction"] for r in mine]))
        row["mean_ask_s"] = float(np.mean([r["mean_ask_s"] for r in mine]))
        out.append(row)
    return out


def format_table(summary: list[dict], budgets: list[int], landscape: str) -> str:
    """A markdown table of one landscape's summary."""
    head = "| strategy | seeds | " + " | ".join(f"regret@{b} median [IQR]" for b in budgets) + " | evals to 1% (median) | solved | feasible | s/ask |"
    lines = [head, "|" + "---|" * (len(budgets) + 6)]
    for r in summary:
        if r["landscape"] != landscape:
            continue
        cells = [f"{_pct(r[f'median@{b}'])} [{_pct(r[f'q25@{b}'])}, {_pct(r[f'q75@{b}'])}]" for b in budgets]
        e = r["median_evals_to_1pct"]
        lines.append(
            f"| {r['strategy']} | {r['seeds']} | " + " | ".join(cells)
            + f" | {'>' + str(max(budgets)) if not math.isfinite(e) else f'{e:g}'} | {r['solved_fraction']:.0%}"
            + f" | {r['feasible_fraction']:.2f} | {r['mean_ask_s']:.3f} |"
        )
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "inf" if not math.isfinite(x) else f"{100 * x:.1f}%"


def plot(curves: dict[str, dict[str, list[list[float]]]], out: Path) -> list[Path]:
    """One PNG per landscape: median regret (IQR shaded) against evaluations, per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for land, per in curves.items():
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for label, runs in per.items():
            arr = np.array(runs, dtype=float)  # (seeds, budget)
            x = np.arange(1, arr.shape[1] + 1)
            med = np.median(arr, axis=0)
            lo, hi = np.quantile(arr, 0.25, axis=0), np.quantile(arr, 0.75, axis=0)
            fin = lambda a: np.where(np.isfinite(a), a, np.nan)  # noqa: E731
            ax.plot(x, fin(med), label=label, lw=2.2 if label == "ecbo" else 1.2)
            ax.fill_between(x, fin(lo), fin(hi), alpha=0.12)
        ax.axhline(0.01, color="k", ls=":", lw=0.8)
        ax.set_ylim(bottom=0.0)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel("evaluations (teacher first)")
        ax.set_ylabel("regret = best feasible cost / optimum - 1")
        ax.set_title(f"landscape {land}: median over seeds, IQR shaded")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"regret_{land}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="toy landscapes, 2 seeds, budgets 5,10, three strategies (seconds)")
    p.add_argument("--landscapes", default="A,B", help="comma list of A, B, toyA, toyB, the stress landscapes of "
                   "stress_landscapes.py (deadpath, range100, chain30, failing, misleading; 'stress' = all five), the probe "
                   "landscapes of probe_landscapes.py (unordered, plateau, product, wide, binary, tight, loose; 'probe' = all) and "
                   "the real tables of table_landscapes.py (macro, graph-arxiv, graph-cora, cell-DATASET; NAME@qQ) (default A,B)")
    p.add_argument("--strategies", default=",".join(PEERS), help="comma list; a '-noprior' suffix withholds the prior")
    p.add_argument("--seeds", type=int, default=None, help="search seeds (default 10; --quick: 2)")
    p.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1 (default 0)")
    p.add_argument("--strategy-option", type=parse_strategy_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an option for every strategy run (VALUE read as JSON); the rows are labelled "
                        "strategy[KEY=VALUE,...] so they never replace the default runs")
    p.add_argument("--budgets", default=None, help="comma list (default 20,40,80,160; --quick: 5,10)")
    p.add_argument("--landscape-seed", type=int, default=0, help="landscape B and the stress / probe landscapes: the landscape's seed "
                   "(one landscape for all search seeds; B's exact optimum is cached)")
    p.add_argument("--instances", action="store_true", help="the stress / probe landscapes: search seed s meets instance "
                   "landscape-seed + s (named NAME@inst; one instance N > 0 is named NAME@N), so medians are "
                   "over landscape instances, not one instance")
    p.add_argument("--b-epsilon", type=float, default=0.05, help="landscape B: epsilon (default 0.05)")
    p.add_argument("--b-prior-noise", type=float, default=0.5,
                   help="landscape B: sigma of the prior's log-normal error (default 0.5; 0 hands over the true damages)")
    p.add_argument("--library", default="runs/demo/surrogates",
                   help="landscape A: the shipped tiny teacher's surrogate library (default: the one `make demo` distils)")
    p.add_argument("--a-cache", default=str(Path(__file__).parent / "results" / "landscape_a_evaluations.csv"))
    p.add_argument("--a-quantiles", default="0.2", help="landscape A: epsilons as quantiles of all qualities")
    p.add_argument("--quality", default="denoising")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--resummarise", action="store_true", help="only rebuild summary/plots from an earlier (maybe interrupted) run's CSVs")
    p.add_argument("--merge", action="store_true",
                   help="keep the other strategies' rows of the existing runs_/regrets_ CSVs in --out and replace only the "
                        "strategies run now (same landscapes and largest budget), then rebuild summary, curves and plots")
    p.add_argument("--merge-from", default=None, metavar="DIR",
                   help="run nothing: the (strategy, seed) runs in DIR's runs_/regrets_ CSVs replace or join those in "
                        "--out's (same landscapes and largest budget); then rebuild summary, curves and plots, every "
                        "strategy with all its seeds (for runs made in pieces, e.g. with --first-seed, or in parallel)")
    args = p.parse_args(argv)
    if args.quick:
        args.landscapes = "toyA,toyB"
        args.seeds = args.seeds or 2
        args.budgets = args.budgets or "5,10"
        if args.strategies == ",".join(PEERS):
            args.strategies = "ecbo,random,evolution"
    args.seeds = args.seeds or 10
    args.budgets = args.budgets or "20,40,80,160"
    args.a_quantiles = [float(f) for f in args.a_quantiles.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("nni", "optuna", "botorch", "gpytorch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(1)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    budget = budgets[-1]
    labels = args.strategies.split(",")
    known = set(available_strategies())
    labels = [s for s in labels if s.removesuffix("-noprior") in known or logger.warning("skipping %s: not registered", s)]
    options = dict(args.strategy_option)
    if options:  # e.g. "ecbo[prior_rel_sd=null]": never confused with (or merged over) the default runs
        tag_opts = ",".join(f"{k}={json.dumps(v)}" for k, v in options.items())
        labels = [f"{s}[{tag_opts}]" for s in labels]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_".join(args.landscapes.split(","))
    if args.resummarise:
        return resummarise(out, tag, budgets)
    if args.merge_from:
        return merge_from(Path(args.merge_from), out, tag, budgets)
    if args.merge and args.first_seed:
        raise SystemExit("--merge keeps other strategies' seeds from 0: run --first-seed into another --out and fold it in with --merge-from")
    rows, curves, optima = [], {}, {}
    kept_rows, kept_curves = (_kept(out, tag, labels, budget) if args.merge else ([], {}))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for llabel in args.landscapes.split(","):
            for land in landscapes_for(llabel, seed, args):
                opt, opt_cfg = land.optimum()
                teacher_cost = land.cost(land.space.default_config())
                optima.setdefault(land.name, []).append({"seed": seed, "optimum": opt, "teacher": teacher_cost,
                                                         "epsilon": land.epsilon, "config": opt_cfg.to_json()})
                logger.info("[%s seed %d] optimum %.4g (teacher %.4g, %.1f%%), epsilon %.4g", land.name, seed, opt,
                            teacher_cost, 100 * opt / teacher_cost, land.epsilon)
                for label in labels:
                    base = label.split("[")[0]  # drop the "[options]" tag
                    name, with_prior = (base.removesuffix("-noprior"), not base.endswith("-noprior"))
                    t0 = time.perf_counter()
                    res = run_search(land, name, seed, budget, with_prior=with_prior, options=options)
                    regret = [c / opt - 1.0 for c in res["curve"]]
                    curves.setdefault(land.name, {}).setdefault(label, []).append(regret)
                    within = next((i + 1 for i, r in enumerate(regret) if r <= 0.01), "")
                    row = {"landscape": land.name, "strategy": label, "seed": seed, "epsilon": land.epsilon,
                           "optimum": opt, "teacher_cost": teacher_cost, "evals_to_1pct": within,
                           "feasible_fraction": float(np.mean(res["feasible"])) if res["feasible"] else 0.0,
                           "mean_ask_s": float(np.mean(res["times"])), "max_ask_s": float(np.max(res["times"])),
                           "wall_s": time.perf_counter() - t0}
                    row.update({f"regret@{b}": regret[b - 1] for b in budgets})
                    rows.append(row)
                    logger.info("  %-14s %s  to1%%=%s  (%.1fs)", label,
                                "  ".join(f"@{b}: {_pct(row[f'regret@{b}'])}" for b in budgets), within, row["wall_s"])
                # partial results survive an interrupted run (--resummarise rebuilds the rest from them)
                _write_csv(out / f"runs_{tag}.csv", kept_rows + rows)
                _write_regrets(out / f"regrets_{tag}.csv", _merge_curves(kept_curves, curves), args.first_seed)
    if args.merge:  # every strategy with all its seeds (the summary's "seeds" column says how many)
        return report(kept_rows + rows, _merge_curves(kept_curves, curves), budgets, out, tag, optima)
    return report(rows, curves, budgets, out, tag, optima)


def _kept(out: Path, tag: str, labels: list[str], budget: int) -> tuple[list[dict], dict]:
    """The rows and regret curves of ``runs_<tag>.csv`` / ``regrets_<tag>.csv`` of strategies NOT in ``labels``."""
    runs, regrets = out / f"runs_{tag}.csv", out / f"regrets_{tag}.csv"
    if not (runs.is_file() and regrets.is_file()):
        raise SystemExit(f"--merge: {runs} or {regrets} is missing; run without --merge first")
    rows = [r for r in _read_runs(runs) if r["strategy"] not in labels]
    curves: dict = {}
    for (land, label, _seed), regret in _read_regrets(regrets).items():
        if label in labels:
            continue
        if len(regret) != budget:
            raise SystemExit(f"--merge: {regrets} holds {len(regret)}-evaluation curves, this run {budget}; use the same largest budget")
        curves.setdefault(land, {}).setdefault(label, []).append(regret)
    return rows, curves


def _merge_curves(kept: dict, new: dict) -> dict:
    merged = {land: dict(per) for land, per in kept.items()}
    for land, per in new.items():
        merged.setdefault(land, {}).update(per)
    return merged


def report(rows, curves, budgets, out: Path, tag: str, optima=None) -> int:
    """Write summary, median curves, optima and plots; print the tables."""
    summary = summarise(rows, budgets)
    _write_csv(out / f"summary_{tag}.csv", summary)
    with open(out / f"curves_{tag}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["landscape", "strategy", "evaluation", "median_regret", "q25", "q75"])
        for land, per in curves.items():
            for label, runs in per.items():
                arr = np.array(runs, dtype=float)
                for i in range(arr.shape[1]):
                    w.writerow([land, label, i + 1, *(float(v) for v in (np.median(arr[:, i]), *np.quantile(arr[:, i], [0.25, 0.75])))])
    if optima is not None:
        (out / f"optima_{tag}.json").write_text(json.dumps(optima, indent=1))
    for land in curves:
        seeds = len(next(iter(curves[land].values())))
        print(f"\nlandscape {land} ({seeds} seeds, budgets {budgets})")
        print(format_table(summary, budgets, land))
    plot(curves, out)
    return 0


def _write_regrets(path: Path, curves: dict, first_seed: int = 0) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        for land, per in curves.items():
            for label, runs in per.items():
                for i, regret in enumerate(runs):
                    w.writerow([land, label, first_seed + i, *regret])


def resummarise(out: Path, tag: str, budgets: list[int]) -> int:
    """Rebuild summary, curves and plots from ``runs_<tag>.csv`` and ``regrets_<tag>.csv`` (e.g. after an interrupted run)."""
    rows = _read_runs(out / f"runs_{tag}.csv")
    curves: dict = {}
    for (land, label, _seed), regret in _read_regrets(out / f"regrets_{tag}.csv").items():
        curves.setdefault(land, {}).setdefault(label, []).append(regret)
    # keep only complete seeds (every strategy of the landscape ran on them)
    keep = []
    for land in curves:
        labels = set(curves[land])
        mine = [r for r in rows if r["landscape"] == land]
        complete = {s for s in {r["seed"] for r in mine} if {r["strategy"] for r in mine if r["seed"] == s} == labels}
        n = len(complete)
        curves[land] = {label: runs[:n] for label, runs in curves[land].items()}
        keep += [r for r in mine if r["seed"] in complete]
    return report(keep, curves, budgets, out, tag)


def merge_from(src: Path, out: Path, tag: str, budgets: list[int]) -> int:
    """``--merge-from``: ``src``'s (landscape, strategy, seed) runs replace or join ``out``'s; then :func:`report`."""
    new_rows, new_curves = _read_runs(src / f"runs_{tag}.csv"), _read_regrets(src / f"regrets_{tag}.csv")
    old_rows, old_curves = _read_runs(out / f"runs_{tag}.csv"), _read_regrets(out / f"regrets_{tag}.csv")
    lengths = {len(r) for r in (*new_curves.values(), *old_curves.values())}
    if lengths != {budgets[-1]}:
        raise SystemExit(f"--merge-from: curves of {sorted(lengths)} evaluations; every run needs the largest budget {budgets[-1]}")
    key = lambda r: (r["landscape"], r["strategy"], r["seed"])  # noqa: E731
    replaced = {key(r) for r in new_rows}
    rows = sorted([r for r in old_rows if key(r) not in replaced] + new_rows, key=lambda r: (r["strategy"], r["seed"]))
    merged = {**old_curves, **new_curves}
    curves: dict = {}
    for (land, label, _seed), regret in sorted(merged.items(), key=lambda kv: kv[0][2]):
        curves.setdefault(land, {}).setdefault(label, []).append(regret)
    _write_csv(out / f"runs_{tag}.csv", rows)
    with open(out / f"regrets_{tag}.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([land, label, seed, *regret] for (land, label, seed), regret in sorted(merged.items()))
    return report(rows, curves, budgets, out, tag)


def _read_regrets(path: Path) -> dict[tuple[str, str, int], list[float]]:
    """``(landscape, strategy, seed) -> regret curve`` of a ``regrets_<tag>.csv``."""
    with open(path, newline="") as fh:
        return {(land, label, int(seed)): [float(x) for x in regret] for land, label, seed, *regret in csv.reader(fh)}


def _read_runs(path: Path) -> list[dict]:
    """The rows of a ``runs_<tag>.csv`` with numbers as numbers (``evals_to_1pct``: ``""`` or int)."""
    with open(path, newline="") as fh:
        rows = [{k: (v if k in ("landscape", "strategy", "evals_to_1pct") and not v.replace(".", "").isdigit() else float(v))
                 for k, v in r.items()} for r in csv.DictReader(fh)]
    for r in rows:
        r["evals_to_1pct"] = "" if r["evals_to_1pct"] == "" else int(float(r["evals_to_1pct"]))
        r["seed"] = int(r["seed"])
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
