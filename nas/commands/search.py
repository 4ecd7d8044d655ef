"""``tocsr-nas search``: epsilon-constrained search over a distilled surrogate library.

What it assembles, in order (each step fails with one clear line before anything is written):

1. the teacher (``--teacher DIR``) and the surrogate library (``--surrogates DIR``), which must
   have been distilled from this very teacher (fingerprint) and for the search space in use
   (``--space FILE`` is resolved against the teacher and its hash compared with the library's;
   without ``--space`` the library's own space is used);
2. the cost table of that space at ``--resolution`` (default: the library's), fvcore, cached;
3. the fixed validation set (held-out photos, fixed timesteps and noise, teacher predictions),
   saved as ``OUT/validation.safetensors`` and reused by ``--resume``;
4. the supernet (every surrogate loaded once; a configuration only re-routes blocks) and the
   quality function (``--quality denoising|agreement``);
5. the per-block prior: each candidate's distillation loss from the library, scaled to ``[0, 1]``
   (``--no-prior`` leaves it out);
6. :func:`tocsr_nas.search` with ``out_dir=OUT``: ``journal.jsonl`` (resumable), ``trials.csv``,
   ``pareto.csv``, ``best.json``, ``plots/pareto.png``, ``plots/convergence.png``.

``OUT/search.json`` records the command's settings; ``--resume`` refuses to continue a search
made with another teacher, library, quality or validation set.

The set-up and the stage are :func:`tocsr_nas.search.setup.prepare_search` and
:func:`tocsr_nas.search.setup.run_search`; this module parses the arguments and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from tocsr_nas.commands import add_component, add_device_options, add_executor_options, positive_float, positive_int, seed
from tocsr_nas.search.setup import DEFAULT_BUDGET

#: epsilon must lie in this open interval
EPSILON_RANGE = (0.0, 10.0)


def parse_epsilons(text: str) -> list[float]:
    """``"0.02,0.05"`` -> ``[0.02, 0.05]``; each in the open interval :data:`EPSILON_RANGE`.

    Raises:
        argparse.ArgumentTypeError: an empty list, a non-number or a value out of range.

    Example:
        >>> parse_epsilons("0.02, 0.05,0.1")
        [0.02, 0.05, 0.1]
    """
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(f"epsilon out of range: {text!r} is not a comma-separated list of numbers")
    out = []
    lo, hi = EPSILON_RANGE
    for p in parts:
        try:
            e = float(p)
        except ValueError:
            raise argparse.ArgumentTypeError(f"epsilon out of range: {p!r} is not a number") from None
        if not (math.isfinite(e) and lo < e < hi):
            raise argparse.ArgumentTypeError(
                f"epsilon out of range: {p} (each epsilon must be > {lo:g} and < {hi:g}, e.g. 0.05 = 5% worse than the teacher)"
            )
        out.append(e)
    return out


def parse_strategy_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``; the value is parsed as JSON when it is JSON, else kept as a string.

    Raises:
        argparse.ArgumentTypeError: no ``KEY=``, or a number in VALUE that is not finite (``NaN``,
            ``Infinity``, ``1e999``): it would pass every range check of the strategy.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY an option name, got {text!r}")

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{key.strip()}: {number} is not a finite number")
        return value

    try:
        value = json.loads(raw, parse_float=finite, parse_constant=finite)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``search``."""
    p = sub.add_parser(
        "search",
        help="epsilon-constrained NAS over a distilled surrogate library (Pareto front, best configuration)",
        description="Minimise GMACs (or parameters) subject to quality <= epsilon over the configurations of a "
        "distilled surrogate library. Several epsilons (--epsilon 0.02,0.05,0.1) share every evaluation and "
        "trace the Pareto front. Writes trials.csv, pareto.csv, best.json and plots/ to --out; --resume "
        "continues an interrupted search without repeating or losing a trial.",
    )
    p.add_argument("--teacher", type=Path, required=True, metavar="DIR", help="teacher folder (diffusers layout)")
    p.add_argument("--surrogates", type=Path, required=True, metavar="DIR", help="surrogate library folder (tocsr-nas distill --out)")
    p.add_argument("--space", metavar="FILE", help="search space YAML the library was distilled with (default: the library's own)")
    p.add_argument(
        "--epsilon",
        type=parse_epsilons,
        required=True,
        metavar="E[,E...]",
        help="quality limit(s), comma-separated, each in (0, 10); the first is the primary one (best.json)",
    )
    p.add_argument(
        "--objective", choices=("gmacs", "params", "latency"), default="gmacs",
        help="what to minimise (default gmacs; latency: milliseconds on --device from a per-block latency table)",
    )  # fmt: skip
    p.add_argument("--strategy", default="ecbo", metavar="NAME", help="search strategy: ecbo (default), random, evolution, exhaustive, nni-* ...")
    p.add_argument(
        "--strategy-option",
        type=parse_strategy_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the strategy, VALUE read as JSON (a number, true/false, null, a list) or else as a string; "
        "repeatable, e.g. --strategy-option prior_rel_sd=null; an unknown option is an error that lists the valid ones",
    )
    p.add_argument("--budget", type=positive_int, metavar="N", help=f"evaluations (default {DEFAULT_BUDGET} without --time-budget)")
    p.add_argument("--time-budget", type=positive_float, metavar="S", help="wall seconds (checked before each batch)")
    p.add_argument("--seed", type=seed, default=0, metavar="S", help="seed of the strategy (default 0)")
    p.add_argument(
        "--quality",
        default=None,
        metavar="NAME",
        help="quality evaluator: denoising (relative loss increase over the teacher, default) or agreement "
        "(squared distance to the teacher in units of its own error); for --component vae.decoder: "
        "reconstruction (default) or agreement",
    )
    add_component(p, "the searched network (default: the one the library was distilled for)")
    p.add_argument(
        "--batch-size", type=positive_int, default=1, metavar="Q",
        help="proposals per round (default 1); with --executor ray they are evaluated in parallel",
    )
    add_executor_options(p, "trial evaluations")
    p.add_argument(
        "--sweep",
        default="cycle",
        metavar="{cycle,gain}",  # checked by the search (tocsr_nas.strategies.base.SWEEPS): no strategy import here
        help="how the epsilons of a sweep share the evaluations: in turn (cycle, default) or half of them to the "
        "epsilon that stands to gain most, e.g. one still at the teacher (gain)",
    )
    p.add_argument("--max-gmacs", type=positive_float, metavar="X", help="hard bound: never evaluate anything above these GMACs")
    p.add_argument("--max-params", type=positive_float, metavar="X", help="hard bound: never evaluate anything above these parameters")
    p.add_argument(
        "--max-latency", type=positive_float, metavar="MS",
        help="hard bound: never evaluate anything predicted slower than MS milliseconds on --device",
    )  # fmt: skip
    p.add_argument(
        "--latency-repeats", type=positive_int, default=10, metavar="N",
        help="timed calls per latency-table cell and for the best model, median (default 10)",
    )  # fmt: skip
    add_device_options(p)
    p.add_argument("--resolution", type=positive_int, metavar="PX", help="image side in pixels (default: the library's)")
    p.add_argument("--val-samples", type=positive_int, default=32, metavar="N", help="validation samples (default 32)")
    p.add_argument("--val-seed", type=seed, default=0, metavar="S", help="seed of the validation timesteps and noise (default 0)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (new or empty, or the one to --resume)")
    p.add_argument("--resume", action="store_true", help="continue the search journalled in --out")
    p.add_argument("--no-prior", action="store_true", help="do not give the strategy the library's distillation losses")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (default: torch's choice; 1 is much faster on a busy shared machine)",
    )
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Run ``tocsr-nas search`` from parsed arguments (:func:`~tocsr_nas.search.setup.run_search`)."""
    from tocsr_nas.search.setup import run_search

    start = time.perf_counter()
    result = run_search(
        teacher=args.teacher,
        surrogates=args.surrogates,
        out=args.out,
        epsilon=args.epsilon,
        space=args.space,
        objective=args.objective,
        strategy=args.strategy,
        strategy_options=dict(args.strategy_option),
        budget=args.budget,
        time_budget=args.time_budget,
        seed=args.seed,
        quality=args.quality,
        batch_size=args.batch_size,
        sweep=args.sweep,
        max_gmacs=args.max_gmacs,
        max_params=args.max_params,
        resolution=args.resolution,
        val_samples=args.val_samples,
        val_seed=args.val_seed,
        resume=args.resume,
        prior=not args.no_prior,
        progress=not args.no_progress,
        threads=args.threads,
        component=args.component,
        device=args.device,
        dtype=args.dtype,
        max_latency=args.max_latency,
        latency_repeats=args.latency_repeats,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    print(summary_text(result, seconds=time.perf_counter() - start))
    return 0


def summary_text(result: Any, *, seconds: float) -> str:
    """The lines printed at the end: the best configuration per epsilon against the teacher
    (``result.teacher``: the default configuration's cost)."""
    from tocsr_nas.search.results import no_gain_line

    teacher_gmacs, teacher_params = result.teacher["gmacs"], result.teacher["params"]
    trials = result.trials
    n_feasible = int(trials["feasible"].astype(bool).sum()) if len(trials) else 0
    per_eval = float(trials["seconds"].median()) if len(trials) else math.nan
    lines = [
        f"{len(trials)} trials ({result.strategy}, seed {result.seed}), {n_feasible} feasible at epsilon "
        f"{result.primary_epsilon:g}; {per_eval:.3f} s per evaluation (median); {seconds:.0f} s in all",
        f"teacher: {teacher_gmacs:.4f} GMACs, {teacher_params / 1e6:.3f} M params",
    ]
    for eps, best in result.bests.items():
        if best is None:
            lines.append(f"  epsilon {eps:g}: nothing feasible (raise --budget or epsilon)")
            continue
        if result.beats_teacher(best) is False:
            lines.append(f"  epsilon {eps:g}: {no_gain_line(eps)} (trial {best.trial}; raise --budget or epsilon)")
            continue
        lines.append(
            f"  epsilon {eps:g}: {best.gmacs:.4f} GMACs ({_ratio(teacher_gmacs, best.gmacs)} fewer), "
            f"{best.params / 1e6:.3f} M params ({_ratio(teacher_params, best.params)} fewer), "
            f"quality {best.quality:.4f} (trial {best.trial}, {best.hash})"
        )
    best = result.best if result.latency_measured_ms is not None else None
    if best is not None:
        lines.append(
            f"latency of the best (epsilon {result.primary_epsilon:g}): {best.latency:.3f} ms predicted by the table, "
            f"{result.latency_measured_ms:.3f} ms measured end to end (teacher {result.teacher_value('latency') or math.nan:.3f} ms)"
        )
    if result.out_dir:
        lines.append(f"results: {result.out_dir}/best.json, trials.csv, pareto.csv, plots/")
    return "\n".join(lines)


def _ratio(teacher: float, value: float) -> str:
    return f"{teacher / value:.2f}x" if value > 0 else "inf x"
