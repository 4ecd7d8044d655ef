"""Evaluate bicubic, the multi-step SR model and the one-step model on held-out photos.

For every image ``x_hr`` (cropped to a multiple of ``s``, optionally to a centred window of at
most ``max_side`` px), ``x_lr = downscale_s(x_hr)`` (antialiased bicubic, as in training) and each
method upscales ``x_lr`` back. Reported per method and per photo: PSNR and SSIM on the Y channel,
PSNR on RGB and the mean CIEDE2000 colour error, with a border crop of ``s`` pixels
(:mod:`tocsr_nas.sr.metrics`), their means over the photos, the method's worst photo (the
largest PSNR-Y loss against bicubic; bicubic's own: its lowest PSNR-Y), and the wall-clock
seconds per image (the whole pipeline: bicubic upsampling, VAE encoder, denoiser, VAE decoder),
also split into those three parts (``seconds_parts``).
For reference, ``vae_bound`` scores ``D(E(x_hr))``, the HR image through the VAE: no latent SR
model can be expected to beat its own decoder's reconstruction of the true HR latent.

**Complexity** (fvcore via :func:`~tocsr_nas.evaluators.count_complexity`; one fused
multiply-add = one MAC) of one denoiser call, the VAE encoder and the VAE decoder at a reference
HR size (the model's denoiser tile: ``tile * f`` px square), and the totals per reference image:
``steps x UNet + encoder + decoder`` (multi-step), ``UNet + encoder + decoder (+ luma refiner)``
(one step), with the VAE's share of each.

The default images are every scikit-image photo no training run uses
(:meth:`~tocsr_nas.teacher.data.PhotoDataset.heldout_suite`); ``images`` names any folder instead.

Outputs in ``out``: ``evaluation.json`` (the report), ``comparison.png`` (a grid: LR-bicubic |
multi-step | one-step | HR, centre crops, PSNR-Y and CIEDE2000 in the titles) and
``crops/<photo>.png``, one 2 x 2 grid per photo (bicubic, multi-step, one-step, HR) large enough
to see the detail, with PSNR-Y, PSNR-RGB and CIEDE2000 in the titles.

Example:
    >>> [(name, tuple(x.shape)) for name, x in eval_images(None, scale=4, max_side=64)][:3]
    [('ihc', (3, 64, 64)), ('motorcycle_left', (3, 64, 64)), ('motorcycle_right', (3, 64, 64))]
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tocsr_nas._io import atomic_path, atomic_write_json, check_out_path
from tocsr_nas.locks import locks_folder
from tocsr_nas.teacher.data import PhotoDataset, downscale, to_uint8
from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators.complexity import count_complexity
from tocsr_nas.sr.metrics import sr_metrics
from tocsr_nas.sr.model import SRModel, SRModelError, bicubic_upsample, sr_fingerprint
from tocsr_nas.sr.tiling import pad_to_multiple, tiled_map
from tocsr_nas.sr.upscale import VAE_TILE, super_resolve

__all__ = ["evaluate", "resolve_models", "model_complexity", "eval_images", "plot_comparison", "plot_crops", "vae_roundtrip", "METRICS"]

logger = logging.getLogger(__name__)


def resolve_models(model_dir: str | Path, multistep_dir: str | Path | None = None) -> dict[str, SRModel]:
    """The models to compare: ``{"multistep": ..., "onestep": ...}`` (either may be absent).

    ``model_dir`` may hold either kind. For a one-step model the multi-step model is
    ``multistep_dir``, else the SR folder the one-step model records (if it still exists).

    Raises:
        SRModelError: the multi-step model is not the one the one-step model was distilled from
            (their recorded fingerprints differ), or ``multistep_dir`` is not an SR folder.
    """
    model = SRModel.load(model_dir)
    models = {model.kind: model}
    if model.kind == "onestep":
        source = multistep_dir or model.config.get("source", {}).get("sr_model")
        if source and (Path(source) / "sr.json").is_file():
            models["multistep"] = SRModel.load(source, kind="multistep")
            recorded, found = model.config.get("source", {}).get("sr_fingerprint"), sr_fingerprint(source)
            if recorded is not None and recorded != found:
                raise SRModelError(
                    f"{source} (fingerprint {found}) is not the multi-step model the one-step model {model_dir} was "
                    f"distilled from ({recorded}); pass that one with --multistep"
                )
        elif multistep_dir:
            raise SRModelError(f"--multistep {multistep_dir} is not an SR model folder")
        else:
            logger.warning("the one-step model's SR folder %s is gone: evaluating without the multi-step model", source)
    elif multistep_dir is not None:
        raise TocsrError("--multistep is for a one-step --model; this --model is already the multi-step model")
    return models


def eval_images(images: str | Path | None, scale: int, max_side: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """``(name, HR (3, H, W))`` pairs: a folder's images, or every scikit-image photo not trained on.

    Each image is centre-cropped to at most ``max_side`` px per side and to a multiple of ``scale``.

    Raises:
        TocsrError: ``max_side`` below ``4 scale`` (the smallest image evaluated: an LR side of 4 px),
            or an unreadable or smaller image in the folder (named).
    """
    if max_side is not None and max_side < 4 * scale:
        raise TocsrError(f"--max-side {max_side} is below {4 * scale} px, the smallest image evaluated at x{scale}")
    photos = PhotoDataset.from_folder(images, "all", min_size=4 * scale) if images else PhotoDataset.heldout_suite(min_size=4 * scale)
    out = []
    for i, name in enumerate(photos.names):
        x = photos.image(i)  # (3, H, W)
        h, w = x.shape[-2:]
        th, tw = (min(h, max_side), min(w, max_side)) if max_side else (h, w)
        th, tw = th - th % scale, tw - tw % scale
        top, left = (h - th) // 2, (w - tw) // 2
        out.append((name, x[:, top : top + th, left : left + tw].contiguous()))
    return out


class _Encoder(nn.Module):
    def __init__(self, model: SRModel) -> None:
        super().__init__()
        self.vae = model.vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode()


class _Decoder(nn.Module):
    def __init__(self, model: SRModel) -> None:
        super().__init__()
        self.vae = model.vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


def model_complexity(model: SRModel, steps: int) -> dict[str, Any]:
    """Params and GMACs of the denoiser, VAE encoder and decoder (and ``model``'s luma refiner,
    counted in the one-step total; ``None`` without one) at the reference size, and totals."""
    f, c = model.vae_scale_factor, int(model.config["latent_channels"])
    side = int(model.config.get("tile", 32))
    px = side * f
    z = torch.zeros(1, c, side, side)
    with torch.no_grad():
        unet = count_complexity(model.net, (z, torch.tensor([500]), z))
        enc = count_complexity(_Encoder(model), (torch.zeros(1, 3, px, px),))
        dec = count_complexity(_Decoder(model), (z,))
        ref = None
        if model.refiner is not None:
            x, lr = torch.zeros(1, 3, px, px), torch.zeros(1, 3, px // model.scale, px // model.scale)
            ref = count_complexity(model.refiner, (lr, x, x))
    vae = enc.gmacs + dec.gmacs
    refine = ref.gmacs if ref is not None else 0.0
    multi, one = steps * unet.gmacs + vae, unet.gmacs + vae + refine
    return {
        "reference_px": [px, px],
        "unet": {"params": unet.params, "gmacs": unet.gmacs},
        "vae_encoder": {"params": enc.params, "gmacs": enc.gmacs},
        "vae_decoder": {"params": dec.params, "gmacs": dec.gmacs},
        "refiner": {"params": ref.params, "gmacs": ref.gmacs} if ref is not None else None,
        "multistep_gmacs_per_image": multi,
        "onestep_gmacs_per_image": one,
        "vae_share_multistep": vae / multi,
        "vae_share_onestep": vae / one,
    }


#: the per-photo metrics, in table order
METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ciede2000")


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("inf")


def _summary(rows: list[dict[str, Any]], reference: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Means of ``rows`` and its worst photo: the largest PSNR-Y loss against ``reference``
    (bicubic's rows, same order), or the lowest PSNR-Y without one."""
    out: dict[str, Any] = {k: _mean([r[k] for r in rows]) for k in METRICS if all(k in r for r in rows)}
    if "seconds" in rows[0]:
        out["seconds_per_image"] = float(np.mean([r["seconds"] for r in rows]))
    if reference is not None:
        for r, b in zip(rows, reference):
            r["gain_y"] = r["psnr_y"] - b["psnr_y"]
            r["gain_ciede2000"] = r["ciede2000"] - b["ciede2000"]
        out["gain_y"] = _mean([r["gain_y"] for r in rows])
        worst = min(rows, key=lambda r: r["gain_y"])
    else:
        worst = min(rows, key=lambda r: r["psnr_y"])
    out["worst"] = {"name": worst["name"], "psnr_y": worst["psnr_y"], **({"gain_y": worst["gain_y"]} if "gain_y" in worst else {})}
    out["per_image"] = rows
    return out


def plot_comparison(panels: list[dict[str, Any]], path: str | Path, crop: int = 128) -> Path:
    """Draw the comparison grid (one row per image, one column per method) to ``path`` (PNG).

    Args:
        panels: per image ``{"name": str, "columns": [(title, (H, W, 3) uint8), ...]}``.
        path: the PNG file (written atomically).
        crop: side of the centred window shown (details stay visible on large images).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows, cols = len(panels), max(len(p["columns"]) for p in panels)
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, panel in enumerate(panels):
        for k, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if k >= len(panel["columns"]):
                continue
            title, img = panel["columns"][k]
            h, w = img.shape[:2]
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            ax.imshow(img[top : top + crop, left : left + crop], interpolation="nearest")
            ax.set_title(title, fontsize=7)
        axes[r][0].text(-0.05, 0.5, Path(panel["name"]).name, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def plot_crops(panel: dict[str, Any], path: str | Path, crop: int = 160) -> Path:
    """One photo's 2 x 2 grid (its first four columns: bicubic, multi-step, one-step, HR), a centred
    ``crop`` px window per panel shown at about 2.4 screen pixels per image pixel (PNG, atomic).

    Args:
        panel: ``{"name": str, "columns": [(title, (H, W, 3) uint8), ...]}`` as for :func:`plot_comparison`.
        path: the PNG file.
        crop: side of the window.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 8.6), dpi=100)
    axes = fig.subplots(2, 2, squeeze=False).ravel()
    for ax, (title, img) in zip(axes, panel["columns"][:4]):
        h, w = img.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        ax.imshow(img[top : top + crop, left : left + crop], interpolation="nearest")
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"{Path(panel['name']).name} (x{panel.get('scale', 4)}, centre {crop} px)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


@torch.no_grad()
def vae_roundtrip(model: SRModel, hr: torch.Tensor) -> torch.Tensor:
    """``D(E(x_hr))`` (tiled as in upscaling): the best any latent SR model can do with this VAE.
    Computed on the model's device; returned float32 on the CPU."""
    f = model.vae_scale_factor
    x, (h, w) = pad_to_multiple(hr.to(model.device), model.pixel_multiple)
    z = tiled_map(model.encode, x, tile=VAE_TILE, overlap=VAE_TILE // 8, in_scale=f)
    x = tiled_map(model.decode, z, tile=VAE_TILE, overlap=VAE_TILE // 8, out_scale=f)[..., :h, :w].clamp(-1, 1)
    return x.float().cpu()


def _timed(fn):  # noqa: ANN001, ANN202 - tiny helper
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@locks_folder("out", "evaluate")
def evaluate(
    model_dir: str | Path,
    *,
    multistep_dir: str | Path | None = None,
    images: str | Path | None = None,
    scale: int = 4,
    steps: int | None = None,
    max_side: int | None = None,
    out: str | Path | None = None,
    decoder: str | Path | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Compare bicubic, the multi-step and the one-step model on ``images`` (see the module docstring).

    Args:
        model_dir: an SR folder (one-step or multi-step).
        multistep_dir: the multi-step folder when ``model_dir`` is one-step and does not record it.
        images: a folder of HR images (default: the held-out scikit-image photos).
        scale: the upscaling factor (must be the models').
        steps: DDIM steps of the multi-step model (default: its own).
        max_side: centre-crop each HR image to at most this many px per side.
        out: folder for ``evaluation.json`` and ``comparison.png`` (none written when ``None``).
        decoder: a compact VAE decoder folder (``tocsr-nas export`` of a ``--component vae.decoder``
            search) that replaces every model's decoder; the per-image GMACs then count it.
        device: where the models run (``None``: the CPU); they move there once (after their
            complexity is counted on the CPU), each image's result comes back to the CPU.

    Returns:
        The report: ``scale``, ``images``, ``methods`` (``bicubic``, ``multistep``, ``onestep``:
        the means of :data:`METRICS`, ``seconds_per_image``, ``worst`` (``name``, ``psnr_y`` and,
        beside bicubic, ``gain_y``), ``gain_y`` (mean PSNR-Y gain over bicubic, not for bicubic)
        and ``per_image`` rows), ``vae_bound`` (the same for ``D(E(x_hr))``), ``complexity``, ``speedup`` (multi-step
        over one-step seconds per image), ``denoise_speedup`` (the same for the denoising part
        alone, without the VAE) and ``outputs``.

    Raises:
        UserInputError: ``out`` is a file, is ``model_dir`` or contains it, or is, contains or lies
            inside ``multistep_dir`` or ``images`` (it may lie inside ``model_dir``: the default
            ``MODEL/evaluation``).
    """
    if out is not None:
        check_out_path(out, inside_ok=("model",), model=model_dir, multistep=multistep_dir, images=images)
    models = resolve_models(model_dir, multistep_dir)
    if decoder is not None:
        from tocsr_nas.teacher.components import replace_decoder

        for m in models.values():
            replace_decoder(m.vae, decoder)
    for m in models.values():
        if m.scale != scale:
            raise TocsrError(f"the model upscales x{m.scale}; --scale {scale} is not supported")
    multi_steps = int(steps or models.get("multistep", next(iter(models.values()))).config["sampler"]["steps"])
    data = eval_images(images, scale, max_side)
    rows: dict[str, list[dict[str, Any]]] = {"bicubic": [], **{k: [] for k in ("multistep", "onestep") if k in models}}
    panels, bound = [], []
    any_model = next(iter(models.values()))
    complexity = model_complexity(any_model, multi_steps)  # traced on the CPU, in float32
    for m in models.values():
        m.to(device or "cpu")
    for name, hr in data:
        lr = downscale(hr[None], scale)  # (1, 3, h, w)
        ref = to_uint8(hr)
        bound.append({"name": name, **sr_metrics(ref, to_uint8(vae_roundtrip(any_model, hr[None])[0]), scale)})
        outputs = {}
        outputs["bicubic"], secs = _timed(lambda: bicubic_upsample(lr, scale))
        rows["bicubic"].append({"name": name, **sr_metrics(ref, to_uint8(outputs["bicubic"][0]), scale), "seconds": secs})
        for kind in ("multistep", "onestep"):
            if kind in models:
                parts: dict[str, float] = {}
                outputs[kind], secs = _timed(lambda: super_resolve(models[kind], lr, steps=multi_steps, timings=parts))
                metrics = sr_metrics(ref, to_uint8(outputs[kind][0]), scale)
                rows[kind].append({"name": name, **metrics, "seconds": secs, "seconds_parts": parts})
        logger.info(
            "%s %dx%d: %s", name, hr.shape[-1], hr.shape[-2],
            ", ".join(f"{k} {rows[k][-1]['psnr_y']:.2f} dB / dE {rows[k][-1]['ciede2000']:.2f}" for k in rows),
        )  # fmt: skip
        columns = [
            (f"{k}\nY {r['psnr_y']:.2f} dB, RGB {r['psnr_rgb']:.2f} dB, dE00 {r['ciede2000']:.2f}", to_uint8(outputs[k][0]))
            for k, r in ((k, rows[k][-1]) for k in rows)
        ]
        panels.append({"name": name, "scale": scale, "columns": [*columns, ("HR\n(reference)", ref)]})
    methods = {k: _summary(v, None if k == "bicubic" else rows["bicubic"]) for k, v in rows.items()}
    for k in ("multistep", "onestep"):
        if k in methods:
            methods[k]["seconds_parts"] = {
                p: float(np.mean([r["seconds_parts"][p] for r in rows[k]])) for p in ("encode", "denoise", "decode")
            }
    if "multistep" in methods:
        methods["multistep"]["steps"] = multi_steps
    if "onestep" in methods:
        methods["onestep"]["timestep"] = models["onestep"].config["onestep"]["timestep"]
    report: dict[str, Any] = {
        "scale": scale,
        "images": [{"name": n, "hr_size": [int(x.shape[-1]), int(x.shape[-2])]} for n, x in data],
        "methods": methods,
        "vae_bound": _summary(bound, rows["bicubic"]),
        "complexity": complexity,
        "speedup": (
            methods["multistep"]["seconds_per_image"] / methods["onestep"]["seconds_per_image"]
            if {"multistep", "onestep"} <= set(methods)
            else None
        ),
        "denoise_speedup": (
            methods["multistep"]["seconds_parts"]["denoise"] / methods["onestep"]["seconds_parts"]["denoise"]
            if {"multistep", "onestep"} <= set(methods)
            else None
        ),
        "models": {k: str(Path(m.backbone_dir).parent) if m.backbone_dir else None for k, m in models.items()},
        "torch_threads": torch.get_num_threads(),
        "decoder": None if decoder is None else str(Path(decoder).resolve()),
        "outputs": {},
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        report["outputs"] = {
            "json": str(out / "evaluation.json"), "grid": str(out / "comparison.png"), "crops": str(out / "crops"),
        }  # fmt: skip
        plot_comparison(panels, out / "comparison.png")
        (out / "crops").mkdir(exist_ok=True)
        for panel in panels:
            plot_crops(panel, out / "crops" / f"{Path(panel['name']).name}.png")
        atomic_write_json(out / "evaluation.json", report)
    return report
