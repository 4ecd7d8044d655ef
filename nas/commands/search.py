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
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from tocsr_nas.commands import positive_float, positive_int
from tocsr_nas.errors import UserInputError

logger = logging.getLogger(__name__)

#: epsilon must lie in this open interval
EPSILON_RANGE = (0.0, 10.0)
#: evaluations when neither --budget nor --time-budget is given
DEFAULT_BUDGET = 50
#: the settings file in OUT
SETTINGS_FILE = "search.json"
#: the cached validation set in OUT
VALIDATION_FILE = "validation.safetensors"
#: settings that must match for --resume
_RESUME_KEYS = ("teacher_fingerprint", "library_space_hash", "quality", "val_samples", "val_seed", "resolution")


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
    """``KEY=VALUE`` -> ``(key, value)``; the value is parsed as JSON when it is JSON, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY an option name, got {text!r}")
    try:
        value = json.loads(raw)
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
    p.add_argument("--objective", choices=("gmacs", "params"), default="gmacs", help="what to minimise (default gmacs)")
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
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the strategy (default 0)")
    p.add_argument(
        "--quality",
        default="denoising",
        metavar="NAME",
        help="quality evaluator: denoising (relative loss increase over the teacher, default) or agreement "
        "(squared distance to the teacher in units of its own error)",
    )
    p.add_argument("--batch-size", type=positive_int, default=1, metavar="Q", help="proposals per round (default 1)")
    p.add_argument("--max-gmacs", type=positive_float, metavar="X", help="hard bound: never evaluate anything above these GMACs")
    p.add_argument("--max-params", type=positive_float, metavar="X", help="hard bound: never evaluate anything above these parameters")
    p.add_argument("--resolution", type=positive_int, metavar="PX", help="image side in pixels (default: the library's)")
    p.add_argument("--val-samples", type=positive_int, default=32, metavar="N", help="validation samples (default 32)")
    p.add_argument("--val-seed", type=int, default=0, metavar="S", help="seed of the validation timesteps and noise (default 0)")
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


# ---------------------------------------------------------------------- checks
def check_arguments(args: argparse.Namespace) -> None:
    """Everything that can be checked without loading a model (one :class:`UserInputError` each)."""
    from tocsr_nas.evaluators import available_qualities
    from tocsr_nas.strategies import available_strategies

    if args.strategy not in available_strategies():
        raise UserInputError(f"unknown strategy {args.strategy!r}; valid: {', '.join(available_strategies())}")
    if args.quality not in available_qualities():
        raise UserInputError(f"unknown quality {args.quality!r}; valid: {', '.join(available_qualities())}")
    for flag, path in (("--teacher", args.teacher), ("--surrogates", args.surrogates)):
        if not path.is_dir():
            raise UserInputError(f"{flag} {path}: no such folder")
    if args.space is not None and not Path(args.space).is_file():
        from tocsr_nas.stages.space import DEFAULT_SPACES

        if args.space not in DEFAULT_SPACES:
            raise UserInputError(f"--space {args.space}: no such file")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.resume:
        raise UserInputError(
            f"--out {out} exists and is not empty; pass --resume to continue the search in it, or choose a new "
            "folder (nothing was changed)"
        )


def _settings(args: argparse.Namespace, teacher_fp: str, library: Any, resolution: int) -> dict[str, Any]:
    return {
        "teacher": str(args.teacher),
        "teacher_fingerprint": teacher_fp,
        "surrogates": str(args.surrogates),
        "library_space_hash": library.space_hash,
        "space": args.space,
        "quality": args.quality,
        "val_samples": args.val_samples,
        "val_seed": args.val_seed,
        "resolution": resolution,
        "objective": args.objective,
        "strategy": args.strategy,
        "epsilons": args.epsilon,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "budget": args.budget,
        "time_budget": args.time_budget,
        "max_gmacs": args.max_gmacs,
        "max_params": args.max_params,
        "prior": not args.no_prior,
        "strategy_options": dict(args.strategy_option),
    }


def _check_resume(out: Path, settings: dict[str, Any]) -> None:
    path = out / SETTINGS_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"cannot read {path}: {exc}") from None
    for key in _RESUME_KEYS:
        if old.get(key) != settings[key]:
            raise UserInputError(
                f"cannot resume {out}: it was searched with {key}={old.get(key)!r}, not {settings[key]!r}; "
                "use the same teacher, library, --quality, --val-samples, --val-seed and --resolution, or a new --out"
            )


def normalised_prior(library: Any) -> dict[str, dict[str, float]]:
    """The library's per-pair distillation losses scaled into ``[0, 1]`` (``teacher`` = 0).

    Non-finite losses are left out (the strategy fills in the block's mean).
    """
    raw = library.prior()
    finite = [v for row in raw.values() for v in row.values() if math.isfinite(v) and v >= 0]
    top = max(finite, default=0.0) or 1.0
    return {
        block: {name: float(v) / top for name, v in row.items() if math.isfinite(v) and v >= 0}
        for block, row in raw.items()
    }


# ---------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Run ``tocsr-nas search`` from parsed arguments."""
    start = time.perf_counter()
    check_arguments(args)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    from tocsr_nas import search
    from tocsr_nas._io import atomic_write_json
    from tocsr_nas.stages.costs import cost_table_for
    from tocsr_nas.evaluators import make_quality
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.evaluators.quality import SupernetQuality
    from tocsr_nas.surrogates.supernet import SuperNet
    from tocsr_nas.surrogates.library import LibraryMismatchError, SurrogateLibrary
    from tocsr_nas.teacher import Teacher
    from tocsr_nas.stages.validation import build_validation_set

    teacher = Teacher.load(args.teacher).eval()
    fingerprint = teacher.fingerprint()
    library = SurrogateLibrary.open(args.surrogates, teacher_fingerprint=fingerprint)
    candidates = CandidateCache()
    if args.space is not None:
        probe = teacher.unet_example_inputs(1, resolution=teacher.vae_scale_factor * 8)
        space = build_space(teacher.unet, args.space, probe=probe, candidates=candidates)
        if space.hash != library.space_hash:
            raise LibraryMismatchError(
                f"--space {args.space} resolves to search space {space.hash}, but the library {args.surrogates} was "
                f"distilled for space {library.space_hash}; pass the YAML it was distilled with, or leave --space out"
            )
    else:
        space = library.space
    resolution = args.resolution or library.resolution or teacher.default_resolution
    teacher.latent_size(resolution)  # validates the resolution against the VAE factor
    settings = _settings(args, fingerprint, library, resolution)
    if args.resume:
        _check_resume(args.out, settings)

    table = cost_table_for(teacher, space, resolution, candidates=candidates, progress=not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    validation = build_validation_set(
        teacher, samples=args.val_samples, resolution=resolution, seed=args.val_seed, cache=args.out / VALIDATION_FILE
    )
    atomic_write_json(args.out / SETTINGS_FILE, settings)
    supernet = SuperNet(teacher.unet, library, space)
    quality = SupernetQuality(supernet, make_quality(args.quality, validation))
    prior = None if args.no_prior else normalised_prior(library)
    budget = args.budget if args.budget is not None or args.time_budget is not None else DEFAULT_BUDGET
    logger.info(
        "searching %s over %s configurations (%d blocks), %s quality on %d samples, set up in %.1f s",
        args.objective, f"{space.size:.3g}", len(space), args.quality, len(validation), time.perf_counter() - start,
    )
    result = search(
        space,
        quality=quality,
        cost=table,
        epsilon=args.epsilon,
        strategy=args.strategy,
        budget=budget,
        time_budget=args.time_budget,
        seed=args.seed,
        objective=args.objective,
        max_gmacs=args.max_gmacs,
        max_params=args.max_params,
        batch_size=args.batch_size,
        prior=prior,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.no_progress,
        strategy_options=dict(args.strategy_option),
    )
    print(summary_text(result, table.teacher(), seconds=time.perf_counter() - start))
    return 0


def summary_text(result: Any, teacher_cost: Any, *, seconds: float) -> str:
    """The lines printed at the end: the best configuration per epsilon against the teacher."""
    trials = result.trials
    n_feasible = int(trials["feasible"].astype(bool).sum()) if len(trials) else 0
    per_eval = float(trials["seconds"].median()) if len(trials) else math.nan
    lines = [
        f"{len(trials)} trials ({result.strategy}, seed {result.seed}), {n_feasible} feasible at epsilon "
        f"{result.primary_epsilon:g}; {per_eval:.3f} s per evaluation (median); {seconds:.0f} s in all",
        f"teacher: {teacher_cost.gmacs:.4f} GMACs, {teacher_cost.params / 1e6:.3f} M params",
    ]
    for eps, best in result.bests.items():
        if best is None:
            lines.append(f"  epsilon {eps:g}: nothing feasible (raise --budget or epsilon)")
            continue
        lines.append(
            f"  epsilon {eps:g}: {best.gmacs:.4f} GMACs ({_ratio(teacher_cost.gmacs, best.gmacs)} fewer), "
            f"{best.params / 1e6:.3f} M params ({_ratio(teacher_cost.params, best.params)} fewer), "
            f"quality {best.quality:.4f} (trial {best.trial}, {best.hash})"
        )
    if result.out_dir:
        lines.append(f"results: {result.out_dir}/best.json, trials.csv, pareto.csv, plots/")
    return "\n".join(lines)


def _ratio(teacher: float, value: float) -> str:
    return f"{teacher / value:.2f}x" if value > 0 else "inf x"
