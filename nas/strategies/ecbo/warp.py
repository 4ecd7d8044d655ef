"""The monotone output warp ``g`` that ``ecbo`` applies to quality before the GP.

Outputs are ``y = g(q) = sign(q) log1p(|q| / e_ref)`` (``warp="log1p"``), ``q / e_ref``
(``warp="linear"``) or the hinge in between (``warp="hinge"``), ``e_ref`` the largest epsilon:
monotone, so ``q <= e <=> y <= g(e)``; the log warp keeps wildly infeasible configurations from
dominating the fit near the threshold. The ``"saturating"`` warp bends the other way: for a quality
that approaches a ceiling (an accuracy drop that compounds multiplicatively, ``1 - prod_b r_b``) it
stretches the values near the ceiling, ``-u log(1 - r / u)`` with ``u`` the ceiling in units of
``e_ref``, which makes a product of per-block retentions additive again.
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
    ``"saturating"``: ``-u log(1 - min(r, u (1 - 1e-3)) / u)`` for ``r >= 0`` (``r`` below 0 stays
    linear; slope 1 at 0), ``u = ceiling``: the quality's ceiling in units of ``e_ref``
    (:meth:`ceiling_from`).
    """

    R0 = 2.0
    #: the saturating warp's ceiling is this many times the worst finite quality observed (:meth:`ceiling_from`)
    HEADROOM = 1.05
    #: values within this fraction of the ceiling are clipped (the warp stays finite)
    CLIP = 1e-3

    def __init__(self, kind: str, e_ref: float, ceiling: float | None = None) -> None:
        self.kind = kind
        self.e_ref = e_ref if e_ref > 0 else 1.0
        if kind == "saturating" and not (ceiling is not None and ceiling > 1.0):
            raise ValueError(f"the saturating warp needs a ceiling > 1 (in units of e_ref), got {ceiling!r}")
        self.ceiling = ceiling

    @classmethod
    def ceiling_from(cls, quality: np.ndarray, e_ref: float) -> float | None:
        """The saturating warp's ceiling for the observed ``quality``: :data:`HEADROOM` times the worst
        finite one, in units of ``e_ref``; ``None`` while none lies beyond ``e_ref`` (nothing to stretch).

        Example:
            >>> QualityWarp.ceiling_from(np.array([0.0, 0.5, 1.2, np.nan]), 1.0)
            1.26
            >>> QualityWarp.ceiling_from(np.array([0.0, 0.5]), 1.0) is None
            True
        """
        finite = quality[np.isfinite(quality)]
        worst = float(finite.max()) / (e_ref if e_ref > 0 else 1.0) if len(finite) else 0.0
        return round(cls.HEADROOM * worst, 12) if worst > 1.0 else None

    def __call__(self, q: np.ndarray | float) -> np.ndarray:
        r = np.asarray(q, dtype=np.float64) / self.e_ref
        if self.kind == "linear":
            return r
        if self.kind == "saturating":
            u = self.ceiling
            return np.where(r <= 0, r, -u * np.log1p(-np.clip(r, 0.0, u * (1 - self.CLIP)) / u))
        if self.kind == "hinge":
            return np.where(r <= self.R0, r, self.R0 + np.log1p(np.maximum(r - self.R0, 0.0)))
        return np.sign(r) * np.log1p(np.abs(r))

    def inverse(self, y: float) -> float:
        """``g^{-1}(y)``: the quality whose warp is ``y``."""
        if self.kind == "linear":
            return y * self.e_ref
        if self.kind == "saturating":
            return (y if y <= 0 else -self.ceiling * math.expm1(-y / self.ceiling)) * self.e_ref
        if self.kind == "hinge":
            return (y if y <= self.R0 else self.R0 + math.expm1(y - self.R0)) * self.e_ref
        return math.copysign(math.expm1(abs(y)), y) * self.e_ref
