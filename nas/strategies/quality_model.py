"""The GP that ``ecbo`` fits to quality: features of a configuration and a structured kernel.

Damage to quality is roughly additive over blocks, with interactions between neighbouring blocks
and a little compounding. The kernel mirrors that decomposition of the latent warped quality::

    f(x) = sum_b w_b[x_b]                        additive: one weight per (block, candidate)
         + sum_b v_b[x_b, x_{b+1}]               neighbour pairs (blocks in model order)
         + s * z(x)                              prior: z = summed prior damage, s ~ N(0, .)
         + h(x)                                  residual interactions, RBF on one-hot

With Gaussian weights each term is a linear kernel on one-hot features (the first two count
matching blocks / matching neighbour pairs; the RBF on one-hot vectors is ``exp(-hamming / l^2)``),
so the GP is::

    k(x, x') = a1 * <phi1(x), phi1(x')> + a2 * <phi2(x), phi2(x')> + a3 * z(x) z(x') + a4 * RBF(x, x')

with ``phi1`` the one-hot encoding / sqrt(B), ``phi2`` the neighbour-pair one-hot / sqrt(B - 1),
a constant mean and Gaussian noise (a nugget for model misfit). Hyperparameters are fitted by
MAP (botorch's ``fit_gpytorch_mll``) under weak Gamma priors.

Outputs are ``y = g(q) = sign(q) log1p(|q| / e_ref)`` (``warp="log1p"``) or ``q / e_ref``
(``warp="linear"``), ``e_ref`` the largest epsilon: monotone, so ``q <= e <=> y <= g(e)``; the
log warp keeps wildly infeasible configurations from dominating the fit near the threshold.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import gpytorch
import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import LinearKernel, RBFKernel, ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from torch import Tensor

from tocsr_nas.searchspace import SearchSpace

__all__ = ["ConfigFeatures", "QualityWarp", "fit_quality_gp"]

DTYPE = torch.float64


class QualityWarp:
    """The monotone output warp ``g`` (see the module docstring)."""

    def __init__(self, kind: str, e_ref: float) -> None:
        self.kind = kind
        self.e_ref = e_ref if e_ref > 0 else 1.0

    def __call__(self, q: np.ndarray | float) -> np.ndarray:
        r = np.asarray(q, dtype=np.float64) / self.e_ref
        if self.kind == "linear":
            return r
        return np.sign(r) * np.log1p(np.abs(r))


class ConfigFeatures:
    """Turns choice-index matrices ``(N, B)`` into GP features ``(N, D1 + D2 + 1)``.

    Columns: ``[phi1 (one-hot, D1) | phi2 (neighbour pairs, D2) | z (prior, 1)]``.

    Args:
        space: the search space (block order = model order).
        prior: optional ``path -> candidate -> damage``; missing entries take the block's mean.
    """

    def __init__(self, space: SearchSpace, prior: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.card = np.array(space.cardinalities, dtype=np.int64)  # (B,)
        self.n_blocks = len(self.card)
        self.offsets = np.concatenate([[0], np.cumsum(self.card)[:-1]])  # (B,)
        self.d1 = int(self.card.sum())
        pair_sizes = self.card[:-1] * self.card[1:]  # (B-1,)
        self.pair_offsets = np.concatenate([[0], np.cumsum(pair_sizes)[:-1]]) if len(pair_sizes) else np.zeros(0, np.int64)
        self.d2 = int(pair_sizes.sum())
        self.has_prior = prior is not None
        self.prior_table = np.zeros((self.n_blocks, int(self.card.max())))  # (B, Kmax)
        if prior is not None:
            for b, block in enumerate(space.blocks):
                known = prior.get(block.path, {})
                fill = float(np.mean(list(known.values()))) if known else 0.0
                for k, name in enumerate(block.names):
                    self.prior_table[b, k] = float(known.get(name, 0.0 if k == 0 and not known else fill))
            worst = self.prior_table.max(axis=1).sum()
            if worst > 0:
                self.prior_table /= worst  # z in [0, 1]
        self.dim = self.d1 + self.d2 + 1
        self.slice1 = list(range(0, self.d1))
        self.slice2 = list(range(self.d1, self.d1 + self.d2))
        self.slice_z = [self.d1 + self.d2]

    def __call__(self, idx: np.ndarray) -> Tensor:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, self.n_blocks)  # (N, B)
        n = idx.shape[0]
        out = np.zeros((n, self.dim))
        rows = np.arange(n)[:, None]
        out[rows, self.offsets[None, :] + idx] = 1.0 / math.sqrt(self.n_blocks)
        if self.n_blocks > 1:
            pair = idx[:, :-1] * self.card[None, 1:] + idx[:, 1:]  # (N, B-1)
            out[rows, self.d1 + self.pair_offsets[None, :] + pair] = 1.0 / math.sqrt(self.n_blocks - 1)
        out[:, -1] = self.prior_table[np.arange(self.n_blocks)[None, :], idx].sum(axis=1)
        return torch.as_tensor(out, dtype=DTYPE)

    def prior_damage(self, idx: np.ndarray) -> np.ndarray:
        """``(B, Kmax)`` normalised prior table (zeros without a prior)."""
        return self.prior_table


def _kernel(features: ConfigFeatures, use_pairs: bool, use_rbf: bool) -> gpytorch.kernels.Kernel:
    def scaled(base: gpytorch.kernels.Kernel) -> ScaleKernel:
        return ScaleKernel(base, outputscale_prior=GammaPrior(2.0, 4.0))

    def linear(dims: Sequence[int]) -> LinearKernel:
        kern = LinearKernel(active_dims=torch.tensor(dims))
        kern.variance = 1.0
        kern.raw_variance.requires_grad_(False)  # the ScaleKernel carries the scale
        return kern

    parts = [scaled(linear(features.slice1))]
    if use_pairs and features.d2:
        parts.append(scaled(linear(features.slice2)))
    if features.has_prior:
        parts.append(scaled(linear(features.slice_z)))
    if use_rbf:
        rbf = RBFKernel(active_dims=torch.tensor(features.slice1), lengthscale_prior=GammaPrior(3.0, 6.0))
        parts.append(scaled(rbf))
    kernel = parts[0]
    for p in parts[1:]:
        kernel = kernel + p
    return kernel


def fit_quality_gp(
    X: Tensor,
    y: Tensor,
    features: ConfigFeatures,
    *,
    use_pairs: bool = True,
    use_rbf: bool = True,
    seed: int = 0,
) -> SingleTaskGP:
    """Fit the GP of the module docstring by MAP; deterministic given the data and ``seed``.

    Args:
        X: features ``(n, d)``.
        y: warped qualities ``(n,)``.
        features: the feature map that produced ``X``.
        seed: seeds the (rare) random restarts of the optimiser, inside a forked torch RNG.
    """
    likelihood = GaussianLikelihood(noise_prior=GammaPrior(1.1, 20.0), noise_constraint=GreaterThan(1e-6))
    model = SingleTaskGP(
        X,
        y.reshape(-1, 1),
        likelihood=likelihood,
        covar_module=_kernel(features, use_pairs, use_rbf),
        mean_module=ConstantMean(),
        outcome_transform=None,
    )
    if X.shape[0] >= 2:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)
            warnings.simplefilter("ignore")
            try:
                fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": 200}})
            except Exception:  # noqa: BLE001 - keep the prior-mode hyperparameters; the GP still conditions on data
                pass
    model.eval()
    return model
