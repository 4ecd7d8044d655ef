"""The GP that ``ecbo`` fits to quality: exact posterior, chain tables and the MAP fit.

A :class:`QualityGP` is an exact GP on the features of
:class:`~tocsr_nas.strategies.ecbo.features.ConfigFeatures` with the structured kernel of
:mod:`~tocsr_nas.strategies.ecbo.kernel`, a constant mean and Gaussian noise (a nugget for model
misfit), fitted to warped qualities (:mod:`~tocsr_nas.strategies.ecbo.warp`) by
:func:`fit_quality_gp`: MAP under weak Gamma priors, vague on the prior terms (how the prior's
units map to quality's is unknown); the prior-scaled per-cell weights can be tied to the prior's
scale by a relative error (``prior_rel_sd``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import gpytorch
import numpy as np
import torch
from gpytorch.constraints import GreaterThan
from torch import Tensor

from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.kernel import StructuredKernel

__all__ = ["ChainTables", "QualityGP", "fit_quality_gp"]

logger = logging.getLogger(__name__)

#: hyperparameters in fitting order, and their Gamma(shape, rate) priors (None: flat)
_HYPERS = ("additive", "pairs", "prior", "prior_pairs", "scaled", "shared", "block_scale", "far_pairs", "rbf", "lengthscale", "noise")
#: The prior terms' variances get a vague prior: their scale is the ratio between the prior's units
#: (a distillation loss, say) and the quality's, which nothing bounds. A Gamma(2, 4) there (mean 0.5)
#: held the prior term's variance far below the 50 to 180 that landscape B's data give it, so the
#: first proposals took the prior to promise far less damage than it did.
_PRIORS = {
    "additive": (2.0, 4.0),
    "pairs": (2.0, 4.0),
    "prior": (1.0, 1e-3),
    "scaled": (2.0, 4.0),
    "shared": (2.0, 4.0),
    "block_scale": (2.0, 4.0),
    # the distant pairs (option far_pairs_blocks): an exponential prior (mode 0) and a small start (_INIT), so that
    # the fit can switch the term off where the data show no distant interaction; with the neighbour pairs' Gamma(2, 4)
    # and start 0.2 it held macro's search at 5.7% regret at 20 evaluations instead of 0.0% (docs/BENCHMARKS.md
    # section 7, "Confirmation tables")
    "far_pairs": (1.0, 4.0),
    "prior_pairs": (1.0, 1e-3),
    "rbf": (2.0, 4.0),
    "lengthscale": (3.0, 6.0),
    "noise": (1.1, 20.0),
}
#: with the prior as the per-block shape (``ConfigFeatures(block_shape="prior")``) the per-block
#: scales are the prior's units per block, as unbounded as the prior term's: the hyperprior of that term
_PRIOR_SHAPED = "prior"
#: ... and a second L-BFGS-B start with their variance here: from the usual start (0.5) the fit on the
#: demo's searches stops where the term is off, far below this start's optimum in marginal likelihood
_BLOCK_PRIOR_START = 100.0
_INIT = {"additive": 0.5, "pairs": 0.2, "prior": 10.0, "scaled": 0.5, "shared": 0.5, "block_scale": 0.5, "far_pairs": 0.05, "prior_pairs": 0.5, "rbf": 0.2, "lengthscale": 0.5, "noise": 0.02}
_MIN_NOISE = 1e-6


class ChainTables:
    """The linear (chain-decomposable) part of the GP's latent function, as tables.

    ``f_lin(x) = const + sum_b U[s, b, x_b] + sum_b V[s, b, x_b, x_{b+1}]`` for ``S`` functions:
    index 0 is the posterior mean, the others posterior samples (:meth:`QualityGP.chain_tables`).
    The residual RBF term is not in the tables.
    """

    def __init__(self, U: Tensor, V: Tensor, const: float) -> None:
        self.U, self.V, self.const = U, V, float(const)  # (S, B, Kmax), (S, B-1, Kmax, Kmax)

    def value(self, idx: np.ndarray) -> np.ndarray:
        """``f_lin`` of index rows ``(N, B)`` under every table -> ``(S, N)``."""
        idx = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        B = idx.shape[1]
        blocks = torch.arange(B)
        out = self.U[:, blocks[None, :], idx].sum(-1)  # (S, N)
        if B > 1:
            out = out + self.V[:, blocks[None, :-1], idx[:, :-1], idx[:, 1:]].sum(-1)
        return (out + self.const).numpy()


class QualityGP:
    """An exact GP on configuration features, with hyperparameters fitted by MAP.

    The marginal likelihood is written out (precomputed kernel parts, one Cholesky per
    evaluation, autograd gradients, scipy L-BFGS-B), which is two orders of magnitude faster than
    going through gpytorch's lazy kernel algebra for these small dense problems. Predictions use
    the cached Cholesky factor ``L L^T = K(X, X) + s^2 I``::

        mean(x) = c + k(X, x)^T alpha,   alpha = (K + s^2 I)^{-1} (y - c)
        var(x)  = k(x, x) - |L^{-1} k(X, x)|^2

    :meth:`to_botorch` returns an equivalent botorch ``SingleTaskGP`` (gpytorch kernels, same
    hyperparameters): the reference that the hand-written algebra is tested against.
    """

    def __init__(self, kernel: StructuredKernel, X: Tensor, y: Tensor, hypers: Mapping[str, float], mean: float) -> None:
        self.kernel = kernel
        self.X, self.y = X, y  # (n, d), (n,)
        self.hypers = dict(hypers)
        self.mean_const = float(mean)
        with torch.no_grad():
            K = kernel(X, X, self.hypers) + self.hypers["noise"] * torch.eye(len(X), dtype=DTYPE)  # (n, n)
            self.L = _cholesky(K)
            self.alpha = torch.cholesky_solve((y - self.mean_const)[:, None], self.L)  # (n, 1)

    @torch.no_grad()
    def predict(self, Xs: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and variance of the latent function at ``Xs`` ``(N, d)`` -> ``(N,), (N,)``."""
        Ks = self.kernel(self.X, Xs, self.hypers)  # (n, N)
        mean = self.mean_const + (Ks * self.alpha).sum(0)
        V = torch.linalg.solve_triangular(self.L, Ks, upper=False)  # (n, N)
        var = self.kernel.diag(Xs, self.hypers) - (V * V).sum(0)
        return mean, var.clamp_min(1e-12)

    @torch.no_grad()
    def joint(self, Xs: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean ``(N,)`` and covariance ``(N, N)`` (for small ``N``: joint samples)."""
        Ks = self.kernel(self.X, Xs, self.hypers)
        mean = self.mean_const + (Ks * self.alpha).sum(0)
        V = torch.linalg.solve_triangular(self.L, Ks, upper=False)
        return mean, self.kernel(Xs, Xs, self.hypers) - V.T @ V

    @torch.no_grad()
    def loo_residuals(self) -> Tensor:
        """Leave-one-out residuals ``y_i - mean_{-i}(x_i)`` ``(n,)`` in closed form.

        With ``A = (K + s^2 I)^{-1}`` and ``alpha = A (y - c)``, the posterior mean at ``x_i``
        without observation ``i`` satisfies ``y_i - mean_{-i}(x_i) = alpha_i / A_ii``
        (Rasmussen and Williams 2006, eq. 5.12).
        """
        A = torch.cholesky_inverse(self.L)  # (n, n)
        return self.alpha[:, 0] / A.diagonal()

    @torch.no_grad()
    def loo_predictive(self) -> tuple[Tensor, Tensor]:
        """Leave-one-out predictive mean and variance of each observation ``(n,), (n,)``, in closed form.

        ``mean_{-i} = y_i - alpha_i / A_ii`` and ``var_{-i} = 1 / A_ii`` (noise included), with
        ``A = (K + s^2 I)^{-1}`` (Rasmussen and Williams 2006, eqs. 5.10 and 5.12).
        """
        A = torch.cholesky_inverse(self.L)  # (n, n)
        diag = A.diagonal().clamp_min(1e-12)
        return self.y - self.alpha[:, 0] / diag, 1.0 / diag

    @torch.no_grad()
    def chain_tables(self, samples: int, generator: torch.Generator | None = None) -> ChainTables:
        """Posterior mean and ``samples`` joint posterior samples of the linear kernel terms, as tables.

        Weight-space view: the linear terms are ``f_lin(x) = phi(x) . w`` with prior
        ``w ~ N(0, H)``, ``H = diag(h_term)`` over each term's feature columns, so that
        ``cov(f_lin(x), f_lin(x')) = phi(x)^T H phi(x')`` is the kernel's linear part. With
        ``alpha = (K + s^2 I)^{-1} (y - c)``::

            E[w | y] = H Phi^T alpha                                                   (1)

        and a joint sample follows Matheron's rule (pathwise conditioning): draw the prior
        ``w0 ~ N(0, H)``, the residual RBF term at the data ``r0 ~ N(0, K_rbf(X, X))`` and the
        noise ``e0 ~ N(0, s^2 I)``, then::

            w = w0 + H Phi^T (K + s^2 I)^{-1} (y - c - Phi w0 - r0 - e0)                (2)

        Both are split into chain tables by :meth:`ConfigFeatures.decompose`.

        Args:
            samples: number of posterior samples ``S - 1`` (index 0 is the mean).
            generator: torch random generator for the samples.
        """
        f = self.kernel.features
        X = self.X  # (n, D)
        if f.d6 and "far_pairs" not in self.kernel.active:  # a model without the distant pairs: the features without them
            X = X[:, : f.slice_far[0]].contiguous()
        hvec = torch.zeros(X.shape[1], dtype=DTYPE)  # (D,)
        for term, cols in f.column_terms().items():
            if term == "additive" or term in self.kernel.active:
                hvec[cols] = self.hypers[term]
        r = (self.y - self.mean_const)[:, None]  # (n, 1)
        W = hvec[:, None] * (X.T @ self.alpha)  # (D, 1), eq. (1)
        if samples:
            n = X.shape[0]
            # the prior-shaped block columns draw only when their term is in the model: the other models'
            # samples stay those of the features without them (the distant pairs' columns, above, likewise)
            drawn: slice | Tensor = slice(None)
            if f.shape_is_prior and "block_scale" not in self.kernel.active:
                if X.shape[1] == f.slice_r[-1] + 1:  # they end X: the same prefix, the same draws as before
                    drawn = slice(0, f.slice_r[0])
                else:  # the distant pairs follow them
                    drawn = torch.ones(X.shape[1], dtype=torch.bool)
                    drawn[f.slice_r] = False
            w0 = torch.zeros(X.shape[1], samples, dtype=DTYPE)
            h_drawn = hvec[drawn]
            w0[drawn] = h_drawn.sqrt()[:, None] * torch.randn(len(h_drawn), samples, generator=generator, dtype=DTYPE)  # (D, S)
            path = X[:, drawn] @ w0[drawn]  # (n, S)
            if "rbf" in self.kernel.active:
                parts = self.kernel.parts(X, X)
                K_rbf = self.hypers["rbf"] * torch.exp(-parts["sqdist"] / (2.0 * self.hypers["lengthscale"] ** 2))
                path = path + _cholesky(K_rbf + 1e-9 * torch.eye(n, dtype=DTYPE)) @ torch.randn(n, samples, generator=generator, dtype=DTYPE)
            path = path + math.sqrt(self.hypers["noise"]) * torch.randn(n, samples, generator=generator, dtype=DTYPE)
            w = w0 + hvec[:, None] * (X.T @ torch.cholesky_solve(r - path, self.L))  # (D, S), eq. (2)
            W = torch.cat([W, w], dim=1)
        U, V = f.decompose(W)
        return ChainTables(U, V, self.mean_const)

    def condition(self, Xn: Tensor, yn: Tensor) -> "QualityGP":
        """The same GP with observations ``(Xn, yn)`` appended (kriging-believer fantasies)."""
        return QualityGP(self.kernel, torch.cat([self.X, Xn]), torch.cat([self.y, yn.reshape(-1)]), self.hypers, self.mean_const)

    def to_botorch(self):
        """An equivalent botorch ``SingleTaskGP`` built from gpytorch kernels."""
        from botorch.models import SingleTaskGP
        from gpytorch.kernels import RBFKernel, ScaleKernel
        from gpytorch.likelihoods import GaussianLikelihood
        from gpytorch.means import ConstantMean

        f = self.kernel.features
        h = self.hypers

        def scaled(base, scale):
            k = ScaleKernel(base)
            k.outputscale = scale
            return k

        parts = [scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice1)), h["additive"])]
        if "pairs" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice2)), h["pairs"]))
        if "prior" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice_z)), h["prior"]))
        if "scaled" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice_p)), h["scaled"]))
        if "shared" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice_s)), h["shared"]))
        if "prior_pairs" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice_z2)), h["prior_pairs"]))
        if "block_scale" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice_r)), h["block_scale"]))
        if "far_pairs" in self.kernel.active:
            parts.append(scaled(_DenseLinearKernel(active_dims=torch.tensor(f.slice_far)), h["far_pairs"]))
        if "rbf" in self.kernel.active:
            rbf = RBFKernel(active_dims=torch.tensor(f.slice1))
            rbf.lengthscale = h["lengthscale"]
            parts.append(scaled(rbf, h["rbf"]))
        covar = parts[0]
        for p in parts[1:]:
            covar = covar + p
        likelihood = GaussianLikelihood(noise_constraint=GreaterThan(_MIN_NOISE / 2))
        likelihood.noise = h["noise"]
        mean = ConstantMean()
        mean.constant = self.mean_const
        model = SingleTaskGP(self.X, self.y[:, None], likelihood=likelihood, covar_module=covar.to(DTYPE),
                             mean_module=mean.to(DTYPE), outcome_transform=None)
        return model.eval()


class _DenseLinearKernel(gpytorch.kernels.Kernel):
    """``<x, x'>`` as a dense tensor (gpytorch's ``LinearKernel`` is a low-rank operator whose
    sums trigger SVDs)."""

    has_lengthscale = False

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params) -> Tensor:
        if diag:
            return (x1 * x2).sum(-1)
        return x1 @ x2.transpose(-1, -2)


def _cholesky(K: Tensor) -> Tensor:
    jitter = 0.0
    eye = torch.eye(K.shape[0], dtype=K.dtype)
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        if int(info) == 0:
            return L
        jitter = max(jitter * 10, 1e-9 * float(K.diagonal().mean().clamp_min(1e-12)))
    return torch.linalg.cholesky(K + jitter * eye)


def _gamma_logpdf(x: Tensor, shape: float, rate: float) -> Tensor:
    return (shape - 1.0) * torch.log(x) - rate * x


def fit_quality_gp(
    X: Tensor,
    y: Tensor,
    features: ConfigFeatures,
    *,
    use_pairs: bool = True,
    use_rbf: bool = True,
    use_prior_pairs: bool = True,
    use_prior: bool = True,
    use_block_scale: bool = False,
    use_far_pairs: bool = False,
    mean: float | None = None,
    prior_rel_sd: float | None = None,
    maxiter: int = 100,
) -> QualityGP:
    """Fit the GP of :mod:`~tocsr_nas.strategies.ecbo.gp` by MAP; deterministic given the data.

    The objective is ``-log N(y | c, K + s^2 I) - sum log Gamma(hyper)`` over log-hyperparameters
    (and the constant mean ``c``), minimised by L-BFGS-B from a fixed start.

    Args:
        X: features ``(n, d)``.
        y: warped qualities ``(n,)``.
        features: the feature map that produced ``X``.
        use_pairs: include the neighbour-pair term.
        use_rbf: include the residual RBF term.
        use_prior_pairs: include the compounding term ``z2`` (with a prior and >= 2 blocks).
        use_prior: include the prior terms (``z``, the prior-scaled weights, ``z2``) when
            ``features`` has a prior; ``False`` gives the prior weight 0 (its columns are unused).
        use_block_scale: include the per-block-scale term (one weight per block times the fixed
            shape of ``features``' ``block_shape``) when ``features`` has one. When the shape is
            the prior (``block_shape="prior"``) only beside the prior terms (``use_prior``): each
            block's prior then gets its own scale, with the prior term's vague hyperprior and a
            second optimiser start at :data:`_BLOCK_PRIOR_START`.
        use_far_pairs: include the distant-pair term when ``features`` has its columns
            (``ConfigFeatures(far_pairs=True)``).
        mean: a known constant mean ``c`` (e.g. the teacher's warped quality: every weight then
            measures damage relative to the teacher); ``None`` fits ``c``. A fitted ``c`` on data
            that mostly changes many blocks is absorbed by the reference choices' weights, which
            then bias every single change by ``c / B``.
        prior_rel_sd: tie the prior-scaled per-cell weights to the prior's fitted scale: each cell's
            damage is ``p * (s + u)`` with ``sd(u) = prior_rel_sd * sd(s)`` (the prior's relative
            error per cell) instead of a separately fitted variance. ``None`` fits it freely. Tied,
            the per-cell corrections grow with the scale, so the scale no longer absorbs the
            optimism of the cells a search picked *because* their prior was low. With the prior's
            per-block scales, ``s`` is the global scale plus the block's own, and ``sd(u)`` follows
            both.
        maxiter: L-BFGS-B iterations.
    """
    from scipy.optimize import minimize

    active = ["additive"] + (["pairs"] if use_pairs and features.d2 else [])
    prior = features.has_prior and use_prior
    active += ["prior", "scaled"] if prior else []
    active += ["shared"] if features.d3 else []
    active += ["block_scale"] if features.d5 and use_block_scale else []
    # the per-block scales of the prior: only beside the prior terms (their shape is the prior)
    prior_blocks = "block_scale" in active and features.shape_is_prior
    if prior_blocks and not prior:
        active.remove("block_scale")
        prior_blocks = False
    active += ["prior_pairs"] if features.d4 and use_prior_pairs and prior else []
    active += ["far_pairs"] if features.d6 and use_far_pairs else []
    active += ["rbf", "lengthscale"] if use_rbf else []
    kernel = StructuredKernel(features, active)
    tied = prior_rel_sd is not None and "scaled" in active
    if prior_rel_sd is not None and not prior_rel_sd > 0:
        raise ValueError(f"prior_rel_sd must be positive, got {prior_rel_sd!r}")
    names = [n for n in _HYPERS if n in active and not (tied and n == "scaled")] + ["noise"]
    parts = {k: v.detach() for k, v in kernel.parts(X, X).items()}
    n = len(y)
    eye = torch.eye(n, dtype=DTYPE)
    y = y.to(DTYPE)

    def unpack(theta: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        h = {name: torch.exp(theta[i]) for i, name in enumerate(names)}
        h["noise"] = h["noise"] + _MIN_NOISE
        if tied:  # var(u) = rel^2 var(s), in the scaled columns' units (phi_p = p * scaled_norm)
            h["scaled"] = h["prior"] * (prior_rel_sd / features.scaled_norm) ** 2
            if prior_blocks:  # ... s the prior's scale in the cell's block: the global one plus the block's own
                h["scaled"] = h["scaled"] + h["block_scale"] * (prior_rel_sd * features.block_norm / features.scaled_norm) ** 2
        return h, (theta[-1] if mean is None else torch.tensor(float(mean), dtype=DTYPE))

    def objective(theta_np: np.ndarray) -> tuple[float, np.ndarray]:
        theta = torch.tensor(theta_np, dtype=DTYPE, requires_grad=True)
        h, c = unpack(theta)
        K = StructuredKernel.combine(parts, h) + h["noise"] * eye
        L, info = torch.linalg.cholesky_ex(K)
        if int(info) != 0:
            return 1e10, np.zeros_like(theta_np)
        r = (y - c)[:, None]
        a = torch.cholesky_solve(r, L)
        nll = 0.5 * (r * a).sum() + torch.log(torch.diagonal(L)).sum() + 0.5 * n * math.log(2 * math.pi)
        for name in names:
            nll = nll - _gamma_logpdf(h[name], *_PRIORS[_PRIOR_SHAPED if prior_blocks and name == "block_scale" else name])
        nll.backward()
        return float(nll.detach()), theta.grad.numpy().copy()

    theta0 = np.array([math.log(_INIT[name]) for name in names] + [float(y.mean()) if n and mean is None else 0.0])
    theta = theta0
    starts = [theta0]
    if prior_blocks:
        starts.append(theta0.copy())
        starts[-1][names.index("block_scale")] = math.log(_BLOCK_PRIOR_START)
    if n >= 2:
        bounds = [(math.log(1e-4), math.log(1e3))] * len(names) + [(None, None) if mean is None else (0.0, 0.0)]
        bounds[names.index("noise")] = (math.log(1e-7), math.log(10.0))
        best = objective(theta0)[0]
        for start in starts:
            try:
                res = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter})
                if np.all(np.isfinite(res.x)) and res.fun < best:
                    theta, best = res.x, float(res.fun)
            except (RuntimeError, ValueError, np.linalg.LinAlgError):  # keep the best so far (at worst the prior-mode start)
                logger.debug("GP hyperparameter fit failed from one start", exc_info=True)
    with torch.no_grad():
        h, c = unpack(torch.tensor(theta, dtype=DTYPE))
    return QualityGP(kernel, X, y, {k: float(v) for k, v in h.items()}, float(c))
