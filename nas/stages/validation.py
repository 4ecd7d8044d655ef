"""The fixed validation set of a search, built from a teacher and its held-out photos.

:func:`build_validation_set` is deterministic given the teacher, the photos and the seed:

1. **Patches.** A deterministic grid of ``resolution``-pixel patches of the held-out photos
   (:mod:`tocsr_nas.teacher.data`, split by image, so no training photo leaks in), ``samples`` of them
   spread evenly over the grid.
2. **Latents.** ``x0 = teacher.encode(patch)`` (the VAE posterior mode, scaled): ``(N, 16, h, w)``.
3. **Timesteps.** ``t_i`` = ``linspace(t_min, t_max, N)`` rounded (default ``[20, 980]`` of a 1000-step
   schedule), permuted with the seed, so every photo sees the whole schedule.
4. **Noise and noisy latents.** ``eps ~ N(0, I)`` from the seed, and
   ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (``scheduler.add_noise``).
5. **Teacher.** ``eps_T = unet(x_t, t, context)`` with the null context, once, in the set's chunks.

The result is a :class:`~tocsr_nas.evaluators.ValidationSet`; ``cache=PATH`` saves it as
safetensors and reuses it when the teacher's fingerprint and the settings match.

Example:
    >>> from tocsr_nas.teacher import build_teacher
    >>> from tocsr_nas.evaluators import TeacherAgreement
    >>> teacher = build_teacher("tiny")
    >>> vs = build_validation_set(teacher, samples=4, chunk_size=2)
    >>> vs.x_t.shape, vs.timesteps.sort().values.tolist()
    (torch.Size([4, 16, 16, 16]), [20, 340, 660, 980])
    >>> TeacherAgreement(vs)(unet_forward(teacher.unet))
    0.0
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from tocsr_nas.teacher.data import PhotoDataset
from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators.quality import ValidationSet, ValidationSetError, unet_forward  # noqa: F401 (doctest)

__all__ = ["build_validation_set", "DEFAULT_SAMPLES", "DEFAULT_T_RANGE"]

logger = logging.getLogger(__name__)

#: samples in the default validation set
DEFAULT_SAMPLES = 32
#: the default timestep range (inclusive) on a 1000-step schedule
DEFAULT_T_RANGE = (20, 980)




def _settings(teacher: Any, samples: int, resolution: int, seed: int, t_range: tuple[int, int], chunk_size: int,
              photos: PhotoDataset) -> dict[str, str]:
    return {
        "teacher_fingerprint": teacher.fingerprint(),
        "samples": str(samples),
        "resolution": str(resolution),
        "seed": str(seed),
        "t_range": f"{t_range[0]},{t_range[1]}",
        "chunk_size": str(chunk_size),
        "photos": ",".join(photos.names),
    }


def _patches(photos: PhotoDataset, samples: int, resolution: int) -> torch.Tensor:
    """``samples`` grid patches spread evenly over every photo's grid, ``(N, 3, P, P)``."""
    per_image = math.ceil(samples / len(photos))
    grid = photos.grid_patches(resolution, max_per_image=per_image)  # (M, 3, P, P)
    if grid.shape[0] < samples:
        grid = photos.grid_patches(resolution, stride=max(1, resolution // 2), max_per_image=per_image)
    if grid.shape[0] < samples:
        raise TocsrError(
            f"the held-out photos give only {grid.shape[0]} patches of {resolution} px; ask for fewer validation samples"
        )
    idx = torch.linspace(0, grid.shape[0] - 1, samples).round().long()
    return grid[idx]


@torch.no_grad()
def build_validation_set(
    teacher: Any,
    *,
    samples: int = DEFAULT_SAMPLES,
    resolution: int | None = None,
    seed: int = 0,
    t_range: tuple[int, int] = DEFAULT_T_RANGE,
    chunk_size: int = 16,
    photos: PhotoDataset | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> ValidationSet:
    """The fixed validation set of a search: held-out latents, timesteps, noise and the teacher's predictions.

    Args:
        teacher: a :class:`~tocsr_nas.teacher.Teacher` (its UNet must still be unwrapped or route
            every block to the teacher: ``eps_T`` is computed here).
        samples: number of samples ``N``.
        resolution: patch side in pixels (default: the teacher's ``default_resolution``).
        seed: seed of the timestep permutation and the noise.
        t_range: the smallest and largest timestep (inclusive), spread linearly.
        chunk_size: samples per forward call, here and in every later evaluation.
        photos: held-out photos (default: the scikit-image validation split).
        cache: a ``.safetensors`` path: reused when it matches the teacher and settings, else
            (re)written.

    Returns:
        The :class:`~tocsr_nas.evaluators.ValidationSet`, on the teacher's device.

    Raises:
        TocsrError: bad settings, or photos too small for the resolution.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise TocsrError(f"validation samples must be a positive integer, got {samples!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise TocsrError(f"validation chunk size must be a positive integer, got {chunk_size!r}")
    num_t = int(teacher.scheduler.config.num_train_timesteps)
    t_min, t_max = (int(t) for t in t_range)
    if not 0 <= t_min <= t_max < num_t:
        raise TocsrError(f"timestep range {t_range} must satisfy 0 <= t_min <= t_max < {num_t}")
    resolution = resolution or teacher.default_resolution
    teacher.latent_size(resolution)  # validates the resolution against the VAE factor
    photos = photos or PhotoDataset.from_skimage("val", min_size=resolution)
    settings = _settings(teacher, samples, resolution, seed, (t_min, t_max), chunk_size, photos)
    if cache is not None and Path(cache).is_file():
        try:
            cached = ValidationSet.load(cache, device=teacher.device)
            if dict(cached.meta) == settings:
                logger.debug("validation set reused from %s", cache)
                return cached
            logger.info("validation set %s was built with other settings or another teacher: rebuilding", cache)
        except ValidationSetError as exc:
            logger.warning("ignoring the cached validation set: %s", exc)

    device, dtype = teacher.device, teacher.dtype
    images = _patches(photos, samples, resolution)  # (N, 3, P, P)
    x0 = torch.cat([teacher.encode(images[i : i + chunk_size]) for i in range(0, samples, chunk_size)])  # (N, 16, h, w)
    gen = torch.Generator().manual_seed(seed)
    spread = torch.linspace(t_min, t_max, samples, dtype=torch.float64).round().long()  # (N,)
    timesteps = spread[torch.randperm(samples, generator=gen)].to(device)  # (N,)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(device, dtype)  # (N, 16, h, w)
    x_t = teacher.scheduler.add_noise(x0, noise, timesteps)  # (N, 16, h, w)
    context = teacher.validation_context().to(device, dtype)  # (1, L, D); (1, 1, 1) zeros without one
    vs = ValidationSet.build(
        x0=x0.contiguous(),
        noise=noise,
        x_t=x_t.contiguous(),
        timesteps=timesteps,
        context=context,
        forward=teacher.denoiser_forward(teacher.unet.eval()),
        chunk_size=chunk_size,
        meta=settings,
    )
    logger.debug("validation set: %d samples at %d px, teacher loss %.5f", samples, resolution, vs.teacher_loss)
    if cache is not None:
        vs.save(cache)
    return vs
