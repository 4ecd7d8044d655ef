"""Does the one-step generator drive the luma refiner? The refiner retrained without its output.

For a one-step model with a luma refiner (``tocsr-nas sr distill``), a second refiner is trained
with the same settings, data and seed, but with the generator's decoded output replaced by the
bicubic upsampling (so it sees the LR image only: a plain learned residual on bicubic). Both are
scored on the photos never trained on (or ``--images DIR``) with ``tocsr-nas evaluate``'s protocol
(PSNR-Y gain over bicubic, CIEDE2000); the difference is what the generator contributes.

Usage: ``.venv/bin/python benchmarks/sr_refiner_ablation.py runs/demo/onestep --max-side 256``
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from tocsr_nas.sr.evaluate import eval_images
from tocsr_nas.sr.metrics import sr_metrics
from tocsr_nas.sr.model import SRModel, bicubic_upsample
from tocsr_nas.sr.onestep import DistillConfig, fit_refiner
from tocsr_nas.sr.train import load_photos
from tocsr_nas.sr.upscale import super_resolve
from tocsr_nas.teacher.data import downscale, to_uint8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a one-step SR model folder with a luma refiner")
    p.add_argument("--images", default=None, help="folder of HR images (default: every scikit-image photo not trained on)")
    p.add_argument("--max-side", type=int, default=None, help="centre-crop each image to at most this many px per side")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = SRModel.load(args.model, kind="onestep")
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    config = DistillConfig(**{k: v for k, v in model.config.get("distill", {}).items() if k in known})
    photos = load_photos(config.images, "train", val_fraction=config.val_fraction, seed=config.seed, min_size=config.pool_patch)
    lr_only = fit_refiner(model, photos, config, use_generator=False)
    rows = {"generator-driven": [], "LR only": []}
    for name, hr in eval_images(args.images, model.scale, args.max_side):
        lr = downscale(hr[None], model.scale)
        ref, up = to_uint8(hr), bicubic_upsample(lr, model.scale)
        bic = sr_metrics(ref, to_uint8(up[0]), model.scale)
        full = sr_metrics(ref, to_uint8(super_resolve(model, lr)[0]), model.scale)
        with torch.no_grad():
            alone = sr_metrics(ref, to_uint8(lr_only(lr, up, up)[0]), model.scale)
        rows["generator-driven"].append((name, full["psnr_y"] - bic["psnr_y"], full["ciede2000"] - bic["ciede2000"]))
        rows["LR only"].append((name, alone["psnr_y"] - bic["psnr_y"], alone["ciede2000"] - bic["ciede2000"]))
    for label, r in rows.items():
        worst = min(r, key=lambda x: x[1])
        print(
            f"{label:<17} mean dY {np.mean([x[1] for x in r]):+.2f} dB, worst {worst[0]} {worst[1]:+.2f} dB, "
            f"mean dE00 change {np.mean([x[2] for x in r]):+.2f}"
        )


if __name__ == "__main__":
    main()
