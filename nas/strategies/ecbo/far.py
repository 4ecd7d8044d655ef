"""The far-failure model of ``ecbo`` (option ``far_model``): a hurdle split of the quality model.

Where some architectures fail outright (a real NAS table's broken cells score tens of epsilon
while working ones lie within a few), one GP for every observation has to explain a jump that its
additive terms cannot represent: the far values pull the per-block weights of every option they
contain upwards, the residual RBF term takes up the rest with a large variance and a short
lengthscale, and the search then believes feasible configurations next to the incumbent
infeasible while giving cheap unseen ones a feasibility that comes from that variance alone
(range100, instance 104: 34 of 40 proposals infeasible, the optimum predicted at 4 thresholds).

With ``far_model``, once :data:`MIN_FAR` observations lie beyond and
:data:`~tocsr_nas.strategies.ecbo.select.MIN_OBSERVATIONS` observations lie within :data:`~tocsr_nas.strategies.ecbo.select.FAR` times the largest epsilon (before, the
label model has too little to learn from: proposing from it at once made the first 10 evaluations
twice as bad on range100), the observations beyond are taken out of the quality model, which then describes the working
architectures only, and a second GP with the same kernel is fitted to the label "far" (1) /
"not far" (0) of every observation (least-squares classification, the constant mean, i.e. the
failure rate, fitted). With the option ``failures_far`` (on by default) failed evaluations (``nan`` /
``inf``) are far failures too: a network that does not evaluate is broken like one that scores
tens of epsilon. A candidate's feasibility is then::

    P(feasible) = P(not far)^w * P(g(q) <= t | not far),   P(not far) = Phi((1/2 - m(x)) / s(x))

with ``m``, ``s^2`` the label GP's posterior mean and predictive variance (noise included) and
``w`` the option ``far_weight`` (3: a far failure costs an evaluation and teaches the quality
model nothing, so the acquisition shuns it more than a near miss).
Nothing here depends on why architectures fail: the label GP learns the failure region from the
data (additively, per neighbour pair, by the counts of candidates named alike in several blocks
and locally), as the quality GP learns the damages.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import QualityGP, fit_quality_gp

__all__ = ["MIN_FAR", "FarModel", "far_mask"]

#: far observations needed before the split (one far label gives the label GP nothing to learn)
MIN_FAR = 2


def far_mask(quality: np.ndarray, far_at: float) -> np.ndarray:
    """Which observations are far failures: finite qualities above ``far_at`` ``(n,)`` -> bool ``(n,)``.

    Failed evaluations (``inf`` / ``nan``) are not counted here (``ecbo`` adds them with its option
    ``failures_far``; the reference warp's rule ignores them).

    Example:
        >>> far_mask(np.array([0.1, 5.0, np.inf, 0.9]), 1.0).tolist()
        [False, True, False, False]
    """
    q = np.asarray(quality, dtype=np.float64)
    return np.isfinite(q) & (q > far_at)


class FarModel:
    """``P(not far)`` of configurations, from a GP fitted to the far / not-far labels.

    Args:
        gp: the label GP (:meth:`fit`).
        features: the feature map of the configurations it predicts.
    """

    def __init__(self, gp: QualityGP, features: ConfigFeatures) -> None:
        self.gp = gp
        self.features = features

    @classmethod
    def fit(cls, idx: np.ndarray, far: np.ndarray, features: ConfigFeatures, *, use_pairs: bool = True, use_rbf: bool = True) -> "FarModel":
        """Fit the label GP to choice-index rows ``idx`` ``(n, B)`` and labels ``far`` ``(n,)`` (bool).

        The kernel is the quality GP's without the prior and per-block-scale terms, with the
        counts of candidate names shared by several blocks (a cell space's operations: how many
        edges pool or skip); the constant mean (the failure rate) is fitted.
        """
        y = torch.as_tensor(far.astype(np.float64), dtype=DTYPE)
        gp = fit_quality_gp(features(idx), y, features, use_pairs=use_pairs, use_rbf=use_rbf, use_prior=False, use_block_scale=False, mean=None)
        return cls(gp, features)

    def log_p_ok(self, idx: np.ndarray) -> Tensor:
        """``log P(not far)`` of choice-index rows ``idx`` ``(N, B)`` -> ``(N,)``."""
        mean, var = self.gp.predict(self.features(idx))
        sd = (var + self.gp.hypers["noise"]).sqrt()
        return torch.special.log_ndtr((0.5 - mean) / sd)
