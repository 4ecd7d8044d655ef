"""``tocsr-nas sr``: adapt a backbone to super-resolution (``sr train``) and distil it into one step (``sr distill``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tocsr_nas.commands import (
    add_action_group,
    add_checkpoint_options,
    add_image_options,
    add_out,
    add_seed,
    add_step_options,
    fraction,
    given,
    non_negative_float,
    non_negative_int,
    positive_int,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sr`` with its ``train`` and ``distill`` actions."""
    sub = add_action_group(subparsers, "sr", "SR adaptation of a backbone and one-step distillation", "sr_command")

    train = sub.add_parser(
        "train",
        help="condition a backbone on the LR image and fine-tune it on HR/LR pairs",
        description=(
            "Condition a backbone (a teacher folder's UNet, or an exported compact UNet) on the VAE latent of the "
            "bicubic-upsampled LR image (conv_in widened, new weights zero-initialised), fine-tune it on HR/LR "
            "patch pairs of the training photos with the teacher's noise-prediction objective, and save a "
            "self-contained SR model folder (weights, VAE, scheduler, sr.json). Checkpoints go to OUT/checkpoints; "
            "--resume continues them. Unset options take the defaults, or with --resume the checkpoint's."
        ),
    )
    train.add_argument("--backbone", required=True, type=Path, help="teacher folder or compact UNet folder")
    add_out(train, "output SR model folder (new, or the one to --resume)")
    train.add_argument("--teacher", type=Path, default=None, help="teacher folder for a compact backbone's VAE (default: the one it records)")
    add_step_options(train, steps=300, batch_size=16, lr="3e-4")
    add_seed(train, help="seed of data and noise")
    train.add_argument("--pool-size", type=positive_int, default=None, help="training patches encoded once (default 96)")
    train.add_argument("--trainable", choices=("all", "unet"), default=None, help="train the UNet and null context (all, default) or the UNet only")
    train.add_argument("--sampler-steps", type=positive_int, default=None, help="default DDIM steps of the saved model (default 20)")
    train.add_argument(
        "--strength", type=fraction, default=None,
        help="sampler strength in (0, 1]: 1 starts DDIM from pure noise, less from the noised LR latent (default 0.3)",
    )  # fmt: skip
    add_image_options(train, "train on this folder of images instead of the built-in photos")
    add_checkpoint_options(train, every=50)
    train.set_defaults(func=run_train)

    distill = sub.add_parser(
        "distill",
        help="distil a multi-step SR model into a one-step generator",
        description=(
            "Train a one-step generator initialised from the SR model: one backbone evaluation at a fixed timestep "
            "t*, read as a clean-latent prediction x0 = (x_t* - sqrt(1 - abar) eps) / sqrt(abar), trained to match "
            "the SR model's deterministic DDIM outputs plus reconstruction losses against the HR image in latent "
            "and pixel space (see docs/onestep.md). Saves an SR model folder of kind 'onestep'."
        ),
    )
    distill.add_argument("--teacher", required=True, type=Path, help="the multi-step SR model folder (from `sr train`)")
    add_out(distill, "output one-step model folder")
    add_step_options(distill, steps=200, batch_size=16, lr="1e-4")
    add_seed(distill)
    distill.add_argument("--timestep", type=non_negative_int, default=None, help="t* (default: automatic noise-level matching)")
    distill.add_argument("--start", choices=("lr", "noise"), default=None, help="generator input: the LR latent (default) or noised LR latent")
    distill.add_argument("--target-steps", type=positive_int, default=None, help="DDIM steps of the distilled sampler (default: the SR model's)")
    distill.add_argument("--pool-size", type=positive_int, default=None, help="training patches with DDIM outputs (default 32)")
    distill.add_argument("--pixel-weight", type=non_negative_float, default=None, help="weight of the pixel loss (default 10)")
    distill.add_argument("--refine-steps", type=non_negative_int, default=None, help="steps of the luma refiner on bicubic (default 600; 0: none)")
    add_image_options(distill)
    add_checkpoint_options(distill, every=50)
    distill.set_defaults(func=run_distill)


def run_train(args: argparse.Namespace) -> int:
    """Run ``sr train``."""
    from tocsr_nas.stages.train import train_sr_folder

    options = given(
        args, "steps", "batch_size", "lr", "seed", "pool_size", "trainable", "sampler_steps", "strength",
        "checkpoint_every", "images",
    )  # fmt: skip
    model, config = train_sr_folder(
        args.backbone, args.out, teacher=args.teacher, resume=args.resume, keep_checkpoints=args.keep_checkpoints,
        progress=not args.no_progress, threads=args.threads, device=args.device, dtype=args.dtype, **options,
    )  # fmt: skip
    m = model.config["metrics"]
    print(
        f"SR model saved to {args.out}: conditioned validation loss {m['val_loss_init']:.4f} -> {m['val_loss']:.4f} "
        f"({config.steps} steps, {m['seconds']:.0f} s)"
    )
    return 0


def run_distill(args: argparse.Namespace) -> int:
    """Run ``sr distill``."""
    from tocsr_nas.stages.train import distill_onestep_folder

    options = given(
        args, "steps", "batch_size", "lr", "seed", "timestep", "start", "target_steps", "pool_size",
        "checkpoint_every", "images", "refine_steps", w_pixel="pixel_weight",
    )  # fmt: skip
    model, config = distill_onestep_folder(
        args.teacher, args.out, resume=args.resume, keep_checkpoints=args.keep_checkpoints,
        progress=not args.no_progress, threads=args.threads, device=args.device, dtype=args.dtype, **options,
    )  # fmt: skip
    m, o = model.config["metrics"], model.config["onestep"]
    print(
        f"one-step model saved to {args.out}: t* = {o['timestep']} (start {o['start']}); held-out patch PSNR "
        f"{m['val_psnr_init']:.2f} -> {m['val_psnr']:.2f} dB ({config.steps} steps, {m['seconds']:.0f} s)"
    )
    return 0
