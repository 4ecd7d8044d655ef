"""A pool of encoded HR/LR training pairs, cropped in latent space for each batch.

Encoding with the frozen VAE is the dearest part of a training step on a CPU, so it is done once:
``N`` random HR crops of ``P`` px (random flip; :meth:`PhotoDataset.random_batch`), their LR images
(antialiased bicubic downscaling by ``s``) and::

    z_hr = E(x_hr)                 # (N, C, P/f, P/f)
    z_lr = E(bicubic_s(x_lr))      # (N, C, P/f, P/f)

Each batch then takes ``B`` random pool items and a random ``c x c`` latent window at the same
place in every tensor (the HR pixels at ``f`` times the offset): the model is trained on crops
of latents computed on larger images, exactly what it sees at inference when a large latent
is denoised tile by tile. Everything is a pure function of the seeds.

Example:
    >>> from tocsr_nas.sr.model import Backbone, SRModel
    >>> from tocsr_nas.sr.testing import micro_teacher
    >>> from tocsr_nas.teacher.data import PhotoDataset
    >>> model = SRModel.from_backbone(Backbone.from_teacher(micro_teacher()))
    >>> photos = PhotoDataset.from_skimage("train")
    >>> pool = LatentPool.build(model, photos, size=2, patch_px=32, seed=0)
    >>> b = pool.batch(3, crop=4, seed=1)
    >>> tuple(b["z_lr"].shape), tuple(b["hr"].shape)
    ((3, 16, 4, 4), (3, 3, 16, 16))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from tocsr_nas._io import load_safetensors, save_safetensors
from tocsr_nas.teacher.data import PhotoDataset, downscale
from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.model import SRModel, bicubic_upsample

__all__ = ["LatentPool"]


@dataclass
class LatentPool:
    """Encoded training pairs.

    Attributes:
        hr: HR pixels ``(N, 3, P, P)`` in ``[-1, 1]``.
        z_hr: HR latents ``(N, C, p, p)``, ``p = P / f``.
        z_lr: LR conditioning latents ``(N, C, p, p)``.
        extra: more latents aligned with ``z_hr`` (e.g. ``"z_ddim"``, the multi-step sampler's output).
        factor: the VAE factor ``f``.
    """

    hr: torch.Tensor
    z_hr: torch.Tensor
    z_lr: torch.Tensor
    factor: int
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.z_hr.shape[0]

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: SRModel,
        photos: PhotoDataset,
        *,
        size: int,
        patch_px: int,
        seed: int,
        batch_size: int = 16,
    ) -> LatentPool:
        """Crop, degrade and encode ``size`` pairs of ``patch_px`` px HR patches (see the module docstring).

        Raises:
            TocsrError: if ``patch_px`` is not a multiple of ``scale * f``.
        """
        f, s = model.vae_scale_factor, model.scale
        if patch_px % (f * s) or patch_px % s:
            raise TocsrError(f"pool patch {patch_px} px is not a multiple of scale x VAE factor = {s * f}")
        hr = photos.random_batch(size, patch_px, seed=seed)  # (N, 3, P, P)
        z_hr, z_lr = [], []
        for x in hr.split(batch_size):
            z_hr.append(model.encode(x))  # (b, C, p, p)
            z_lr.append(model.encode(bicubic_upsample(downscale(x, s), s)))  # (b, C, p, p)
        return cls(hr=hr, z_hr=torch.cat(z_hr), z_lr=torch.cat(z_lr), factor=f)

    def to(self, device: str | torch.device) -> LatentPool:
        """The pool with every tensor on ``device`` (moved once, so each batch is cut there)."""
        extra = {k: v.to(device) for k, v in self.extra.items()}
        return LatentPool(
            hr=self.hr.to(device), z_hr=self.z_hr.to(device), z_lr=self.z_lr.to(device), factor=self.factor, extra=extra
        )

    def save(self, path: str | Path) -> None:
        """Write the pool (all tensors) to one safetensors file, atomically."""
        tensors = {"hr": self.hr, "z_hr": self.z_hr, "z_lr": self.z_lr}
        tensors.update({f"extra.{k}": v for k, v in self.extra.items()})
        save_safetensors(path, tensors, metadata={"factor": str(self.factor)})

    @classmethod
    def load(cls, path: str | Path) -> LatentPool:
        """Read a pool written by :meth:`save`.

        Raises:
            DamagedFileError: the file is truncated or corrupt.
        """
        t, meta = load_safetensors(path, metadata=True)
        factor = int(meta["factor"])
        extra = {k[len("extra.") :]: v for k, v in t.items() if k.startswith("extra.")}
        return cls(hr=t["hr"], z_hr=t["z_hr"], z_lr=t["z_lr"], factor=factor, extra=extra)

    def batch(self, batch_size: int, crop: int, seed: int) -> dict[str, torch.Tensor]:
        """``batch_size`` random items, each cropped to a random ``crop x crop`` latent window.

        Returns:
            ``{"hr": (B, 3, c f, c f), "z_hr": (B, C, c, c), "z_lr": ..., **extra}``.
        """
        p = self.z_hr.shape[-1]
        if crop > p:
            raise TocsrError(f"latent crop {crop} is larger than the pool's latents ({p})")
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(self), (batch_size,), generator=gen)  # (B,)
        offs = torch.randint(p - crop + 1, (batch_size, 2), generator=gen)  # (B, 2)
        f = self.factor
        out: dict[str, list[torch.Tensor]] = {k: [] for k in ("hr", "z_hr", "z_lr", *self.extra)}
        for i, (top, left) in zip(idx.tolist(), offs.tolist()):
            out["hr"].append(self.hr[i, :, top * f : (top + crop) * f, left * f : (left + crop) * f])
            for name, t in (("z_hr", self.z_hr), ("z_lr", self.z_lr), *self.extra.items()):
                out[name].append(t[i, :, top : top + crop, left : left + crop])
        return {k: torch.stack(v) for k, v in out.items()}
