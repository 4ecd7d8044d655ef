"""``tocsr-nas sr``: adapt a backbone to super-resolution (``sr train``) and distil it into one step (``sr distill``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tocsr_nas.errors import TocsrError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sr`` with its ``train`` and ``distill`` actions."""
    parser = subparsers.add_parser("sr", help="SR adaptation of a backbone and one-step distillation")
    sub = parser.add_subparsers(dest="sr_command", metavar="ACTION", parser_class=type(parser))
    parser.set_defaults(func=lambda args: _missing_action(parser))

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
    train.add_argument("--out", required=True, type=Path, help="output SR model folder (new, or the one to --resume)")
    train.add_argument("--teacher", type=Path, default=None, help="teacher folder for a compact backbone's VAE (default: the one it records)")
    train.add_argument("--steps", type=int, default=None, help="optimisation steps (default 300)")
    train.add_argument("--batch-size", type=int, default=None, help="latent crops per step (default 16)")
    train.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-4)")
    train.add_argument("--seed", type=int, default=None, help="seed of data and noise (default 0)")
    train.add_argument("--pool-size", type=int, default=None, help="training patches encoded once (default 96)")
    train.add_argument("--trainable", choices=("all", "unet"), default=None, help="train the UNet and null context (all, default) or the UNet only")
    train.add_argument("--sampler-steps", type=int, default=None, help="default DDIM steps of the saved model (default 20)")
    train.add_argument(
        "--strength", type=float, default=None,
        help="sampler strength in (0, 1]: 1 starts DDIM from pure noise, less from the noised LR latent (default 0.3)",
    )  # fmt: skip
    train.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 50)")
    train.add_argument("--images", type=Path, default=None, help="train on this folder of images instead of the built-in photos")
    _common(train)
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
    distill.add_argument("--out", required=True, type=Path, help="output one-step model folder")
    distill.add_argument("--steps", type=int, default=None, help="optimisation steps (default 200)")
    distill.add_argument("--batch-size", type=int, default=None, help="latent crops per step (default 16)")
    distill.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-4)")
    distill.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    distill.add_argument("--timestep", type=int, default=None, help="t* (default: automatic noise-level matching)")
    distill.add_argument("--start", choices=("lr", "noise"), default=None, help="generator input: the LR latent (default) or noised LR latent")
    distill.add_argument("--target-steps", type=int, default=None, help="DDIM steps of the distilled sampler (default: the SR model's)")
    distill.add_argument("--pool-size", type=int, default=None, help="training patches with DDIM outputs (default 32)")
    distill.add_argument("--pixel-weight", type=float, default=None, help="weight of the pixel loss (default 10)")
    distill.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 50)")
    distill.add_argument("--images", type=Path, default=None, help="train on this folder of images instead")
    _common(distill)
    distill.set_defaults(func=run_distill)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue OUT from its last checkpoint")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep OUT/checkpoints after success (to extend --steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is often fastest on a busy machine)")


def _missing_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def set_threads(threads: int | None) -> None:
    """Apply ``--threads``."""
    if threads is None:
        return
    if threads < 1:
        raise TocsrError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _config(cls, out: Path, resume: bool, given: dict):  # noqa: ANN001, ANN202
    from tocsr_nas._io import read_json

    given = {k: v for k, v in given.items() if v is not None}
    base = cls()
    state = out / "checkpoints" / "state.json"
    if resume and state.is_file():
        base = cls(**read_json(state)["config"])  # unset options keep the checkpoint's values
    return dataclasses.replace(base, **given)


def run_train(args: argparse.Namespace) -> int:
    """Run ``sr train``."""
    from tocsr_nas.sr.train import SRTrainConfig, train_sr

    set_threads(args.threads)
    config = _config(
        SRTrainConfig,
        args.out,
        args.resume,
        {
            "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "pool_size": args.pool_size, "trainable": args.trainable, "sampler_steps": args.sampler_steps,
            "strength": args.strength, "checkpoint_every": args.checkpoint_every, "images": str(args.images) if args.images else None,
        },
    )  # fmt: skip
    model = train_sr(
        args.backbone, args.out, config, teacher=args.teacher, resume=args.resume,
        keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress,
    )  # fmt: skip
    m = model.config["metrics"]
    print(
        f"SR model saved to {args.out}: conditioned validation loss {m['val_loss_init']:.4f} -> {m['val_loss']:.4f} "
        f"({config.steps} steps, {m['seconds']:.0f} s)"
    )
    return 0


def run_distill(args: argparse.Namespace) -> int:
    """Run ``sr distill``."""
    from tocsr_nas.sr.onestep import DistillConfig, distill_onestep

    set_threads(args.threads)
    config = _config(
        DistillConfig,
        args.out,
        args.resume,
        {
            "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "timestep": args.timestep, "start": args.start, "target_steps": args.target_steps,
            "pool_size": args.pool_size, "w_pixel": args.pixel_weight, "checkpoint_every": args.checkpoint_every,
            "images": str(args.images) if args.images else None,
        },
    )  # fmt: skip
    model = distill_onestep(
        args.teacher, args.out, config, resume=args.resume, keep_checkpoints=args.keep_checkpoints,
        progress=not args.no_progress,
    )  # fmt: skip
    m, o = model.config["metrics"], model.config["onestep"]
    print(
        f"one-step model saved to {args.out}: t* = {o['timestep']} (start {o['start']}); held-out patch PSNR "
        f"{m['val_psnr_init']:.2f} -> {m['val_psnr']:.2f} dB ({config.steps} steps, {m['seconds']:.0f} s)"
    )
    return 0
