"""``tocsr-nas distill``: blockwise distillation of every (block, candidate) pair into a surrogate library."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tocsr_nas.commands import (
    add_device_options,
    add_executor_options,
    add_out,
    add_component,
    add_resume,
    add_seed,
    add_threads,
    given,
    positive_float,
    positive_int,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``distill``."""
    from tocsr_nas.stages.distill import DistillConfig

    d = DistillConfig()
    p = subparsers.add_parser(
        "distill",
        help="distil every (block, candidate) pair of a search space into a surrogate library",
        description=(
            "Run the teacher once over noisy latents of training photo patches (timesteps across the whole "
            "schedule), capture every searchable block's inputs and outputs, and train each (block, candidate) "
            "pair to reproduce its block's output (feature MSE normalised per block). Pairs are independent jobs "
            "(--workers at a time, in processes or --executor ray tasks); each finished pair is saved at once, so --resume after a crash retrains "
            "nothing that finished. Writes OUT/manifest.json and OUT/<block>/<candidate>.safetensors."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--teacher", type=Path, help="teacher folder (default: the shipped tiny teacher)")
    src.add_argument("--preset", help="a preset teacher with random weights instead (tiny, sd21-vae16)")
    p.add_argument("--space", help="search space YAML (default: the component's packaged space; for the denoiser the one of the teacher's family: unet, unet2d or transformer)")
    add_component(p)
    add_out(p, "library folder: new or empty, or the one to --resume")
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"Adam steps per pair (default {d.steps})")
    p.add_argument("--samples", type=positive_int, default=d.samples, help=f"training feature samples (default {d.samples})")
    p.add_argument(
        "--val-samples", type=positive_int, default=d.val_samples,
        help=f"held-out feature samples, from the validation photos (default {d.val_samples})",
    )
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"samples per step (default {d.batch_size})")
    p.add_argument("--lr", type=positive_float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    add_seed(p, d.seed, "seed of data, noise and initialisation")
    p.add_argument("--resolution", type=positive_int, metavar="PX", help="patch side in pixels (default: the teacher's)")
    p.add_argument(
        "--workers", type=positive_int, default=d.workers,
        help=f"pairs trained at a time (processes, or Ray tasks in flight; default {d.workers})",
    )
    add_executor_options(p, "(block, candidate) pairs")
    add_threads(
        p, d.threads, f"torch threads of the teacher capture and of each job (default {d.threads}: small blocks gain "
        "nothing from more)",
    )  # fmt: skip
    add_device_options(p)
    add_resume(p, "finish the library in OUT; finished pairs are kept")
    p.add_argument("--keep-features", action="store_true", help="keep OUT/features (the captured block features)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``distill`` from parsed arguments."""
    from tocsr_nas.stages.train import distill_library

    start = time.perf_counter()
    library = distill_library(
        args.out, teacher=args.teacher, preset=args.preset, space=args.space, resume=args.resume, component=args.component,
        progress=not args.no_progress, executor=args.executor, ray_address=args.ray_address,
        **given(args, "steps", "samples", "val_samples", "batch_size", "lr", "seed", "resolution", "workers", "threads",
                "keep_features", "device", "dtype"),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    out = args.out
    df = library.losses()
    trainable = df[df.trainable]
    ratios = list(trainable.ratio)
    improved = int((trainable.final_loss < trainable.initial_loss).sum())
    print(f"surrogate library: {out}  ({len(df)} pairs, {len(trainable)} trainable, space {library.space_hash}, "
          f"teacher {library.teacher_fingerprint})")
    if ratios:
        worst = trainable.iloc[int(trainable.ratio.values.argmax())]
        print(f"final / initial held-out loss: median {statistics.median(ratios):.3f}, worst {max(ratios):.3f} "
              f"({worst.block} {worst.candidate}); {improved}/{len(trainable)} trainable pairs improved")
    print(f"time: {seconds:.1f} s (pairs: {df.seconds.sum():.1f} s of work, --workers {args.workers}, --executor {args.executor})")
    return 0
