"""``tocsr-nas evaluate``: PSNR/SSIM (Y channel), cost and speed of bicubic, multi-step and one-step SR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tocsr_nas.commands import add_device_options, add_out, add_threads, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="compare bicubic, the multi-step and the one-step SR model on held-out photos",
        description=(
            "Downscale each HR image (antialiased bicubic), upscale it back with bicubic, the multi-step SR model "
            "and the one-step model, and report PSNR and SSIM on the Y channel (BT.601, border crop of SCALE px), "
            "seconds per image, and params/GMACs of the UNet and the VAE encoder/decoder (fvcore). A one-step "
            "--model finds its multi-step model through the path it records (or --multistep). Writes "
            "evaluation.json and comparison.png to --out (default: MODEL/evaluation)."
        ),
    )
    p.add_argument("--model", required=True, type=Path, help="SR model folder (one-step or multi-step)")
    p.add_argument("--multistep", type=Path, default=None, help="the multi-step SR folder, for a one-step --model")
    p.add_argument("--images", type=Path, default=None, help="folder of HR images (default: the held-out photos)")
    p.add_argument("--scale", type=positive_int, default=4, help="upscaling factor (default 4)")
    p.add_argument("--steps", type=positive_int, default=None, help="DDIM steps of the multi-step model (default: its own)")
    p.add_argument("--max-side", type=positive_int, default=None, help="centre-crop each image to at most this many px per side")
    p.add_argument("--decoder", type=Path, default=None, help="a compact VAE decoder folder (export of a --component vae.decoder search) to decode with")
    add_out(p, "output folder (default: MODEL/evaluation)", required=False)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_threads(p)
    add_device_options(p)
    p.set_defaults(func=run)


def format_report(report: dict) -> str:
    """The terminal table of an evaluation report."""
    lines = [f"x{report['scale']} on {', '.join(i['name'] for i in report['images'])}"]
    lines.append(f"{'method':<10} {'PSNR-Y dB':>10} {'SSIM-Y':>8} {'s/image':>9}")
    for name, m in report["methods"].items():
        extra = f"  ({m['steps']} DDIM steps)" if "steps" in m else (f"  (t* = {m['timestep']})" if "timestep" in m else "")
        lines.append(f"{name:<10} {m['psnr_y']:>10.2f} {m['ssim_y']:>8.4f} {m['seconds_per_image']:>9.2f}{extra}")
    vb = report["vae_bound"]
    lines.append(f"{'(VAE HR)':<10} {vb['psnr_y']:>10.2f} {vb['ssim_y']:>8.4f} {'':>9}  (D(E(HR)): the VAE's own ceiling)")
    c = report["complexity"]
    px = "x".join(map(str, c["reference_px"]))
    lines.append(
        f"cost at {px} px: UNet {c['unet']['gmacs']:.3f} GMACs ({c['unet']['params'] / 1e6:.2f} M params), "
        f"VAE encoder {c['vae_encoder']['gmacs']:.3f} GMACs, decoder {c['vae_decoder']['gmacs']:.3f} GMACs "
        f"({c['vae_decoder']['params'] / 1e6:.2f} M VAE params)"
    )
    lines.append(
        f"per image: multi-step {c['multistep_gmacs_per_image']:.2f} GMACs (VAE {100 * c['vae_share_multistep']:.0f} %), "
        f"one-step {c['onestep_gmacs_per_image']:.2f} GMACs (VAE {100 * c['vae_share_onestep']:.0f} %)"
    )
    if report.get("speedup"):
        lines.append(
            f"one-step speed-up over multi-step: {report['speedup']:.1f}x per image, "
            f"{report['denoise_speedup']:.1f}x for the denoising alone (the VAE encoder/decoder cost both the same)"
        )
    if report["outputs"]:
        lines.append(f"wrote {report['outputs']['json']} and {report['outputs']['grid']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``."""
    from tocsr_nas.devices import resolve_for
    from tocsr_nas.sr.evaluate import evaluate
    from tocsr_nas.threads import set_threads

    placement = resolve_for("evaluate", args.device, args.dtype)
    set_threads(args.threads)
    with placement.autocast():  # a reduced --dtype: the models' ops in bfloat16, their weights float32
        report = evaluate(
            args.model, multistep_dir=args.multistep, images=args.images, scale=args.scale, steps=args.steps,
            max_side=args.max_side, out=args.out or args.model / "evaluation", decoder=args.decoder,
        )  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
