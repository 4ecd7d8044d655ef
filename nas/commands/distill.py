"""``tocsr-nas distill``: blockwise distillation of every (block, candidate) pair into a surrogate library."""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from tocsr_nas.commands import non_negative_int, positive_int
from tocsr_nas.errors import TocsrError

logger = logging.getLogger(__name__)


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
            "(--workers processes); each finished pair is saved at once, so --resume after a crash retrains "
            "nothing that finished. Writes OUT/manifest.json and OUT/<block>/<candidate>.safetensors."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--teacher", type=Path, help="teacher folder (default: the shipped tiny teacher)")
    src.add_argument("--preset", help="a preset teacher with random weights instead (tiny, sd21-vae16)")
    p.add_argument("--space", help="search space YAML (default: the packaged space 'unet')")
    p.add_argument("--out", type=Path, required=True, help="library folder: new or empty, or the one to --resume")
    p.add_argument("--steps", type=non_negative_int, default=d.steps, help=f"Adam steps per pair (default {d.steps})")
    p.add_argument("--samples", type=positive_int, default=d.samples, help=f"training feature samples (default {d.samples})")
    p.add_argument(
        "--val-samples", type=positive_int, default=d.val_samples,
        help=f"held-out feature samples, from the validation photos (default {d.val_samples})",
    )
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"samples per step (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of data, noise and initialisation (default {d.seed})")
    p.add_argument("--resolution", type=positive_int, metavar="PX", help="patch side in pixels (default: the teacher's)")
    p.add_argument("--workers", type=positive_int, default=d.workers, help=f"parallel jobs (processes; default {d.workers})")
    p.add_argument(
        "--threads", type=positive_int, default=d.threads,
        help=f"torch threads of the teacher capture and of each job (default {d.threads}: small blocks gain "
        "nothing from more)",
    )
    p.add_argument("--resume", action="store_true", help="finish the library in OUT; finished pairs are kept")
    p.add_argument("--keep-features", action="store_true", help="keep OUT/features (the captured block features)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``distill`` from parsed arguments."""
    from tocsr_nas.stages.distill import DistillConfig, distill_teacher
    from tocsr_nas.stages.space import build_space
    from tocsr_nas.teacher import Teacher, build_teacher, default_teacher_dir

    start = time.perf_counter()
    if not (args.lr > 0):
        raise TocsrError(f"--lr must be positive, got {args.lr}")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise TocsrError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.resume:
        raise TocsrError(
            f"--out {out} exists and is not empty; pass --resume to finish the library in it, or choose a new "
            "folder (nothing was changed)"
        )
    teacher = build_teacher(args.preset) if args.preset else Teacher.load(args.teacher or default_teacher_dir())
    teacher.eval()
    config = DistillConfig(
        steps=args.steps,
        samples=args.samples,
        val_samples=args.val_samples,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        resolution=args.resolution,
        workers=args.workers,
        threads=args.threads,
        keep_features=args.keep_features,
    )
    resolution = config.resolution or teacher.default_resolution
    teacher.latent_size(resolution)  # a resolution the VAE cannot take is an error before any work
    probe = teacher.unet_example_inputs(1, resolution=teacher.vae_scale_factor * 8)
    space = build_space(teacher.unet, args.space, probe=probe)
    logger.info("%s: %d (block, candidate) pairs", space.summary(), sum(len(b.choices) - 1 for b in space.blocks))
    library = distill_teacher(teacher, space, out, config, resume=args.resume, progress=not args.no_progress)
    seconds = time.perf_counter() - start
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
    print(f"time: {seconds:.1f} s (pairs: {df.seconds.sum():.1f} s of work, --workers {args.workers})")
    return 0
