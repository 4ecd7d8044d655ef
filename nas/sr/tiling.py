"""Tiled evaluation with overlap blending, for images larger than a model should see at once.

A map ``fn`` from ``(B, C, s_in h, s_in w)`` to ``(B, C', s_out h, s_out w)`` (a denoiser:
``s_in = s_out = 1``; a VAE encoder on the latent grid: ``s_in = f, s_out = 1``; a decoder:
``s_in = 1, s_out = f``) is applied to overlapping tiles of a ``grid`` of side ``(H, W)``, and
the outputs are blended with a feathered weight: for a tile of side ``T`` and overlap ``o`` the
1-D weight of position ``i`` is::

    w(i) = min(1, (i + 1) / (o + 1), (T - i) / (o + 1))          0 <= i < T

and the 2-D weight is ``w(i) w(j)``. Output pixel ``p`` is ``sum_k w_k(p) y_k(p) / sum_k w_k(p)``
over the tiles ``k`` that cover it (every pixel is covered, every weight is positive). Tile
origins are ``0, stride, 2 stride, ...`` with ``stride = T - o`` and a last tile flush with the
far edge, so every tile has the same side (a batch) and, when ``H <= T``, one tile covers the
axis. A single tile reproduces ``fn`` exactly.

Example:
    >>> x = torch.randn(1, 2, 10, 7)
    >>> y = tiled_map(lambda t: 2 * t, x, tile=4, overlap=2)
    >>> torch.allclose(y, 2 * x)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["tile_origins", "feather", "tiled_map", "pad_to_multiple"]


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Origins of tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap`` overlap.

    Example:
        >>> tile_origins(10, 4, 2)
        [0, 2, 4, 6]
        >>> tile_origins(3, 4, 1)
        [0]
    """
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    origins = list(range(0, length - tile, stride))
    origins.append(length - tile)
    return origins


def feather(tile: int, overlap: int) -> torch.Tensor:
    """The 1-D blending weight ``w`` of the module docstring, ``(tile,)``, all positive."""
    i = torch.arange(tile, dtype=torch.float32)
    ramp = float(overlap + 1)
    return torch.minimum(torch.ones(tile), torch.minimum((i + 1) / ramp, (tile - i) / ramp))


def tiled_map(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    in_scale: int = 1,
    out_scale: int = 1,
    batch_size: int = 16,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of ``x`` and blend the results.

    Args:
        fn: the map; called on batches of tiles ``(b * B, C, s_in T_h, s_in T_w)``.
        x: the input ``(B, C, s_in H, s_in W)``.
        tile: tile side ``T`` on the grid (clipped to ``H`` / ``W``).
        overlap: overlap ``o`` on the grid, ``0 <= o < T``.
        in_scale: ``s_in``, input pixels per grid cell.
        out_scale: ``s_out``, output pixels per grid cell.
        batch_size: tiles per call of ``fn`` (each holding all ``B`` images).

    Returns:
        ``(B, C', s_out H, s_out W)``.
    """
    b = x.shape[0]
    gh, gw = x.shape[-2] // in_scale, x.shape[-1] // in_scale
    th, tw = min(tile, gh), min(tile, gw)
    tops, lefts = tile_origins(gh, th, overlap), tile_origins(gw, tw, overlap)
    boxes = [(t, l) for t in tops for l in lefts]
    if len(boxes) == 1:
        return fn(x)
    s = out_scale
    weight = feather(th, min(overlap, th - 1))[:, None] * feather(tw, min(overlap, tw - 1))[None, :]  # (th, tw)
    weight = weight.repeat_interleave(s, 0).repeat_interleave(s, 1).to(x.device)  # (s th, s tw)
    out = norm = None
    per_call = max(1, batch_size // max(b, 1))
    for k in range(0, len(boxes), per_call):
        chunk = boxes[k : k + per_call]
        tiles = torch.cat(
            [x[..., t * in_scale : (t + th) * in_scale, l * in_scale : (l + tw) * in_scale] for t, l in chunk]
        )  # (len(chunk) * B, C, s_in th, s_in tw)
        y = fn(tiles)  # (len(chunk) * B, C', s th, s tw)
        if out is None:
            out = torch.zeros(b, y.shape[1], gh * s, gw * s, dtype=y.dtype, device=y.device)
            norm = torch.zeros(gh * s, gw * s, dtype=y.dtype, device=y.device)
        w = weight.to(y.dtype)
        for (t, l), part in zip(chunk, y.split(b)):
            out[..., t * s : (t + th) * s, l * s : (l + tw) * s] += part * w
            norm[t * s : (t + th) * s, l * s : (l + tw) * s] += w
    return out / norm


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B, C, H, W)`` at the bottom/right to multiples of ``multiple`` (reflection, or
    replication for sides too short to reflect).

    Returns:
        The padded tensor and the original ``(H, W)`` to crop back to.

    Example:
        >>> y, hw = pad_to_multiple(torch.zeros(1, 3, 77, 123), 16)
        >>> tuple(y.shape[-2:]), hw
        ((80, 128), (77, 123))
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)
