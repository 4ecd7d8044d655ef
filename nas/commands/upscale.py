"""``tocsr-nas upscale``: super-resolve image files with an SR model folder (multi-step or one-step)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tocsr_nas.commands import add_device_options, add_out, add_threads, positive_int, seed


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``upscale``."""
    p = subparsers.add_parser(
        "upscale",
        help="upscale PNG/JPEG images with an SR model (multi-step or one-step)",
        description=(
            "Upscale each input image (any size; padded to the model's multiple and cropped back; tiled with "
            "overlap blending when large) and write OUT/<name>.png; an existing file is replaced only with "
            "--overwrite, an input never. Works with the folder of `sr train` (multi-step DDIM) and of "
            "`sr distill` (one step)."
        ),
    )
    p.add_argument("--model", required=True, type=Path, help="SR model folder")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="input images (PNG, JPEG, ...)")
    add_out(p, "output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing OUT/<name>.png files (never an input)")
    p.add_argument("--scale", type=positive_int, default=None, help="upscaling factor (must be the model's; default: the model's)")
    p.add_argument("--steps", type=positive_int, default=None, help="DDIM steps of a multi-step model (default: the model's)")
    p.add_argument("--seed", type=seed, default=None, help="sampler seed (default: the model's)")
    p.add_argument("--decoder", type=Path, default=None, help="a compact VAE decoder folder (export of a --component vae.decoder search) to decode with")
    add_threads(p)
    add_device_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``upscale``."""
    from tocsr_nas._io import check_out_path
    from tocsr_nas.devices import resolve
    from tocsr_nas.sr.model import SRModel
    from tocsr_nas.sr.upscale import output_files, upscale_files
    from tocsr_nas.teacher.data import load_image
    from tocsr_nas.threads import set_threads

    placement = resolve(args.device, args.dtype)
    set_threads(args.threads)
    check_out_path(args.out, model=args.model)
    output_files(args.inputs, args.out, overwrite=args.overwrite)  # an output in the way fails before any work
    for path in args.inputs:  # fail on an unreadable input before loading the model
        load_image(path)
    model = SRModel.load(args.model)
    if args.decoder is not None:
        from tocsr_nas.teacher.components import replace_decoder

        replace_decoder(model.vae, args.decoder)
    model.to(placement.device)  # once; each image moves there and its result back
    with placement.autocast():  # a reduced --dtype: the model's ops in bfloat16, its weights float32
        outputs = upscale_files(
            model, args.inputs, args.out, scale=args.scale, steps=args.steps, seed=args.seed, overwrite=args.overwrite
        )
    for path in outputs:
        print(path)
    return 0
