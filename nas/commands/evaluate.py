"""``tocsr-nas evaluate``: PSNR/SSIM (Y), PSNR (RGB), CIEDE2000, cost and speed of bicubic, multi-step and one-step SR."""

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
            "and the one-step model, and report per photo and on average PSNR and SSIM on the Y channel (BT.601, "
            "border crop of SCALE px), PSNR on RGB and the mean CIEDE2000 colour error, each method's worst photo, "
            "seconds per image, and params/GMACs of the UNet, the VAE encoder/decoder and the luma refiner (fvcore). "
            "The default photos are every scikit-image photo no training run uses. A one-step --model finds its "
            "multi-step model through the path it records (or --multistep). Writes evaluation.json, comparison.png "
            "and crops/PHOTO.png (2x2 grids) to --out (default: MODEL/evaluation)."
        ),
    )
    p.add_argument("--model", required=True, type=Path, help="SR model folder (one-step or multi-step)")
    p.add_argument("--multistep", type=Path, default=None, help="the multi-step SR folder, for a one-step --model")
    p.add_argument("--images", type=Path, default=None, help="folder of HR images (default: every scikit-image photo not trained on)")
    p.add_argument("--scale", type=positive_int, default=4, help="upscaling factor (default 4)")
    p.add_argument("--steps", type=positive_int, default=None, help="DDIM steps of the multi-step model (default: its own)")
    p.add_argument("--max-side", type=positive_int, default=None, help="centre-crop each image to at most this many px per side")
    p.add_argument("--decoder", type=Path, default=None, help="a compact VAE decoder folder (export of a --component vae.decoder search) to decode with")
    add_out(p, "output folder (default: MODEL/evaluation)", required=False)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_threads(p)
    add_device_options(p)
    p.set_defaults(func=run)


#: the per-photo table's metric columns: (report key, header, format)
TABLE_COLUMNS = (("psnr_y", "PSNR-Y", ".2f"), ("ssim_y", "SSIM-Y", ".4f"), ("psnr_rgb", "PSNR-RGB", ".2f"), ("ciede2000", "dE00", ".2f"))


def per_photo_table(report: dict) -> list[str]:
    """One row per photo and method: :data:`TABLE_COLUMNS` and the PSNR-Y gain over bicubic."""
    methods = report["methods"]
    head = f"{'photo':<20} {'method':<10} " + " ".join(f"{h:>8}" for _, h, _ in TABLE_COLUMNS) + f" {'dY vs bic':>9}"
    lines = [head]
    for i, image in enumerate(report["images"]):
        for name, m in methods.items():
            r = m["per_image"][i]
            gain = f"{r['gain_y']:>+9.2f}" if "gain_y" in r else f"{'':>9}"
            cells = " ".join(f"{format(r[k], f):>8}" for k, _, f in TABLE_COLUMNS)
            lines.append(f"{Path(image['name']).name[:20]:<20} {name:<10} {cells} {gain}")
    return lines


def format_report(report: dict) -> str:
    """The terminal tables of an evaluation report (per photo, then the means)."""
    lines = [f"x{report['scale']} on {len(report['images'])} photos", *per_photo_table(report), ""]
    lines.append(f"{'mean':<10} " + " ".join(f"{h:>8}" for _, h, _ in TABLE_COLUMNS) + f" {'dY vs bic':>9} {'s/image':>9}  worst photo")
    for name, m in report["methods"].items():
        extra = f"  ({m['steps']} DDIM steps)" if "steps" in m else (f"  (t* = {m['timestep']})" if "timestep" in m else "")
        gain = f"{m['gain_y']:>+9.2f}" if "gain_y" in m else f"{'':>9}"
        w = m["worst"]
        worst = f"{Path(w['name']).name} ({w['gain_y']:+.2f} dB)" if "gain_y" in w else f"{Path(w['name']).name} ({w['psnr_y']:.2f} dB)"
        cells = " ".join(f"{format(m[k], f):>8}" for k, _, f in TABLE_COLUMNS)
        lines.append(f"{name:<10} {cells} {gain} {m['seconds_per_image']:>9.2f}  {worst}{extra}")
    vb = report["vae_bound"]
    cells = " ".join(f"{format(vb[k], f):>8}" for k, _, f in TABLE_COLUMNS)
    lines.append(f"{'(VAE HR)':<10} {cells} {vb['gain_y']:>+9.2f} {'':>9}  (D(E(HR)): the VAE's own ceiling)")
    c = report["complexity"]
    px = "x".join(map(str, c["reference_px"]))
    lines.append(
        f"cost at {px} px: UNet {c['unet']['gmacs']:.3f} GMACs ({c['unet']['params'] / 1e6:.2f} M params), "
        f"VAE encoder {c['vae_encoder']['gmacs']:.3f} GMACs, decoder {c['vae_decoder']['gmacs']:.3f} GMACs "
        f"({c['vae_decoder']['params'] / 1e6:.2f} M VAE params)"
        + (f", luma refiner {c['refiner']['gmacs']:.3f} GMACs" if c.get("refiner") else "")
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
        o = report["outputs"]
        lines.append(f"wrote {o['json']}, {o['grid']} and {o['crops']}/")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``."""
    from tocsr_nas.devices import resolve
    from tocsr_nas.sr.evaluate import evaluate
    from tocsr_nas.threads import set_threads

    placement = resolve(args.device, args.dtype)
    set_threads(args.threads)
    with placement.autocast():  # a reduced --dtype: the models' ops in bfloat16, their weights float32
        report = evaluate(
            args.model, multistep_dir=args.multistep, images=args.images, scale=args.scale, steps=args.steps,
            max_side=args.max_side, out=args.out or args.model / "evaluation", decoder=args.decoder,
            device=placement.device,
        )  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
