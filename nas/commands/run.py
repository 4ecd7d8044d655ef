"""``tocsr-nas run``: the whole pipeline on the embedded default, ending with ``report.md``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tocsr_nas.commands import add_device_options, add_executor_options, add_out, add_seed, add_threads, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``run``."""
    from tocsr_nas.stages.run import PipelineSettings

    d = PipelineSettings()
    p = sub.add_parser(
        "run",
        help="the whole pipeline: teacher -> distill -> search -> export -> SR -> one-step -> evaluate",
        description="Run every stage on the embedded default (the shipped tiny teacher and the scikit-image "
        "photos), one folder per stage under --out, each cached and resumable: rerun the same command after "
        "an interruption to continue. Ends with a summary table and OUT/report.md.",
    )
    add_out(p, "output folder (default: runs/demo)", required=False, default=Path("runs/demo"))
    p.add_argument("--preset", default=d.preset, help="teacher preset (default: tiny, the shipped checkpoint)")
    add_seed(p, d.seed, "seed of every stage")
    p.add_argument("--budget", type=positive_int, default=d.budget, help=f"search evaluations (default {d.budget})")
    p.add_argument("--strategy", default=d.strategy, help=f"search strategy (default {d.strategy})")
    p.add_argument("--workers", type=positive_int, default=d.workers, help=f"distillation jobs at a time (default {d.workers})")
    p.add_argument("--batch-size", type=positive_int, default=d.search_batch_size, metavar="Q",
                   help=f"search proposals per round (default {d.search_batch_size})")
    add_executor_options(p, "distillation pairs and search evaluations")
    add_threads(p, d.threads, f"torch CPU threads per stage (default {d.threads})")
    add_device_options(p)
    p.add_argument("--quick", action="store_true", help="tiny stage sizes: a smoke test of the pipeline (minutes)")
    p.set_defaults(func=run)


def _placement(args: argparse.Namespace) -> dict[str, str]:
    """``--device`` / ``--dtype`` for the stages, only when not the defaults (the recorded command lines
    of a default run stay as they were)."""
    from tocsr_nas.devices import resolve

    placement = resolve(args.device, args.dtype)  # an absent device fails before any stage
    out = {} if placement.device.type == "cpu" and args.device == "auto" else {"device": args.device}
    return {**out, **({"dtype": args.dtype} if args.dtype != "float32" else {})}


def run(args: argparse.Namespace) -> int:
    """Run ``run``: the pipeline, then its report."""
    from tocsr_nas.stages.run import PipelineSettings, quick_settings, run_pipeline
    from tocsr_nas.stages.report import write_report

    base = quick_settings() if args.quick else PipelineSettings()
    settings = PipelineSettings(
        **{**base.__dict__, "preset": args.preset, "seed": args.seed, "strategy": args.strategy,
           "workers": args.workers, "threads": args.threads,
           "executor": args.executor, "ray_address": args.ray_address, "search_batch_size": args.batch_size,
           **({} if args.quick else {"budget": args.budget}), **_placement(args)}
    )
    state = run_pipeline(args.out, settings)
    summary = write_report(args.out, state)
    print(summary)
    print(f"\nreport: {args.out / 'report.md'}")
    return 0
