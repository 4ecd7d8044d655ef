"""How much the one-step model's luma refiner depends on its random initialisation.

For a one-step SR model (``tocsr-nas sr distill``), the luma refiner is refitted with the model's
own settings, data and seeds, once per ``SPEC``, and scored on the photos never trained on
(centre crops of 256 px, as the demo does). A ``SPEC`` is comma-separated ``KEY=VALUE`` pairs:
``init=N`` seeds the refiner's initial weights (``fit_refiner(init_seed=N)``; default: the model's seed),
the others replace ``DistillConfig`` fields (e.g. ``refine_steps``, ``refine_pool``). Prints the
mean PSNR-Y gain over bicubic, the three worst photos (gain, CIEDE2000 change) and the CPU seconds
of the fit.

Usage: ``.venv/bin/python benchmarks/sr_refiner_seeds.py runs/demo/onestep init=1 init=2 init=3 \\
init=1,refine_steps=1200,refine_pool=192``
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import torch

from tocsr_nas.sr.evaluate import eval_images
from tocsr_nas.sr.metrics import sr_metrics
from tocsr_nas.sr.model import SRModel, bicubic_upsample
from tocsr_nas.sr.onestep import DistillConfig, fit_refiner
from tocsr_nas.sr.train import load_photos
from tocsr_nas.sr.upscale import super_resolve
from tocsr_nas.teacher.data import downscale, to_uint8


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    model = SRModel.load(argv[0], kind="onestep")
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    base = DistillConfig(**{k: v for k, v in model.config.get("distill", {}).items() if k in known})
    photos = load_photos(base.images, "train", val_fraction=base.val_fraction, seed=base.seed, min_size=base.pool_patch)
    images = list(eval_images(None, model.scale, 256))
    for spec in argv[1:]:
        options = dict(item.split("=") for item in spec.split(","))
        init = int(options.pop("init")) if "init" in options else None
        config = dataclasses.replace(base, **{k: int(v) for k, v in options.items()})
        start = time.process_time()
        model.refiner = fit_refiner(model, photos, config, init_seed=init)
        fit = time.process_time() - start
        rows = []
        for name, hr in images:
            lr = downscale(hr[None], model.scale)
            ref = to_uint8(hr)
            bic = sr_metrics(ref, to_uint8(bicubic_upsample(lr, model.scale)[0]), model.scale)
            out = sr_metrics(ref, to_uint8(super_resolve(model, lr)[0]), model.scale)
            rows.append((name, out["psnr_y"] - bic["psnr_y"], out["ciede2000"] - bic["ciede2000"]))
        worst = ", ".join(f"{n} {g:+.2f} dB (dE {d:+.2f})" for n, g, d in sorted(rows, key=lambda r: r[1])[:3])
        print(f"{spec}: mean gain {np.mean([r[1] for r in rows]):+.2f} dB, worst {worst}; "
              f"mean dE change {np.mean([r[2] for r in rows]):+.2f}; fit {fit:.0f} CPU s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
