"""The monotone output warp ``g`` that ``ecbo`` applies to quality before the GP.

Outputs are ``y = g(q) = sign(q) log1p(|q| / e_ref)`` (``warp="log1p"``), ``q / e_ref``
(``warp="linear"``) or the hinge in between (``warp="hinge"``), ``e_ref`` the largest epsilon:
monotone, so ``q <= e <=> y <= g(e)``; the log warp keeps wildly infeasible configurations from
dominating the fit near the threshold.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["QualityWarp"]


class QualityWarp:
    """The monotone output warp ``g`` of ``r = q / e_ref`` (see :mod:`~tocsr_nas.strategies.ecbo.warp`).

    ``"log1p"``: ``sign(r) log1p(|r|)``; ``"linear"``: ``r``; ``"hinge"``: ``r`` up to ``r0 = 2``
    and ``r0 + log1p(r - r0)`` beyond (continuous, slope 1 at ``r0``): additive damages stay
    additive near the threshold while wildly infeasible configurations cannot dominate the fit.
    """

    R0 = 2.0

    def __init__(self, kind: str, e_ref: float) -> None:
        self.kind = kind
        self.e_ref = e_ref if e_ref > 0 else 1.0

    def __call__(self, q: np.ndarray | float) -> np.ndarray:
        r = np.asarray(q, dtype=np.float64) / self.e_ref
        if self.kind == "linear":
            return r
        if self.kind == "hinge":
            return np.where(r <= self.R0, r, self.R0 + np.log1p(np.maximum(r - self.R0, 0.0)))
        return np.sign(r) * np.log1p(np.abs(r))

    def inverse(self, y: float) -> float:
        """``g^{-1}(y)``: the quality whose warp is ``y``."""
        if self.kind == "linear":
            return y * self.e_ref
        if self.kind == "hinge":
            return (y if y <= self.R0 else self.R0 + math.expm1(y - self.R0)) * self.e_ref
        return math.copysign(math.expm1(abs(y)), y) * self.e_ref
