"""``ecbo``: epsilon-constrained Bayesian optimisation with a known objective (the default strategy).

Minimise the known cost ``c(x)`` subject to ``q(x) <= epsilon``. Only quality is uncertain, so
only quality is modelled (:mod:`~tocsr_nas.strategies.ecbo.gp`: a GP whose kernel adds
per-block, neighbour-pair, prior and residual terms); proposals maximise
``log((c* - c(x))^+ * P(q(x) <= epsilon))`` (:mod:`~tocsr_nas.strategies.ecbo.acquisition`) over the
discrete space. One proposal:

1. Fit the GP to the warped qualities (:mod:`~tocsr_nas.strategies.ecbo.warp`) of every told
   configuration (failed evaluations are imputed as clearly infeasible until the far split below
   takes them); with ``warp="auto"`` / ``use_prior="auto"`` (the defaults) fit each candidate
   warp, with and without the prior, and
   keep the one that best predicts the observations' feasibility when each is left out
   (:mod:`~tocsr_nas.strategies.ecbo.select`). Without a prior and with ``cost_prior``, the
   cost-derived one is a candidate too, kept only when it earns its place by the margin; without
   a prior the per-block-scale model (``block_scale``) is a candidate too, and (``rbf_free``, on by
   default) the linear-warp models leave the residual RBF term out. Once several observations are
   far failures (``far_model``, on by default; :mod:`~tocsr_nas.strategies.ecbo.far`), they leave
   the quality model, and a label GP's ``P(not far)`` multiplies the feasibility (failed
   evaluations count as far failures: ``failures_far``).
2. Build a candidate pool biased towards where the optimum must be, cheap and feasible
   (:mod:`~tocsr_nas.strategies.ecbo.pool`: Lagrangian model frontiers, local moves, crossover
   and biased random rows), restricted to a trust region around the incumbent
   (:mod:`~tocsr_nas.strategies.ecbo.local`), plus the points around the predicted threshold on
   the exact chain frontiers of the posterior mean and samples
   (:mod:`~tocsr_nas.strategies.ecbo.chain_knapsack`), which skip the trust region.
3. Score the pool, hill-climb (single swaps) from the best ``n_local_starts`` candidates
   (:mod:`~tocsr_nas.strategies.ecbo.local`), and take the best admissible unseen configuration.
4. For ``q > 1`` (``ask(n)``), condition the GP on the chosen point at its posterior mean
   ("kriging believer"), update the believed incumbent, and repeat; in an epsilon sweep each
   proposal targets :meth:`~tocsr_nas.strategies.base.Strategy.target_epsilon` (the epsilon that
   stands to gain most, with a floor for every one).

The options are :class:`~tocsr_nas.strategies.ecbo.options.ECBOOptions`. Every proposal is a
pure function of (seed, told history, pending set): a fresh instance that is told the same history
proposes the same configurations.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import Problem, Strategy, register_strategy
from tocsr_nas.strategies.ecbo.acquisition import log_feasible_improvement, probability_of_feasibility
from tocsr_nas.strategies.ecbo.costs import KnownCost
from tocsr_nas.strategies.ecbo.far import MIN_FAR, FarModel, far_mask
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import QualityGP, fit_quality_gp
from tocsr_nas.strategies.ecbo.local import hill_climb, trust_radius, trust_region
from tocsr_nas.strategies.ecbo.options import AUTO_WARPS, ECBOOptions
from tocsr_nas.strategies.ecbo.pool import CandidatePool, unseen_rows
from tocsr_nas.strategies.ecbo.select import FAR, MARGIN, MIN_OBSERVATIONS, Candidate, select_model
from tocsr_nas.strategies.ecbo.warp import QualityWarp

__all__ = ["ECBO"]

logger = logging.getLogger(__name__)

@register_strategy("ecbo")
class ECBO(Strategy):
    """Epsilon-constrained BO: GP on quality, known cost, feasibility-weighted improvement.

    Composes the parts of :mod:`tocsr_nas.strategies.ecbo`: the known cost
    (:class:`~tocsr_nas.strategies.ecbo.costs.KnownCost`), the quality model
    (:func:`~tocsr_nas.strategies.ecbo.gp.fit_quality_gp`), the candidate pool
    (:class:`~tocsr_nas.strategies.ecbo.pool.CandidatePool`), the trust region and hill climbing
    (:mod:`~tocsr_nas.strategies.ecbo.local`) and the acquisition
    (:func:`~tocsr_nas.strategies.ecbo.acquisition.log_feasible_improvement`).

    Args:
        problem: what to search.
        seed: the seed of every random choice.
        **options: the fields of :class:`~tocsr_nas.strategies.ecbo.options.ECBOOptions`.

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> from tocsr_nas.strategies import Observation, Problem, make_strategy
        >>> space = SearchSpace.from_choices({f"b{i}": ["t", "half", "skip"] for i in range(4)})
        >>> price = {"t": 4.0, "half": 2.0, "skip": 0.0}
        >>> damage = {"t": 0.0, "half": 0.01, "skip": 0.05}
        >>> cost = lambda c: sum(price[v] for v in c.values())
        >>> problem = Problem(space, cost=cost, epsilons=(0.03,))
        >>> s = make_strategy("ecbo", problem, seed=0)
        >>> for _ in range(6):
        ...     [cfg] = s.ask()
        ...     s.tell([Observation(cfg, sum(damage[v] for v in cfg.values()), cost(cfg))])
        >>> len(s.history), s.best_feasible(0.03).cost < cost(space.default_config())
        (6, True)
    """

    Options = ECBOOptions

    def __init__(self, problem: Problem, *, seed: int = 0, **options) -> None:
        super().__init__(problem, seed=seed, **options)
        self._cost = KnownCost(self.space, problem.cost, seed)
        self._nb = self._cost.n_blocks
        prior = problem.prior if self.options.use_prior is not False else None
        #: whether the prior is derived from the cost (``cost_prior``: the problem has none)
        self.cost_prior = prior is None and self.options.use_prior is not False and self.options.cost_prior
        if self.cost_prior:
            prior = self._cost.saving_prior()
        # the per-block-scale term's shape: without a prior each option's fraction of its block's cost removed
        # (block_scale); with one, the prior itself, each block's prior getting its own scale (prior_block_scale)
        block_shape = None
        if prior is None and self.options.block_scale:
            block_shape = self._cost.saving_prior()
        elif prior is not None and not self.cost_prior and self.options.prior_block_scale:
            block_shape = "prior"
        # the distant pairs (every two blocks that are not neighbours): in every model, in small spaces only
        far_pairs = 2 < self._nb <= self.options.far_pairs_blocks
        self._features = ConfigFeatures(self.space, prior, shared=self.options.use_shared, block_shape=block_shape, far_pairs=far_pairs)
        warps = AUTO_WARPS if self.options.warp == "auto" else (self.options.warp,)
        self._warps = {kind: QualityWarp(kind, max(problem.epsilons)) for kind in warps}
        priors = (True, False) if self._features.has_prior and self.options.use_prior == "auto" else (self._features.has_prior,)
        if self.cost_prior and len(priors) == 2:  # a guess from the cost, not knowledge: the model without it is the reference
            priors = (False, True)
        self._candidates = [Candidate(w, p) for p in priors for w in warps]  # the reference (today's fixed model) first
        if block_shape is not None:
            # with the linear warp only: on range100 the hinge model with the term beat the hinge model
            # without it by leave-one-out and searched worse (18.4% against 0% regret at 40 evaluations)
            self._candidates += [Candidate("linear", prior is not None, block_scale=True)] if "linear" in warps else []
        if self.options.saturating_warp and self.options.warp == "auto":
            # its ceiling is fitted to the data (QualityWarp.fit_ceiling), so its warp is built per fit (_propose_batch)
            self._candidates += [Candidate("saturating", p) for p in priors]
        if self.options.rbf_free and self.options.use_rbf and self._features.d5 and prior is None:
            # without a prior, the linear-warp (and saturating, linear near the threshold) models leave the residual
            # RBF term out (the hinge keeps it): on the additive chain30 it took up damage the per-block weights should carry
            self._candidates = [replace(c, rbf=False) if c.warp in ("linear", "saturating") else c for c in self._candidates]
        self._warp = self._warps[warps[0]]  # the chosen model's warp (set per fit)
        self._pool = CandidatePool(self._cost, self._features, self.options)
        self.last_timing: dict[str, float] = {}
        #: the model of the last fit: ``{"model": label, "scores": {label: score}}`` (diagnostics)
        self.last_selection: dict[str, object] = {}
        #: the far-failure model of the last fit (option ``far_model``; ``None``: not used)
        self._far: FarModel | None = None
        self._far_features = ConfigFeatures(self.space, None, shared=True)

    # -- the proposal -----------------------------------------------------------------------------
    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        if not self.history:
            return self._random_unseen(rng, n)
        from threadpoolctl import threadpool_limits  # botorch's dependency

        threads = torch.get_num_threads()
        if self.options.threads is None:
            return self._propose_batch(n, rng)
        torch.set_num_threads(self.options.threads)
        try:
            # scipy's L-BFGS-B calls BLAS on tiny vectors: with several BLAS threads on a busy CPU
            # each call spun for milliseconds (half of a proposal's time at 200 observations)
            with threadpool_limits(limits=self.options.threads):
                return self._propose_batch(n, rng)
        finally:
            torch.set_num_threads(threads)

    def _propose_batch(self, n: int, rng: random.Random) -> list[Configuration]:
        t_start = time.perf_counter()
        np_rng = np.random.default_rng(rng.getrandbits(63))
        gen = torch.Generator().manual_seed(rng.getrandbits(62))
        obs_idx = np.array([self.space.encode(o.config) for o in self.history], dtype=np.int64)  # (n, B)
        quality = np.array([o.quality for o in self.history], dtype=np.float64)
        X_all = self._features(obs_idx)
        # far failures: a label model of their region, and the quality model for the others (far.py)
        e_ref = max(self.problem.epsilons)
        beyond = far_mask(quality, FAR * e_ref)
        far = beyond.copy() if self.options.far_model else np.zeros(len(quality), bool)
        if self.options.far_model and self.options.failures_far:  # failed evaluations (nan / inf): the same broken region
            far |= ~np.isfinite(quality)
        self._far = None
        if far.sum() >= MIN_FAR and (~far).sum() >= MIN_OBSERVATIONS:  # until then the one model (the hinge reference) serves
            self._far = FarModel.fit(obs_idx, far, self._far_features, use_pairs=self.options.use_pairs, use_rbf=self.options.use_rbf)
        else:
            far[:] = False
        # the quality model describes the others
        fit_quality, X = quality[~far], X_all[torch.as_tensor(~far)]
        finite = np.isfinite(fit_quality)

        # the saturating warp's ceiling, fitted (None: not offered); failures far beyond epsilon: no ceiling near it
        # (the hinge's and the far model's case); below MIN_OBSERVATIONS only the reference is fitted, so none is needed
        ceiling = None
        compared = len(fit_quality) >= MIN_OBSERVATIONS or self.options.early_saturating
        if compared and not beyond.any() and any(c.warp == "saturating" for c in self._candidates):
            ceiling = QualityWarp.fit_ceiling(fit_quality, obs_idx[~far], e_ref, margin=MARGIN)
        candidates = [c for c in self._candidates if c.warp != "saturating" or ceiling is not None]
        if self.options.early_saturating and ceiling is not None and len(fit_quality) < MIN_OBSERVATIONS:
            # no comparison yet: the data's evidence for a ceiling (MARGIN nats) picks the saturating model
            first = candidates[0]
            early = next((c for c in candidates if c.warp == "saturating" and c.use_prior == first.use_prior), None)
            if early is not None:
                candidates = [early, *[c for c in candidates if c != early]]

        def fit(candidate: Candidate) -> tuple[QualityGP, QualityWarp]:
            warp = QualityWarp("saturating", e_ref, ceiling) if candidate.warp == "saturating" else self._warps[candidate.warp]
            y = warp(np.where(finite, fit_quality, 0.0))
            fail_y = max(float(warp(self.options.fail_quality * warp.e_ref)), float(y[finite].max()) if finite.any() else 0.0)
            y = np.where(finite, y, fail_y)
            gp = fit_quality_gp(
                X,
                torch.as_tensor(y, dtype=DTYPE),
                self._features,
                use_pairs=self.options.use_pairs,
                use_rbf=self.options.use_rbf and candidate.rbf,
                use_prior_pairs=self.options.use_prior_pairs,
                use_prior=candidate.use_prior,
                use_block_scale=candidate.block_scale,
                use_far_pairs=True,  # where the features have them (far_pairs_blocks)
                mean=self._reference_y(warp) if self.options.anchor_mean else None,
                # a guess from the cost has no per-cell error proportional to it: fit its variance freely
                prior_rel_sd=None if self.cost_prior else self.options.prior_rel_sd,
            )
            return gp, warp

        chosen, model, self._warp, scores = select_model(candidates, fit, fit_quality, self.problem.epsilons)
        self.last_selection = {"model": chosen.label, "scores": scores}
        self._last_gp, self._last_h = model, model.hypers  # for diagnostics
        t_fit = time.perf_counter()
        seen = {tuple(r) for r in obs_idx.tolist()} | {tuple(self.space.encode(c)) for c in self._pending}
        costs = self._cost(obs_idx)
        # believed incumbents per epsilon: (cost, idx) of the cheapest configuration feasible at e
        believed: list[tuple[np.ndarray, float, float]] = [
            (obs_idx[i], float(costs[i]), float(quality[i])) for i in range(len(quality)) if np.isfinite(quality[i])
        ]
        out: list[Configuration] = []
        for j in range(n):
            eps = self.target_epsilon(j)
            every = self.options.thompson_every
            thompson = every > 0 and (len(self.history) + j) % every == every - 1
            choice = self._propose_one(model, eps, believed, seen, np_rng, gen, thompson)
            if choice is None:
                break
            idx, cfg, mu = choice
            out.append(cfg)
            seen.add(tuple(idx.tolist()))
            if j + 1 < n:  # kriging believer: pretend we observed the posterior mean
                q_believed = float(self._warp.inverse(mu))
                believed.append((idx, float(self._cost(idx[None])[0]), q_believed))
                model = model.condition(self._features(idx[None]), torch.tensor([mu], dtype=DTYPE))
        self.last_timing = {"fit_s": t_fit - t_start, "total_s": time.perf_counter() - t_start, "n_obs": len(self.history)}
        return out

    def _threshold_margin(self, gp: QualityGP, threshold: float) -> float:
        """How optimistic the model is near the threshold: the mean leave-one-out residual
        ``y_i - mean_{-i}(x_i)`` of the observations within ``calib_band`` of it, if positive.

        Proposals aim at ``t - margin`` so that a model that keeps predicting feasible
        configurations which turn out infeasible asks for a safer damage budget.
        """
        band = self.options.calib_band
        if band <= 0:
            return 0.0
        y = gp.y.numpy()
        near = np.abs(y - threshold) <= band
        if near.sum() < 5:
            return 0.0
        return max(0.0, float(gp.loo_residuals().numpy()[near].mean()))

    def _reference_y(self, warp: QualityWarp) -> float | None:
        """The warped quality of the default (teacher) configuration, when it was told and finite."""
        obs = self._told.get(self.space.default_config())
        if obs is None or not math.isfinite(obs.quality):
            return None
        return float(warp(obs.quality))

    def _propose_one(self, gp, eps, believed, seen, np_rng, gen, thompson=False):
        threshold = float(self._warp(eps)) - self._threshold_margin(gp, float(self._warp(eps)))
        feasible = sorted((c, i) for i, (_, c, q) in enumerate(believed) if q <= eps)
        best_cost = feasible[0][0] if feasible else None
        if thompson and best_cost is not None and self._cost.additive:
            rows = self._pool.thompson_candidates(gp, threshold, best_cost, gen)
            i = self._first_admissible(rows, seen)
            if i is not None:
                return rows[i], self.space.decode(rows[i].tolist()), self._mean_at(gp, rows[i])
        if feasible:
            elites = [believed[i][0] for _, i in feasible[:5]]
        else:  # nothing feasible: start from the least infeasible configurations
            order = sorted(range(len(believed)), key=lambda i: believed[i][2])
            elites = [believed[i][0] for i in order[:5]] or [np.zeros(self._nb, dtype=np.int64)]

        def score(idx: np.ndarray, best: float | None = best_cost) -> tuple[np.ndarray, np.ndarray]:
            return self._score(gp, idx, best, threshold)

        pool = unseen_rows(self._pool.build(gp, elites, np_rng, gen), seen)
        dp = unseen_rows(self._pool.chain_candidates(gp, threshold, gen), seen) if self.options.chain_dp else None
        outside = None
        if self.options.trust_region and feasible:
            o = self.options
            radius = trust_radius(self.history, eps, self._nb, o.tr_init, o.tr_fail_tolerance)
            pool, outside = trust_region(pool, elites[0], radius, seen, np_rng)
        if dp is not None and len(dp):
            pool = np.unique(np.concatenate([pool, dp]), axis=0)
        if len(pool) == 0:
            pool = unseen_rows(self._pool.uniform(np_rng, 2000), seen)
            if len(pool) == 0:
                return None
        scores, mus = score(pool)
        pool, scores, mus = hill_climb(
            score, pool, scores, mus, seen, self._pool.single_swaps,
            starts=self.options.n_local_starts, steps=self.options.local_steps, outside=outside,
        )
        if self.options.min_pof > 0 and best_cost is not None:
            # probabilistic constraint: among candidates feasible with probability >= min_pof, the best
            _, var = gp.predict(self._features(pool))
            pof = probability_of_feasibility(torch.as_tensor(mus), var.sqrt(), threshold).numpy()
            eligible = (pof >= self.options.min_pof) & np.isfinite(scores)
            if eligible.any():
                scores = np.where(eligible, scores, -np.inf)
        if not np.isfinite(scores).any():  # nothing improves on c*: most likely feasible, then cheap
            scores, mus = score(pool, None)
        order = np.argsort(-scores, kind="stable")
        i = self._first_admissible(pool[order], seen)
        if i is not None:
            row = pool[order[i]]
            return row, self.space.decode(row.tolist()), float(mus[order[i]])
        # the pool held no admissible configuration: fall back to random admissible ones
        exclude = [self.space.decode(list(r)) for r in seen]
        rand = self._random_unseen(random.Random(int(np_rng.integers(2**62))), 1, exclude=exclude)
        if not rand:
            return None
        cfg = rand[0]
        row = np.array(self.space.encode(cfg), dtype=np.int64)
        return row, cfg, self._mean_at(gp, row)

    def _first_admissible(self, rows: np.ndarray, seen: set) -> int | None:
        """The position of the first row ``(B,)`` of ``rows`` that is unseen and admissible."""
        for i, row in enumerate(rows):
            if tuple(row.tolist()) in seen:
                continue
            cfg = self.space.decode(row.tolist())
            if self.problem.is_admissible(cfg) and not self.is_seen(cfg):
                return i
        return None

    def _mean_at(self, gp: QualityGP, row: np.ndarray) -> float:
        """The posterior mean of the warped quality at one row ``(B,)``."""
        return float(gp.predict(self._features(row[None]))[0].item())

    def _score(self, gp: QualityGP, idx: np.ndarray, best_cost: float | None, threshold: float, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Acquisition (eq. 3 of :mod:`~tocsr_nas.strategies.ecbo.acquisition`) and posterior mean of index rows."""
        scores, mus = [], []
        for s in range(0, len(idx), chunk):
            rows = idx[s : s + chunk]
            mean, var = gp.predict(self._features(rows))  # (N,), (N,)
            cost = torch.as_tensor(self._cost(rows), dtype=DTYPE)
            score = log_feasible_improvement(mean, var.sqrt(), cost, best_cost, threshold, self.options.pof_power)
            if self._far is not None:  # P(feasible) = P(not far)^far_weight P(feasible | not far)
                score = score + self.options.far_weight * self.options.pof_power * self._far.log_p_ok(rows)
            scores.append(score.numpy())
            mus.append(mean.numpy())
        return np.concatenate(scores), np.concatenate(mus)
