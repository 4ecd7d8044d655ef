"""What the SR denoiser adds: PSNR/SSIM of ``D(E(bicubic(LR)))``, the SR path with the UNet left out.

For each photo never trained on (or ``--images DIR``) at ``--scale``: bicubic, and the model's VAE
decoding its own encoding of the bicubic image, with the evaluation protocol of
``tocsr-nas evaluate`` (Y channel, border crop of ``scale`` px). Compare with the one-step and
multi-step rows of ``evaluate``: the difference is what the denoiser contributes.

Usage: ``.venv/bin/python benchmarks/sr_without_denoiser.py runs/demo/onestep``
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tocsr_nas.teacher.data import downscale, to_uint8
from tocsr_nas.sr.evaluate import eval_images, resolve_models, vae_roundtrip
from tocsr_nas.sr.metrics import sr_metrics
from tocsr_nas.sr.model import bicubic_upsample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="an SR model folder (one-step or multi-step); only its VAE is used")
    p.add_argument("--images", default=None, help="folder of HR images (default: every scikit-image photo not trained on)")
    p.add_argument("--scale", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = next(iter(resolve_models(args.model).values()))
    rows = {"bicubic": [], "D(E(bicubic))": []}
    for name, hr in eval_images(args.images, args.scale):
        up = bicubic_upsample(downscale(hr[None], args.scale), args.scale)  # (1, 3, H, W)
        with torch.no_grad():
            coded = vae_roundtrip(model, up)[0]
        ref = to_uint8(hr)
        for key, image in (("bicubic", up[0]), ("D(E(bicubic))", coded)):
            m = sr_metrics(ref, to_uint8(image), args.scale)
            rows[key].append(m)
            print(f"{name}: {key} {m['psnr_y']:.2f} dB / {m['ssim_y']:.4f}")
    for key, ms in rows.items():
        print(f"mean {key}: {np.mean([m['psnr_y'] for m in ms]):.2f} dB / {np.mean([m['ssim_y'] for m in ms]):.4f}")


if __name__ == "__main__":
    main()
