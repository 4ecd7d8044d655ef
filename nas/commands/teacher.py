"""``tocsr-nas teacher``: train a preset teacher on photo patches (``teacher train``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from tocsr_nas.errors import TocsrError

logger = logging.getLogger(__name__)



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``teacher`` and its ``train`` sub-command."""
    parser = subparsers.add_parser("teacher", help="train a teacher (VAE + UNet) on photo patches")
    sub = parser.add_subparsers(dest="teacher_command", metavar="ACTION", parser_class=type(parser))
    parser.set_defaults(func=lambda args: _missing_action(parser))

    train = sub.add_parser(
        "train",
        help="train the VAE, then the UNet, and save a diffusers-format teacher folder",
        description=(
            "Train a preset teacher: the 16-channel VAE (reconstruction + KL), then the UNet "
            "(noise prediction) with its learned null context, on patches of the scikit-image "
            "photos (or --images DIR). Writes OUT/{vae,unet,scheduler,context}/, teacher.json and "
            "metrics.json; checkpoints go to OUT/checkpoints/ and --resume continues from them. "
            "Unset options take the defaults (or, with --resume, the checkpoint's settings)."
        ),
    )
    train.add_argument("--preset", default=None, help="teacher preset (default: tiny)")
    train.add_argument("--out", required=True, type=Path, help="output folder (new, or the one to --resume)")
    train.add_argument("--steps", type=int, default=None, help="UNet training steps (default 1000)")
    train.add_argument("--vae-steps", type=int, default=None, help="VAE training steps (default 1000)")
    train.add_argument("--batch-size", type=int, default=None, help="UNet batch size (default 32)")
    train.add_argument("--vae-batch-size", type=int, default=None, help="VAE batch size (default 16)")
    train.add_argument("--seed", type=int, default=None, help="seed of weights, data and noise (default 0)")
    train.add_argument("--lr", type=float, default=None, help="UNet peak learning rate (default 5e-4)")
    train.add_argument("--vae-lr", type=float, default=None, help="VAE peak learning rate (default 1e-3)")
    train.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 100)")
    train.add_argument("--val-patches", type=int, default=None, help="held-out patches for the metrics (default 128)")
    train.add_argument(
        "--calibration-patches", type=int, default=None, help="patches that set the VAE scaling factor (default 64)"
    )
    train.add_argument("--images", type=Path, default=None, help="train on this folder of images instead")
    train.add_argument("--resume", action="store_true", help="continue OUT from its last checkpoint")
    train.add_argument(
        "--keep-checkpoints", action="store_true", help="keep OUT/checkpoints (optimizer state) after success"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is much faster on a busy shared machine)",
    )
    train.set_defaults(func=run_train)


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_train(args: argparse.Namespace) -> int:
    """Run ``teacher train`` from parsed arguments."""
    from tocsr_nas._io import read_json
    from tocsr_nas.teacher import available_presets
    from tocsr_nas.teacher.train import TrainConfig, train_teacher

    given = {
        "preset": args.preset,
        "steps": args.steps,
        "vae_steps": args.vae_steps,
        "batch_size": args.batch_size,
        "vae_batch_size": args.vae_batch_size,
        "seed": args.seed,
        "unet_lr": args.lr,
        "vae_lr": args.vae_lr,
        "checkpoint_every": args.checkpoint_every,
        "val_patches": args.val_patches,
        "calibration_patches": args.calibration_patches,
        "images": str(args.images) if args.images is not None else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.threads is not None:
        if args.threads < 1:
            raise TocsrError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if given.get("preset", "tiny") not in available_presets():
        raise TocsrError(f"unknown teacher preset {given['preset']!r}; valid presets: {', '.join(available_presets())}")
    base = TrainConfig()
    state_path = args.out / "checkpoints" / "state.json"
    if args.resume and state_path.is_file():
        base = TrainConfig(**read_json(state_path)["config"])  # unset options keep the checkpoint's values
    config = dataclasses.replace(base, **given)
    metrics = train_teacher(
        args.out, config, resume=args.resume, keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress
    )
    if metrics is not None:
        print(
            f"teacher saved to {args.out}: VAE PSNR {metrics['vae_psnr_db']:.2f} dB on held-out "
            f"{', '.join(metrics['val_images'])}; UNet validation loss {metrics['unet_val_loss_init']:.4f} -> "
            f"{metrics['unet_val_loss']:.4f}; {metrics['seconds']['total']:.0f} s"
        )
    return 0
