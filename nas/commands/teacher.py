"""``tocsr-nas teacher``: train a preset teacher on photo patches (``teacher train``)."""

from __future__ import annotations

import argparse
import logging

from tocsr_nas.commands import (
    add_action_group,
    add_checkpoint_options,
    add_image_options,
    add_out,
    add_seed,
    add_step_options,
    given,
    positive_float,
    positive_int,
)

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``teacher`` and its ``train`` sub-command."""
    sub = add_action_group(subparsers, "teacher", "train a teacher (VAE + UNet) on photo patches", "teacher_command")

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
    add_out(train, "output folder (new, or the one to --resume)")
    add_step_options(
        train, steps=1000, batch_size=32, lr="5e-4", what=("UNet training steps", "UNet batch size", "UNet peak learning rate")
    )
    train.add_argument("--vae-steps", type=positive_int, default=None, help="VAE training steps (default 1000)")
    train.add_argument("--vae-batch-size", type=positive_int, default=None, help="VAE batch size (default 16)")
    add_seed(train, help="seed of weights, data and noise")
    train.add_argument("--vae-lr", type=positive_float, default=None, help="VAE peak learning rate (default 1e-3)")
    train.add_argument("--val-patches", type=positive_int, default=None, help="held-out patches for the metrics (default 128)")
    train.add_argument(
        "--calibration-patches", type=positive_int, default=None, help="patches that set the VAE scaling factor (default 64)"
    )
    add_image_options(train)
    add_checkpoint_options(
        train, every=100, keep="keep OUT/checkpoints (optimizer state) after success",
        threads="torch CPU threads (default: torch's choice; 1 is much faster on a busy shared machine)",
    )  # fmt: skip
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run ``teacher train`` from parsed arguments."""
    from tocsr_nas.stages.train import train_teacher_folder

    options = given(
        args, "preset", "steps", "vae_steps", "batch_size", "vae_batch_size", "seed", "vae_lr", "checkpoint_every",
        "val_patches", "calibration_patches", "images", unet_lr="lr",
    )  # fmt: skip
    metrics = train_teacher_folder(
        args.out, resume=args.resume, keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress,
        threads=args.threads, device=args.device, dtype=args.dtype, **options,
    )  # fmt: skip
    if metrics is not None:
        print(
            f"teacher saved to {args.out}: VAE PSNR {metrics['vae_psnr_db']:.2f} dB on held-out "
            f"{', '.join(metrics['val_images'])}; UNet validation loss {metrics['unet_val_loss_init']:.4f} -> "
            f"{metrics['unet_val_loss']:.4f}; {metrics['seconds']['total']:.0f} s"
        )
    return 0
