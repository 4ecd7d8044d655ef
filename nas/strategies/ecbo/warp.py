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
    (:meth:`fit_ceiling`).
    """

    R0 = 2.0
    #: the ceilings :meth:`fit_ceiling` tries, in multiples of the worst finite quality observed
    #: (from a sharp bound just above it to one so far away that the warp is nearly linear)
    HEADROOMS = (1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 2.0, 3.0, 5.0)
    #: the prior-to-noise variance ratios of the additive model of :meth:`fit_ceiling` (profiled)
    RATIOS = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    #: values within this fraction of the ceiling are clipped (the warp stays finite)
    CLIP = 1e-3

    def __init__(self, kind: str, e_ref: float, ceiling: float | None = None) -> None:
        self.kind = kind
        self.e_ref = e_ref if e_ref > 0 else 1.0
        if kind == "saturating" and not (ceiling is not None and ceiling > 1.0):
            raise ValueError(f"the saturating warp needs a ceiling > 1 (in units of e_ref), got {ceiling!r}")
        self.ceiling = ceiling

    @classmethod
    def fit_ceiling(cls, quality: np.ndarray, idx: np.ndarray, e_ref: float, margin: float = 2.0) -> float | None:
        """The saturating warp's ceiling (in units of ``e_ref``) that makes the observations most additive;
        ``None`` while no quality lies beyond ``e_ref`` (nothing to stretch) or where no ceiling beats the
        linear warp by ``margin`` nats.

        Box and Cox's choice of a transformation, with a Bayesian additive model: each candidate
        ceiling ``u`` (:data:`HEADROOMS` times the worst finite quality) warps the qualities, and
        its score is the marginal likelihood of the warped values under ``y = m + sum_b w_b[x_b] +
        noise`` (one weight per block and option seen, ``w ~ N(0, lambda s^2)``, noise ``N(0,
        s^2)``; ``m`` and ``s^2`` profiled, ``lambda`` the best of :data:`RATIOS`) plus the log
        Jacobian ``sum_i log g_u'(r_i)``, which makes the scores of different warps comparable
        (the linear warp's Jacobian is 1). A quality that compounds towards a bound (``1 - prod_b
        r_b``) is additive after the warp at that bound; one that is additive or grows faster than
        additive keeps the linear warp (no ceiling): the best ceiling must beat it by ``margin``
        nats, since on additive data some ceiling can score a little above it by chance.

        Args:
            quality: the observed qualities ``(n,)`` (non-finite values are left out).
            idx: the observed configurations' option indices ``(n, B)``.
            e_ref: the largest epsilon.
            margin: nats by which the best ceiling must beat the linear warp.

        Example:
            >>> rng = np.random.default_rng(0)
            >>> idx = rng.integers(0, 4, size=(40, 6))
            >>> damage = rng.uniform(0.0, 0.5, size=(6, 4))
            >>> s = damage[np.arange(6), idx].sum(1)
            >>> u = QualityWarp.fit_ceiling(1.0 - np.exp(-s), idx, 0.2)  # bound 1 = 5 e_ref
            >>> bool(4.5 < u < 6.0)
            True
            >>> QualityWarp.fit_ceiling(s, idx, 0.2) is None  # additive already
            True
        """
        e_ref = e_ref if e_ref > 0 else 1.0
        keep = np.isfinite(quality)
        r, idx = np.asarray(quality, dtype=np.float64)[keep] / e_ref, np.asarray(idx)[keep]
        if len(r) < 3 or r.max() <= 1.0:
            return None
        # one-hot of every (block, option) seen
        phi = np.concatenate([idx[:, b : b + 1] == np.unique(idx[:, b])[None, :] for b in range(idx.shape[1])], axis=1)
        gram = phi.astype(np.float64) @ phi.T.astype(np.float64)
        factors = [np.linalg.cholesky(lam * gram + np.eye(len(r))) for lam in cls.RATIOS]

        def score(u: float | None) -> float:
            y = r if u is None else cls("saturating", 1.0, u)(r)
            log_jac = 0.0 if u is None else float(-np.log1p(-np.clip(r, 0.0, None) / u).sum())
            return log_jac + max(_profile_loglik(y, chol) for chol in factors)

        ceilings = [round(h * float(r.max()), 12) for h in cls.HEADROOMS]
        scores = [score(u) for u in ceilings]
        best = int(np.argmax(scores))
        return ceilings[best] if scores[best] > score(None) + margin else None

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


def _profile_loglik(y: np.ndarray, chol: np.ndarray) -> float:
    """Log likelihood of ``y ~ N(m 1, s^2 C)`` at the best ``m`` and ``s^2``, ``C = L L^T`` (``chol = L``)."""
    from scipy.linalg import solve_triangular

    n = len(y)
    a = solve_triangular(chol, np.stack([y, np.ones(n)], axis=1), lower=True)
    ay, a1 = a[:, 0], a[:, 1]
    resid = ay - (a1 @ ay) / (a1 @ a1) * a1
    s2 = max(float(resid @ resid) / n, 1e-300)
    return -0.5 * n * math.log(s2) - float(np.log(np.diag(chol)).sum())
