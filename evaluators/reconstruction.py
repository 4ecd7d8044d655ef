"""Quality of a VAE decoder: reconstruction error of held-out latents, relative to the teacher decoder's.

A :class:`ReconstructionSet` holds held-out photo patches ``x``, the latents ``z`` the teacher VAE's
encoder gives them (posterior mode, after ``post_quant_conv``: what the decoder is handed), and the
teacher decoder's output ``x_T = D_T(z)``, computed once. A decoder ``D`` is scored on
``x_hat = D(z)``; sums run over every pixel of every patch, in float64, in fixed chunks.

**reconstruction** (the default)::

    q = |x_hat - x|^2 / |x_T - x|^2 - 1

the relative increase of the reconstruction error over the teacher decoder's.

**agreement**::

    q = |x_hat - x_T|^2 / |x_T - x|^2

the squared distance to the teacher decoder's output in units of its own reconstruction error.

The normalisation is the denoiser's (:mod:`tocsr_nas.evaluators.quality`), with the teacher
decoder's reconstruction error ``x_T - x`` in the place of the teacher's denoising error
``eps_T - eps``: ``epsilon = 0.05`` means "at most 5% worse than the teacher decoder", the teacher
scores exactly ``0``, and ``|q_rec - q_agree| <= 2 sqrt(q_agree)`` by the same Cauchy-Schwarz argument.

Example:
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> z, x = torch.randn(4, 2, 3, 3, generator=gen), torch.randn(4, 2, 3, 3, generator=gen)
    >>> teacher = lambda z: 0.5 * z
    >>> vs = ReconstructionSet.build(latents=z, images=x, decoder=teacher, chunk_size=2)
    >>> score(vs, teacher, "reconstruction"), score(vs, teacher, "agreement")
    (0.0, 0.0)
    >>> score(vs, lambda z: 0.6 * z, "agreement") > 0
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from tocsr_nas.evaluators.quality import ValidationSetError, _as_tensor, _sse

__all__ = ["ReconstructionSet", "RECONSTRUCTION_QUALITIES", "score", "SupernetReconstruction"]

#: the qualities of a decoder, default first, with what epsilon means
RECONSTRUCTION_QUALITIES = {
    "reconstruction": "epsilon = relative increase of the reconstruction error over the teacher decoder's (0.05: at most 5% worse)",
    "agreement": "epsilon = squared distance to the teacher decoder's output / its own reconstruction error (0.05: 5% of it)",
}


@dataclass(frozen=True)
class ReconstructionSet:
    """Held-out latents, their photos and the teacher decoder's reconstructions.

    Attributes:
        latents: ``(N, C, h, w)`` the decoder's inputs.
        images: ``(N, 3, H, W)`` the photo patches in ``[-1, 1]``.
        teacher_out: ``(N, 3, H, W)`` the teacher decoder's output on ``latents``.
        chunk_size: samples per decoder call.
    """

    latents: torch.Tensor
    images: torch.Tensor
    teacher_out: torch.Tensor
    chunk_size: int = 8

    def __post_init__(self) -> None:
        sse = sum(_sse(self.teacher_out[c], self.images[c]) for c in self.chunks())
        if not (math.isfinite(sse) and sse > 0):
            raise ValidationSetError(f"reconstruction set: the teacher decoder's squared error is {sse}; it must be finite and > 0")
        object.__setattr__(self, "teacher_sse", sse)

    @classmethod
    @torch.no_grad()
    def build(cls, *, latents: torch.Tensor, images: torch.Tensor, decoder: Callable[[torch.Tensor], Any], chunk_size: int = 8) -> ReconstructionSet:
        """A set whose ``teacher_out`` is ``decoder``'s output, made in the set's own chunks."""
        n = latents.shape[0]
        out = [_as_tensor(decoder(latents[s : s + chunk_size])).detach() for s in range(0, n, chunk_size)]
        return cls(latents, images, torch.cat(out), chunk_size)

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def chunks(self):
        """The fixed chunks of the set, as slices."""
        n = int(self.latents.shape[0])
        for start in range(0, n, self.chunk_size):
            yield slice(start, min(start + self.chunk_size, n))


@torch.no_grad()
def score(validation: ReconstructionSet, decoder: Callable[[torch.Tensor], Any], quality: str = "reconstruction") -> float:
    """The quality loss of ``decoder`` on the set (``inf`` for non-finite outputs).

    Raises:
        ValidationSetError: an unknown quality, or outputs of the wrong shape.
    """
    if quality not in RECONSTRUCTION_QUALITIES:
        raise ValidationSetError(f"unknown decoder quality {quality!r}; valid: {', '.join(RECONSTRUCTION_QUALITIES)}")
    ref = validation.images if quality == "reconstruction" else validation.teacher_out
    total = 0.0
    for chunk in validation.chunks():
        out = _as_tensor(decoder(validation.latents[chunk]))  # (b, 3, H, W)
        if out.shape != ref[chunk].shape:
            raise ValidationSetError(f"decoder returned shape {tuple(out.shape)}, expected {tuple(ref[chunk].shape)}")
        total += _sse(out, ref[chunk])
    q = total / validation.teacher_sse - (1.0 if quality == "reconstruction" else 0.0)  # type: ignore[attr-defined]
    return q if math.isfinite(q) else math.inf


class SupernetReconstruction:
    """``quality(config) -> float`` for a supernet over a VAE decoder: the decoder search's quality function.

    Args:
        supernet: a :class:`~tocsr_nas.surrogates.SuperNet` wrapping the decoder.
        validation: the :class:`ReconstructionSet`.
        quality: ``"reconstruction"`` or ``"agreement"``.
    """

    def __init__(self, supernet: Any, validation: ReconstructionSet, quality: str = "reconstruction") -> None:
        if quality not in RECONSTRUCTION_QUALITIES:
            raise ValidationSetError(f"unknown decoder quality {quality!r}; valid: {', '.join(RECONSTRUCTION_QUALITIES)}")
        self.supernet = supernet.eval()
        self.validation = validation
        self.name = quality

    @torch.no_grad()
    def __call__(self, config: Mapping[str, str]) -> float:
        """Route the supernet to ``config`` and score it."""
        self.supernet.set_configuration(config)
        return score(self.validation, self.supernet, self.name)

    def __repr__(self) -> str:
        return f"SupernetReconstruction({self.name}, {len(self.validation)} samples)"
