"""Upscale images of any size with a multi-step or one-step SR model.

For an LR image ``y`` of ``h x w`` pixels and scale ``s``::

    u     = bicubic_s(y)                          (s h) x (s w)
    u'    = pad(u) to multiples of m              m = f * 2^(UNet downsamplers), reflection
    z_lr  = E(u')             tiled, latent tiles of ``vae_tile`` with overlap blending
    z_0   = DDIM(z_lr) or one step(z_lr)          denoiser tiled with the model's ``tile``
    x     = D(z_0)            tiled
    out   = x cropped back to (s h) x (s w), clamped to [-1, 1]
    out   = u + r(y, u, out)      a model with a luma refiner (:mod:`tocsr_nas.sr.refine`)

so a 123 x 77 image gives exactly 492 x 308 at ``s = 4``. Tiling keeps memory and attention
lengths bounded on large images; a small image is one tile and is processed exactly.

Example:
    >>> from tocsr_nas.sr.model import Backbone, SRModel
    >>> from tocsr_nas.sr.testing import micro_teacher
    >>> model = SRModel.from_backbone(Backbone.from_teacher(micro_teacher()), sampler_steps=2)
    >>> super_resolve(model, torch.zeros(1, 3, 7, 5)).shape
    torch.Size([1, 3, 28, 20])
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from tocsr_nas._io import atomic_path, check_out_path
from tocsr_nas.evaluators.latency import synchronize
from tocsr_nas.locks import locks_folder
from tocsr_nas.teacher.data import ImageDataError, load_image, to_tensor, to_uint8
from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.model import SRModel, bicubic_upsample
from tocsr_nas.sr.sampling import ddim_sample, onestep_sample
from tocsr_nas.sr.tiling import pad_to_multiple, tiled_map

__all__ = ["output_files", "super_resolve", "upscale_files", "VAE_TILE"]

logger = logging.getLogger(__name__)

#: latent tile side for the VAE encoder and decoder: 512 px tiles, so a photo of up to 512 x 512
#: px is coded in one piece (tiles overlap by 1/8, so smaller tiles redo up to twice the work; at
#: 512 px the tiny VAE's activations take tens of MB; a VAE with mid-block attention, like
#: sd21-vae16's, attends over all 128 x 128 latent positions of a tile)
VAE_TILE = 128


@torch.no_grad()
def super_resolve(
    model: SRModel,
    lr: torch.Tensor,
    *,
    steps: int | None = None,
    seed: int | None = None,
    tile: int | None = None,
    vae_tile: int = VAE_TILE,
    timings: dict[str, float] | None = None,
) -> torch.Tensor:
    """Super-resolve a batch of LR images.

    Runs on the model's device (:meth:`SRModel.to`): ``lr`` is moved there, the result comes back
    to the CPU in float32.

    Args:
        model: a multi-step or one-step SR model.
        lr: ``(B, 3, h, w)`` in ``[-1, 1]`` (any device).
        steps: DDIM steps of a multi-step model (default: its ``sampler.steps``); ignored by a
            one-step model.
        seed: seed of the sampler's noise (default: the model's ``sampler.seed``).
        tile: latent tile side of the denoiser (default: the model's ``tile``).
        vae_tile: latent tile side of the VAE.
        timings: if given, receives the wall seconds of ``encode`` (bicubic + VAE encoder),
            ``denoise`` and ``decode`` (with the luma refiner, when the model has one), the
            device synchronised at each lap.

    Returns:
        ``(B, 3, s h, s w)`` in ``[-1, 1]``, float32 on the CPU.
    """
    s, f = model.scale, model.vae_scale_factor
    sampler = model.config.get("sampler", {})
    steps = int(steps if steps is not None else sampler.get("steps", 20))
    seed = int(seed if seed is not None else sampler.get("seed", 0))
    tile = int(tile if tile is not None else model.config.get("tile", 32))
    device = model.device
    lr = lr.to(device)
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        if timings is not None:
            synchronize(device)
        now = time.perf_counter()
        if timings is not None:
            timings[name] = now - clock[0]
        clock[0] = now

    bicubic = bicubic_upsample(lr.float(), s)  # (B, 3, s h, s w)
    up, (H, W) = pad_to_multiple(bicubic, model.pixel_multiple)  # (B, 3, H', W')
    overlap = max(1, vae_tile // 8)
    z_lr = tiled_map(model.encode, up, tile=vae_tile, overlap=overlap, in_scale=f)  # (B, C, H'/f, W'/f)
    lap("encode")
    if model.kind == "onestep":
        z0 = onestep_sample(model, z_lr, seed=seed, tile=tile)
    else:
        z0 = ddim_sample(model, z_lr, steps=steps, seed=seed, strength=float(sampler.get("strength", 1.0)), tile=tile)
    lap("denoise")
    x = tiled_map(model.decode, z0, tile=vae_tile, overlap=overlap, out_scale=f)  # (B, 3, H', W')
    x = x[..., :H, :W].clamp(-1.0, 1.0)
    if model.refiner is not None:
        x = model.refiner(lr.float(), bicubic, x)
    lap("decode")
    return x.float().cpu()


def output_files(inputs: Sequence[str | Path], out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """The file :func:`upscale_files` writes for each input, ``OUT/<stem>.png``, checked before any work.

    Args:
        inputs: image files.
        out_dir: the output folder (need not exist).
        overwrite: replace output files that already exist (never an input).

    Returns:
        The output files, in input order.

    Raises:
        TocsrError: ``out_dir`` is a file, two inputs share a stem, an output would replace one of
            the inputs (even with ``overwrite``), or an output exists (without ``overwrite``, or
            when it is not a file).

    Example:
        >>> output_files(["photos/cat.jpg"], "big")
        [PosixPath('big/cat.png')]
        >>> output_files(["photos/cat.png"], "photos")
        Traceback (most recent call last):
        ...
        tocsr_nas.searchspace.errors.TocsrError: --out photos: its cat.png would replace the input photos/cat.png (even with --overwrite); choose another --out
    """
    check_out_path(out_dir)
    paths = [Path(p) for p in inputs]
    stems = [p.stem for p in paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise TocsrError(f"several inputs would write the same output name: {', '.join(d + '.png' for d in dupes)}")
    sources = {os.path.realpath(p): p for p in paths}
    targets = [Path(out_dir) / f"{p.stem}.png" for p in paths]
    for target in targets:
        source = sources.get(os.path.realpath(target))
        if source is not None:
            raise TocsrError(
                f"--out {out_dir}: its {target.name} would replace the input {source} (even with --overwrite); "
                "choose another --out"
            )
        if target.exists() and not target.is_file():
            raise TocsrError(f"--out {out_dir}: {target} exists and is not a file; choose another --out")
        if target.exists() and not overwrite:
            raise TocsrError(f"{target} exists; pass --overwrite to replace it, or choose another --out")
    return targets


@locks_folder("out_dir", "upscale")
def upscale_files(
    model: SRModel,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    scale: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Upscale image files (PNG/JPEG/...) and write ``OUT/<stem>.png`` for each.

    Every input is read and every output checked (:func:`output_files`) first, so an unreadable
    file or an output in the way fails the call before any work.

    Args:
        model: the SR model.
        inputs: image files.
        out_dir: output folder (created).
        scale: must equal the model's scale when given.
        steps, seed: as in :func:`super_resolve`.
        overwrite: replace existing output files (never an input).

    Returns:
        The written files, in input order.

    Raises:
        TocsrError: an unreadable input or one smaller than the model's ``min_input_side``
            (named), a scale the model was not trained for, or an output that :func:`output_files`
            refuses.
    """
    if scale is not None and scale != model.scale:
        raise TocsrError(f"this model upscales x{model.scale}; --scale {scale} is not supported")
    targets = output_files(inputs, out_dir, overwrite=overwrite)
    paths = [Path(p) for p in inputs]
    images = [load_image(p) for p in paths]  # ImageDataError (a TocsrError) names an unreadable file
    for path, image in zip(paths, images):
        if min(image.shape[:2]) < model.min_input_side:
            h, w = image.shape[:2]
            raise ImageDataError(f"image {path} is {w}x{h} px, smaller than the {model.min_input_side} px this model upscales")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for path, image, target in zip(paths, images, targets):
        lr = to_tensor(image)[None]  # (1, 3, h, w)
        hr = super_resolve(model, lr, steps=steps, seed=seed)  # (1, 3, s h, s w)
        with atomic_path(target) as tmp:
            Image.fromarray(to_uint8(hr[0])).save(tmp, format="PNG")
        logger.info("%s (%dx%d) -> %s (%dx%d)", path, lr.shape[-1], lr.shape[-2], target, hr.shape[-1], hr.shape[-2])
        written.append(target)
    return written
