"""The structured kernel of ``ecbo``'s quality GP.

Damage to quality is roughly additive over blocks, with interactions between neighbouring blocks
and a little compounding. The kernel mirrors that decomposition of the latent warped quality::

    f(x) = sum_b w_b[x_b]                        additive: one weight per (block, candidate)
         + sum_b v_b[x_b, x_{b+1}]               neighbour pairs (blocks in model order)
         + s * z(x)                              prior: z = summed prior damage, s ~ N(0, .)
         + s2 * z2(x)                            compounding: z2 = sum_b sqrt(p_b[x_b] p_{b+1}[x_{b+1}])
         + sum_b p_b[x_b] u_b[x_b]               prior-scaled weights: the prior's error grows with it
         + sum_n count_n(x) t_n                  candidates named alike (``skip``...) damage alike
         + sum_b s_b r_b[x_b]                    per-block scale: one weight per block times a
                                                 fixed shape r (the cost an option removes, or
                                                 the prior: the prior's scale per block)
         + sum_{b' > b+1} g_bb'[x_b, x_b']       distant pairs (small spaces: a cell's link
                                                 pattern acting on every layer)
         + h(x)                                  residual interactions, RBF on one-hot

With Gaussian weights each term is a linear kernel on one-hot features (the first two count
matching blocks / matching neighbour pairs; the RBF on one-hot vectors is ``exp(-hamming / l^2)``),
so the GP is::

    k(x, x') = a1 <phi1(x), phi1(x')> + a2 <phi2(x), phi2(x')> + a3 z(x) z(x')
             + a4 <phi_p(x), phi_p(x')> + a5 <n(x), n(x')> + a6 RBF(x, x') + a7 z2(x) z2(x')
             + a8 <r(x), r(x')> + a9 <phi6(x), phi6(x')>

with ``phi1`` the one-hot encoding / sqrt(B), ``phi2`` the neighbour-pair one-hot / sqrt(B - 1),
``phi_p`` the one-hot weighted by the (normalised) prior, ``n`` the counts of each candidate name
shared by several blocks / sqrt(B), ``z2`` the summed geometric-mean prior damage of neighbouring
blocks (damage of neighbours compounds; the prior terms only with a prior) and ``r`` the per-block
shape columns (only with a block shape) and ``phi6`` the distant-pair one-hot / sqrt(their number)
(only with ``far_pairs``). The feature columns
are :class:`~tocsr_nas.strategies.ecbo.features.ConfigFeatures`; the GP built on this kernel, its
mean, noise and fitted hyperparameters ``a1..a9, l`` are :mod:`~tocsr_nas.strategies.ecbo.gp`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from tocsr_nas.strategies.ecbo.features import ConfigFeatures

__all__ = ["StructuredKernel"]


class StructuredKernel:
    """The kernel of :mod:`~tocsr_nas.strategies.ecbo.kernel`; the RBF term is ``exp(-|phi1 - phi1'|^2 / (2 l^2))``.

    ``|phi1|^2 = 1`` for every configuration, so ``|phi1 - phi1'|^2 = 2 - 2 <phi1, phi1'>`` (twice
    the fraction of blocks that differ). Terms not in ``active`` are left out.
    """

    def __init__(self, features: ConfigFeatures, active: Sequence[str]) -> None:
        self.features = features
        self.active = tuple(active)

    def parts(self, X1: Tensor, X2: Tensor) -> dict[str, Tensor]:
        f = self.features
        k1 = X1[:, : f.d1] @ X2[:, : f.d1].T  # (n1, n2)
        out = {"additive": k1}
        if "pairs" in self.active:
            out["pairs"] = X1[:, f.d1 : f.d1 + f.d2] @ X2[:, f.d1 : f.d1 + f.d2].T
        if "prior" in self.active:
            z = f.slice_z[0]
            out["prior"] = X1[:, z : z + 1] @ X2[:, z : z + 1].T
        if "scaled" in self.active:
            out["scaled"] = X1[:, f.slice_p[0] : f.d_base] @ X2[:, f.slice_p[0] : f.d_base].T
        if "shared" in self.active:
            out["shared"] = X1[:, f.slice_s[0] : f.slice_s[-1] + 1] @ X2[:, f.slice_s[0] : f.slice_s[-1] + 1].T
        if "prior_pairs" in self.active:
            z2 = f.slice_z2[0]
            out["prior_pairs"] = X1[:, z2 : z2 + 1] @ X2[:, z2 : z2 + 1].T
        if "block_scale" in self.active:
            r, r_end = f.slice_r[0], f.slice_r[-1] + 1
            out["block_scale"] = X1[:, r:r_end] @ X2[:, r:r_end].T
        if "far_pairs" in self.active:
            g = f.slice_far[0]
            out["far_pairs"] = X1[:, g : f.dim] @ X2[:, g : f.dim].T
        if "rbf" in self.active:
            out["sqdist"] = (2.0 - 2.0 * k1).clamp_min(0.0)
        return out

    @staticmethod
    def combine(parts: Mapping[str, Tensor], h: Mapping[str, Tensor | float]) -> Tensor:
        K = h["additive"] * parts["additive"]
        for name in ("pairs", "prior", "prior_pairs", "scaled", "shared", "block_scale", "far_pairs"):
            if name in parts:
                K = K + h[name] * parts[name]
        if "sqdist" in parts:
            K = K + h["rbf"] * torch.exp(-parts["sqdist"] / (2.0 * h["lengthscale"] ** 2))
        return K

    def __call__(self, X1: Tensor, X2: Tensor, h: Mapping[str, Tensor | float]) -> Tensor:
        return self.combine(self.parts(X1, X2), h)

    def diag(self, X: Tensor, h: Mapping[str, Tensor | float]) -> Tensor:
        f = self.features
        d = h["additive"] * (X[:, : f.d1] ** 2).sum(1)
        if "pairs" in self.active:
            d = d + h["pairs"] * (X[:, f.d1 : f.d1 + f.d2] ** 2).sum(1)
        if "prior" in self.active:
            d = d + h["prior"] * X[:, f.slice_z[0]] ** 2
        if "scaled" in self.active:
            d = d + h["scaled"] * (X[:, f.slice_p[0] : f.d_base] ** 2).sum(1)
        if "shared" in self.active:
            d = d + h["shared"] * (X[:, f.slice_s[0] : f.slice_s[-1] + 1] ** 2).sum(1)
        if "prior_pairs" in self.active:
            d = d + h["prior_pairs"] * X[:, f.slice_z2[0]] ** 2
        if "block_scale" in self.active:
            d = d + h["block_scale"] * (X[:, f.slice_r[0] : f.slice_r[-1] + 1] ** 2).sum(1)
        if "far_pairs" in self.active:
            d = d + h["far_pairs"] * (X[:, f.slice_far[0] : f.dim] ** 2).sum(1)
        if "rbf" in self.active:
            d = d + h["rbf"]
        return d
