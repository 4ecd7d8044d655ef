"""A pixel-space luma residual on the bicubic upsampling, driven by the one-step generator's output.

A latent SR model can never beat its VAE's round trip ``D(E(x_hr))``, and the tiny VAE shifts
saturated colours. The refiner goes around the decoder: for an LR image ``y``, its bicubic
upsampling ``u = bicubic_s(y)`` and the decoded one-step output ``x_g = D(G(E(u)))``::

    out = u + r * [1, 1, 1]        r = b tanh(R(unshuffle_s(Y(u)), unshuffle_s(Y(x_g) - Y(u)), YCbCr(y)) / b)

``Y`` is BT.601 luma (``0.299 R + 0.587 G + 0.114 B``, weights summing to 1), so adding the same
``r`` to R, G and B moves the luma by exactly ``r`` and leaves both chroma differences
(``B - Y``, ``R - Y``) at bicubic's: **the colours are bicubic's by construction**, and only the
luma detail is learned. ``R`` is a small CNN at the LR resolution (ESPCN-style: the HR inputs are
folded into ``s^2`` channels by pixel-unshuffle, the ``s^2`` outputs unfolded by pixel-shuffle),
so its cost is per LR pixel. Its last convolution starts at zero: an untrained refiner returns
bicubic exactly, and ``|r| <= b`` bounds how far it can move from it.

Example:
    >>> net = LumaRefiner(scale=4, width=8, depth=2)
    >>> lr = torch.rand(1, 3, 6, 5) * 2 - 1
    >>> up = bicubic_upsample(lr, 4)
    >>> torch.equal(net(lr, up, torch.zeros_like(up)), up)
    True
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.model import bicubic_upsample

__all__ = ["LumaRefiner", "luma", "train_refiner"]

logger = logging.getLogger(__name__)

#: BT.601 luma weights (sum to 1)
_LUMA = (0.299, 0.587, 0.114)


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``(B, 3, H, W) -> (B, 1, H, W)`` (same range as ``x``)."""
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _ycbcr(x: torch.Tensor) -> torch.Tensor:
    y = luma(x)
    return torch.cat([y, x[:, 2:3] - y, x[:, 0:1] - y], 1)  # (B, 3, H, W): Y, B - Y, R - Y


class LumaRefiner(nn.Module):
    """The bounded luma residual ``R`` (see the module docstring).

    Args:
        scale: the upscaling factor ``s``.
        width: channels of the hidden convolutions.
        depth: hidden 3x3 convolutions (ReLU) after the first.
        bound: ``b``, the largest luma change (images in ``[-1, 1]``).
    """

    def __init__(self, scale: int = 4, width: int = 32, depth: int = 3, bound: float = 0.25) -> None:
        super().__init__()
        if scale < 1 or width < 1 or depth < 0 or not bound > 0:
            raise TocsrError(f"bad refiner settings: scale {scale}, width {width}, depth {depth}, bound {bound}")
        self.scale, self.width, self.depth, self.bound = int(scale), int(width), int(depth), float(bound)
        s2 = self.scale**2
        layers: list[nn.Module] = [nn.Conv2d(2 * s2 + 3, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, s2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def spec(self) -> dict[str, Any]:
        """The constructor's arguments (``sr.json``'s ``refiner``)."""
        return {"scale": self.scale, "width": self.width, "depth": self.depth, "bound": self.bound}

    def residual(self, lr: torch.Tensor, up: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """The luma residual ``r`` ``(B, 1, s h, s w)``.

        Args:
            lr: LR images ``(B, 3, h, w)`` in ``[-1, 1]``.
            up: their bicubic upsampling ``(B, 3, s h, s w)``.
            generated: the decoded one-step output ``(B, 3, s h, s w)``.
        """
        s = self.scale
        y_up = luma(up)
        feats = torch.cat(
            [F.pixel_unshuffle(y_up, s), F.pixel_unshuffle(luma(generated) - y_up, s), _ycbcr(lr)], 1
        )  # (B, 2 s^2 + 3, h, w)
        raw = F.pixel_shuffle(self.head(self.body(feats)), s)  # (B, 1, s h, s w)
        return self.bound * torch.tanh(raw / self.bound)

    def forward(self, lr: torch.Tensor, up: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """``u + r`` on all three channels, clamped to ``[-1, 1]`` (shapes as in :meth:`residual`)."""
        return (up + self.residual(lr, up, generated)).clamp(-1.0, 1.0)


def train_refiner(
    refiner: LumaRefiner,
    lr: torch.Tensor,
    generated: torch.Tensor,
    hr: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 16,
    crop: int = 16,
    lr_rate: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Fit ``refiner`` to ``hr`` on random LR crops (MSE on luma, Adam, cosine decay).

    Args:
        refiner: the module (trained in place).
        lr: LR patches ``(N, 3, h, w)``.
        generated: the decoded one-step outputs ``(N, 3, s h, s w)``.
        hr: the HR patches ``(N, 3, s h, s w)``.
        steps: optimisation steps.
        batch_size: crops per step.
        crop: LR crop side (at most ``h`` and ``w``).
        lr_rate: peak learning rate.
        seed: seed of the crops and flips.

    Returns:
        The loss of every step.
    """
    s = refiner.scale
    n, _, h, w = lr.shape
    crop = min(crop, h, w)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(refiner.parameters(), lr=lr_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    losses = []
    refiner.train()
    for _ in range(steps):
        idx = torch.randint(n, (batch_size,), generator=gen)
        tops = torch.randint(h - crop + 1, (batch_size,), generator=gen).tolist()
        lefts = torch.randint(w - crop + 1, (batch_size,), generator=gen).tolist()
        flips = torch.rand(batch_size, generator=gen).lt(0.5).tolist()
        parts: list[list[torch.Tensor]] = [[], [], []]
        for i, t, l, flip in zip(idx.tolist(), tops, lefts, flips):
            items = (
                lr[i, :, t : t + crop, l : l + crop],
                generated[i, :, s * t : s * (t + crop), s * l : s * (l + crop)],
                hr[i, :, s * t : s * (t + crop), s * l : s * (l + crop)],
            )
            for part, x in zip(parts, items):
                part.append(x.flip(-1) if flip else x)
        b_lr, b_gen, b_hr = (torch.stack(p) for p in parts)
        up = bicubic_upsample(b_lr, s)
        loss = F.mse_loss(luma(refiner(b_lr, up, b_gen)), luma(b_hr))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    refiner.eval()
    return losses
