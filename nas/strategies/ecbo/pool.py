"""The candidate pool of ``ecbo``: configurations biased towards where the optimum must be.

Rows are choice-index rows ``(N, B)``. :meth:`CandidatePool.build` joins four generators:

* *model frontiers* (:meth:`CandidatePool.frontiers`): with per-block cost deltas ``dc[b, k]``
  (single swaps from the teacher, exact when the cost is additive) and per-block damages
  ``m[b, k]`` (GP posterior mean, joint posterior samples, the prior), the Lagrangian relaxation
  of the knapsack ``min sum_b dc[b, x_b]  s.t.  sum_b m[b, x_b] <= budget`` is solved for a grid
  of multipliers ``lambda``: ``x_b = argmin_k dc[b, k] + lambda * m[b, k]``. Each ``lambda`` gives
  a configuration on the additive model's cost/damage frontier; posterior samples make it
  Thompson-like and diverse;
* local moves: every single swap (:meth:`CandidatePool.single_swaps`) and random double and
  triple swaps of the elites (the cheapest feasible configurations);
* uniform crossover of two elites;
* random samples biased towards cheaper candidates (:meth:`CandidatePool.cost_biased`), and
  uniform ones.

Apart from the pool, :meth:`CandidatePool.chain_candidates` gives the points near the threshold
on the exact *chain frontiers* (:mod:`~tocsr_nas.strategies.ecbo.chain_knapsack`) of the
posterior mean and of joint posterior samples: the GP's linear terms are a chain model
``sum_b U[b, x_b] + sum_b V[b, x_b, x_{b+1}]`` (:meth:`QualityGP.chain_tables`), and with an
additive cost its exact cost/damage frontier is a dynamic programme over cost buckets. This fills
the gaps between the Lagrangian breakpoints and sees the pair terms, so coordinated multi-block
trades (a cheaper block here for a less damaged one there) are proposed directly.
:meth:`CandidatePool.thompson_candidates` reads one sample's frontier for a Thompson step.
"""

from __future__ import annotations

import numpy as np
import torch

from tocsr_nas.strategies.ecbo.chain_knapsack import chain_frontiers
from tocsr_nas.strategies.ecbo.costs import KnownCost
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import QualityGP
from tocsr_nas.strategies.ecbo.options import ECBOOptions

__all__ = ["CandidatePool", "unseen_rows"]


def unseen_rows(idx: np.ndarray, seen: set) -> np.ndarray:
    """The rows of ``idx`` ``(N, B)`` whose tuples are not in ``seen``."""
    keep = [i for i, r in enumerate(idx.tolist()) if tuple(r) not in seen]
    return idx[keep]


class CandidatePool:
    """Generates candidate index rows from the model, the elites and the known cost.

    Args:
        cost: the known cost (its per-block deltas ``dc`` drive the frontiers and the bias).
        features: the GP's feature map (its prior table is one of the damage tables).
        options: ``pool_random``, ``pool_local``, ``posterior_tables`` and ``chain_window``.
    """

    def __init__(self, cost: KnownCost, features: ConfigFeatures, options: ECBOOptions) -> None:
        self.cost = cost
        self.features = features
        self.options = options
        self._card, self._nb, self._kmax = cost.card, cost.n_blocks, cost.kmax

    def build(self, model: QualityGP, elites: list[np.ndarray], np_rng: np.random.Generator, gen: torch.Generator) -> np.ndarray:
        """The pool around ``elites`` (``elites[0]`` the incumbent): unique rows ``(N, B)``."""
        parts = [self.frontiers(model, elites[0], np_rng, gen)]
        elite_arr = np.stack(elites)  # (E, B)
        parts.append(self.single_swaps(elite_arr))
        if self.options.pool_local:
            parts.append(self.random_swaps(elite_arr[np_rng.integers(len(elite_arr), size=self.options.pool_local)], np_rng, 2))
            parts.append(self.random_swaps(elite_arr[np_rng.integers(len(elite_arr), size=self.options.pool_local // 2)], np_rng, 3))
            if len(elite_arr) > 1:  # uniform crossover of two elites
                m = self.options.pool_local // 2
                a = elite_arr[np_rng.integers(len(elite_arr), size=m)]
                b = elite_arr[np_rng.integers(len(elite_arr), size=m)]
                parts.append(np.where(np_rng.random(a.shape) < 0.5, a, b))
        if self.options.pool_random:
            parts.append(self.cost_biased(np_rng, self.options.pool_random * 3 // 4))
            parts.append(self.uniform(np_rng, self.options.pool_random // 4))
        return np.unique(np.concatenate(parts).astype(np.int64), axis=0)

    # -- chain frontiers --------------------------------------------------------------------------
    def thompson_candidates(self, gp: QualityGP, threshold: float, best_cost: float, gen: torch.Generator) -> np.ndarray:
        """Thompson sampling on the chain model, cheapest first.

        Draw one posterior sample of the linear terms and return the points of its exact frontier
        that the sample deems feasible and that improve on ``c*`` = ``best_cost``, by increasing
        cost. Explores blocks whose prior looks worse than they are.
        """
        tables = gp.chain_tables(1, gen)
        x, d = chain_frontiers(tables.U[1:].numpy(), tables.V[1:].numpy(), self.cost.dc)[0]
        costs = self.cost(x)
        order = np.argsort(costs, kind="stable")
        keep = (d[order] + tables.const <= threshold) & (costs[order] < best_cost)
        return x[order[keep]]

    def chain_candidates(self, model: QualityGP, threshold: float, gen: torch.Generator) -> np.ndarray:
        """Configurations near ``f = threshold`` on the exact chain frontiers of the mean and of posterior samples.

        From every frontier (the mean's and each sample's, Thompson-like) take the cheapest point
        predicted feasible and ``chain_window`` frontier neighbours on either side. Empty unless
        the cost is additive.
        """
        if not self.cost.additive:
            return np.zeros((0, self._nb), dtype=np.int64)
        tables = model.chain_tables(self.options.posterior_tables, gen)
        rows = []
        w = self.options.chain_window
        for x, d in chain_frontiers(tables.U.numpy(), tables.V.numpy(), self.cost.dc):
            ok = np.nonzero(d + tables.const <= threshold)[0]
            i = int(ok[0]) if len(ok) else len(d) - 1
            rows.append(x[max(0, i - w) : i + w + 1])
        return np.unique(np.concatenate(rows), axis=0)

    # -- model frontiers --------------------------------------------------------------------------
    def damage_tables(self, model: QualityGP, center: np.ndarray, gen: torch.Generator) -> list[np.ndarray]:
        """Per-block damages ``m[b, k]`` of single swaps around ``center`` (and the teacher).

        Mean and joint posterior samples of ``f(center with b=k) - f(center)``, and the prior.
        """
        tables = []
        centres = [np.zeros(self._nb, dtype=np.int64)]
        if center.any():
            centres.append(center)
        for c in centres:
            swaps = np.repeat(c[None], self._nb * self._kmax, axis=0)  # (B*Kmax, B)
            bb, kk = np.divmod(np.arange(self._nb * self._kmax), self._kmax)
            valid = kk < self._card[bb]
            swaps[valid, bb[valid]] = kk[valid]
            X = self.features(np.concatenate([c[None], swaps]))  # (1 + B*Kmax, d)
            mean, cov = model.joint(X)  # (1 + B*Kmax,), (1 + B*Kmax, 1 + B*Kmax)
            tables.append(self._table((mean[1:] - mean[0]).numpy(), valid))
            t = self.options.posterior_tables
            if t:
                chol = torch.linalg.cholesky_ex(cov + 1e-8 * torch.eye(cov.shape[0], dtype=DTYPE))[0]
                z = torch.randn(cov.shape[0], t, generator=gen, dtype=DTYPE)
                samples = (mean[:, None] + chol @ z).numpy()  # (1 + B*Kmax, t)
                for j in range(t):
                    tables.append(self._table(samples[1:, j] - samples[0, j], valid))
        if self.features.has_prior:
            tables.append(self.features.prior_table.copy())
        return tables

    def _table(self, flat: np.ndarray, valid: np.ndarray) -> np.ndarray:
        table = np.where(valid, flat, 0.0).reshape(self._nb, self._kmax)
        return table

    def frontiers(self, model: QualityGP, center: np.ndarray, np_rng: np.random.Generator, gen: torch.Generator) -> np.ndarray:
        """Lagrangian solutions ``x_b = argmin_k dc[b, k] + lambda * m[b, k]`` for many (m, lambda)."""
        dc = self.cost.dc  # (B, Kmax), inf where invalid
        rows = []
        for m in self.damage_tables(model, center, gen):
            save = -(dc - dc[:, :1])  # cost saving vs choice 0
            dm = m - m[:, :1]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where((save > 0) & (dm > 1e-12) & self.cost.valid_k, save / dm, np.nan)
            lams = ratio[np.isfinite(ratio)]
            if lams.size == 0:
                lams = np.array([1.0])
            lams = np.unique(np.concatenate([np.quantile(lams, np.linspace(0, 1, 24)), [0.0, lams.max() * 10]]))
            lams = lams * np.exp(np_rng.normal(0.0, 0.05, size=lams.shape))  # jitter between breakpoints
            score = dc[None] + lams[:, None, None] * m[None]  # (L, B, Kmax)
            rows.append(np.argmin(score, axis=2))  # (L, B)
        return np.concatenate(rows)

    # -- moves and random rows --------------------------------------------------------------------
    def single_swaps(self, idx: np.ndarray) -> np.ndarray:
        """Every configuration one block away from each row of ``idx`` ``(E, B)`` -> ``(E * S, B)``."""
        bb, kk = np.divmod(np.arange(self._nb * self._kmax), self._kmax)
        valid = kk < self._card[bb]
        bb, kk = bb[valid], kk[valid]
        out = np.repeat(idx[:, None, :], len(bb), axis=1)  # (E, S, B)
        out[:, np.arange(len(bb)), bb] = kk[None, :]
        return out.reshape(-1, self._nb)

    def random_swaps(self, idx: np.ndarray, np_rng: np.random.Generator, k: int) -> np.ndarray:
        """Each row of ``idx`` with ``k`` random blocks set to random choices."""
        out = idx.copy()
        for _ in range(k):
            b = np_rng.integers(self._nb, size=len(out))
            out[np.arange(len(out)), b] = np.floor(np_rng.random(len(out)) * self._card[b]).astype(np.int64)
        return out

    def uniform(self, np_rng: np.random.Generator, m: int) -> np.ndarray:
        """``m`` uniformly random rows."""
        return np.floor(np_rng.random((m, self._nb)) * self._card[None, :]).astype(np.int64)

    def cost_biased(self, np_rng: np.random.Generator, m: int) -> np.ndarray:
        """Per block, candidate ``k`` with probability proportional to ``exp(-beta * dc_norm[b, k])``."""
        if m == 0:
            return np.zeros((0, self._nb), dtype=np.int64)
        valid_k = self.cost.valid_k
        dc = np.where(valid_k, self.cost.dc, np.nan)
        lo, hi = np.nanmin(dc, axis=1, keepdims=True), np.nanmax(dc, axis=1, keepdims=True)
        norm = np.where(valid_k, (dc - lo) / np.maximum(hi - lo, 1e-12), np.inf)  # (B, Kmax) in [0, 1]
        beta = np_rng.uniform(0.0, 6.0, size=(m, 1, 1))
        logits = -beta * norm[None]  # (m, B, Kmax)
        gumbel = -np.log(-np.log(np_rng.random(logits.shape).clip(1e-300)))
        return np.argmax(logits + gumbel, axis=2)
