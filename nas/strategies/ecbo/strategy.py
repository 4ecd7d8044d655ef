"""``ecbo``: epsilon-constrained Bayesian optimisation with a known objective (the default strategy).

Minimise the known cost ``c(x)`` subject to ``q(x) <= epsilon``. Only quality is uncertain, so
only quality is modelled (:mod:`tocsr_nas.strategies.ecbo.gp`: a GP whose kernel adds
per-block, neighbour-pair, prior and residual terms); proposals maximise
``log((c* - c(x))^+ * P(q(x) <= epsilon))`` (:mod:`tocsr_nas.strategies.ecbo.acquisition`) over the
discrete space. One proposal:

1. Fit the GP to the warped qualities of every told configuration (failed evaluations are
   imputed as clearly infeasible).
2. Build a candidate pool, biased towards where the optimum must be (cheap and feasible):

   * *chain frontiers* (:mod:`tocsr_nas.strategies.ecbo.chain_knapsack`): the GP's linear terms are a
     chain model ``sum_b U[b, x_b] + sum_b V[b, x_b, x_{b+1}]`` (:meth:`QualityGP.chain_tables`);
     with an additive cost the exact cost/damage frontier of the posterior mean and of joint
     posterior samples (Thompson-like) is a dynamic programme over cost buckets. The points of
     each frontier around the predicted threshold join the pool (and skip the trust region).
     This fills the gaps between the Lagrangian breakpoints below and sees the pair terms, so
     coordinated multi-block trades (a cheaper block here for a less damaged one there) are
     proposed directly;
   * *model frontiers*: with per-block cost deltas ``dc[b, k]`` (single swaps from the teacher,
     exact when the cost is additive) and per-block damages ``m[b, k]`` (GP posterior mean, joint
     posterior samples, the prior), the Lagrangian relaxation of the knapsack
     ``min sum_b dc[b, x_b]  s.t.  sum_b m[b, x_b] <= budget`` is solved for a grid of
     multipliers ``lambda``: ``x_b = argmin_k dc[b, k] + lambda * m[b, k]``. Each ``lambda`` gives a
     configuration on the additive model's cost/damage frontier; posterior samples make it
     Thompson-like and diverse;
   * local moves: every single swap and random double swaps of the incumbent (the cheapest
     feasible configuration) and of the next cheapest feasible ones; crossover and mutation of
     them;
   * random samples biased towards cheaper candidates, and uniform ones.

3. Score the pool, hill-climb (single swaps) from the best ``n_local_starts`` candidates, and take
   the best admissible unseen configuration.
4. For ``q > 1`` (``ask(n)``), condition the GP on the chosen point at its posterior mean
   ("kriging believer"), update the believed incumbent, and repeat; the targets of an epsilon
   sweep are cycled across proposals.

Every proposal is a pure function of (seed, told history, pending set): a fresh instance that is
told the same history proposes the same configurations.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.ecbo.acquisition import log_feasible_improvement
from tocsr_nas.strategies.base import Problem, Strategy, StrategyError, register_strategy
from tocsr_nas.strategies.ecbo.chain_knapsack import chain_frontiers
from tocsr_nas.strategies.ecbo.gp import DTYPE, ConfigFeatures, QualityWarp, fit_quality_gp

__all__ = ["ECBO"]

logger = logging.getLogger(__name__)

_WARPS = ("log1p", "linear", "hinge")


@register_strategy("ecbo")
class ECBO(Strategy):
    """Epsilon-constrained BO: GP on quality, known cost, feasibility-weighted improvement.

    Options:
        warp: output warp of quality before the GP, ``"log1p"`` or ``"linear"``.
        use_pairs: include the neighbour-pair kernel term.
        use_rbf: include the residual RBF (Hamming) kernel term.
        use_prior: use ``problem.prior`` (as a kernel feature and in the candidate pool).
        pool_random: random (cost-biased and uniform) configurations in the pool.
        pool_local: random double swaps of the incumbents in the pool.
        posterior_tables: joint posterior samples of the per-block damages for the frontiers.
        n_local_starts: hill-climbing starts from the best pool members.
        local_steps: maximum hill-climbing steps.
        fail_quality: the quality imputed for failed evaluations, in units of the largest
            epsilon (at least the worst finite quality observed is used).
        pof_power: ``gamma`` in ``(c* - c)^+ * P(feasible)^gamma`` (1 = the exact expectation).
        min_pof: when > 0, only candidates feasible with at least this probability compete.
        trust_region: restrict the pool (but not the chain frontiers) to a Hamming ball around
            the incumbent whose radius is replayed from the history (see :meth:`_trust_radius`).
        tr_init: initial trust radius; tr_fail_tolerance: failures in a row that halve it.
        chain_dp: add the chain-frontier candidates (cost must be additive over blocks).
        chain_window: frontier points taken on each side of the cheapest predicted-feasible one.
        use_shared: the kernel term for candidate names shared by several blocks.
        anchor_mean: fix the GP's constant mean at the teacher's warped quality (once told)
            instead of fitting it, so that every weight is a damage relative to the teacher.
        use_prior_pairs: the compounding term ``z2`` (geometric mean prior damage of neighbours).
        prior_rel_sd: the prior's assumed relative error per cell: the prior-scaled per-cell
            weights get ``prior_rel_sd`` times the fitted prior scale as their standard deviation
            (``None``: a separately fitted variance), see :func:`fit_quality_gp`.
        threads: torch intra-op threads while proposing (restored afterwards; ``None`` leaves
            torch's setting alone). The matrices are small (hundreds of rows), where one thread
            is fastest and avoids oversubscribing a shared CPU.

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

    @dataclass(frozen=True)
    class Options:
        warp: str = "linear"
        use_pairs: bool = True
        use_rbf: bool = True
        use_prior: bool = True
        pool_random: int = 1000
        pool_local: int = 400
        posterior_tables: int = 16
        n_local_starts: int = 12
        local_steps: int = 8
        fail_quality: float = 3.0
        threads: int | None = 1
        pof_power: float = 2.0
        min_pof: float = 0.0
        trust_region: bool = True
        tr_init: int = 4
        tr_fail_tolerance: int = 3
        chain_dp: bool = True
        use_shared: bool = False
        use_prior_pairs: bool = True
        thompson_every: int = 0
        anchor_mean: bool = True
        calib_band: float = 0.25
        chain_window: int = 6
        prior_rel_sd: float | None = 1.0

        def __post_init__(self) -> None:
            if self.warp not in _WARPS:
                raise StrategyError(f"ecbo: warp must be one of {list(_WARPS)}, got {self.warp!r}")
            for name in ("use_pairs", "use_rbf", "use_prior"):
                if not isinstance(getattr(self, name), bool):
                    raise StrategyError(f"ecbo: {name} must be true or false, got {getattr(self, name)!r}")
            for name in ("pool_random", "pool_local", "posterior_tables", "n_local_starts", "local_steps", "thompson_every", "chain_window"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise StrategyError(f"ecbo: {name} must be a nonnegative integer, got {value!r}")
            if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
                raise StrategyError(f"ecbo: threads must be a positive integer or None, got {self.threads!r}")
            if self.prior_rel_sd is not None and (isinstance(self.prior_rel_sd, bool) or not isinstance(self.prior_rel_sd, (int, float)) or not self.prior_rel_sd > 0):
                raise StrategyError(f"ecbo: prior_rel_sd must be a positive number or None, got {self.prior_rel_sd!r}")
            if not (isinstance(self.fail_quality, (int, float)) and self.fail_quality > 1):
                raise StrategyError(f"ecbo: fail_quality must be a number > 1, got {self.fail_quality!r}")

    def __init__(self, problem: Problem, *, seed: int = 0, **options) -> None:
        super().__init__(problem, seed=seed, **options)
        space = self.space
        self._card = np.array(space.cardinalities, dtype=np.int64)  # (B,)
        self._nb = len(self._card)
        self._kmax = int(self._card.max())
        self._valid_k = np.arange(self._kmax)[None, :] < self._card[:, None]  # (B, Kmax)
        self._cost_cache: dict[tuple[int, ...], float] = {}
        # per-block cost deltas of single swaps from the teacher: dc[b, k] = c(t with b=k) - c(t)
        base = np.zeros(self._nb, dtype=np.int64)
        self._c0 = self._cost_of(base)
        self._dc = np.full((self._nb, self._kmax), np.inf)  # (B, Kmax)
        for b in range(self._nb):
            for k in range(self._card[b]):
                x = base.copy()
                x[b] = k
                self._dc[b, k] = self._cost_of(x) - self._c0
        self._additive = self._check_additive(random.Random(f"ecbo-additive|{seed}"))
        prior = problem.prior if self.options.use_prior else None
        self._features = ConfigFeatures(space, prior, shared=self.options.use_shared)
        self._warp = QualityWarp(self.options.warp, max(problem.epsilons))
        self.last_timing: dict[str, float] = {}

    # -- costs ----------------------------------------------------------------------------------
    def _cost_of(self, idx: np.ndarray) -> float:
        key = tuple(int(i) for i in idx)
        cost = self._cost_cache.get(key)
        if cost is None:
            cost = float(self.problem.cost(self.space.decode(key)))
            self._cost_cache[key] = cost
        return cost

    def _check_additive(self, rng: random.Random, probes: int = 8) -> bool:
        for _ in range(probes):
            x = np.array([rng.randrange(k) for k in self._card])
            predicted = self._c0 + self._dc[np.arange(self._nb), x].sum()
            if not math.isclose(predicted, self._cost_of(x), rel_tol=1e-9, abs_tol=1e-12 * max(1.0, abs(self._c0))):
                return False
        return True

    def _costs(self, idx: np.ndarray) -> np.ndarray:
        """Known costs of index rows ``(N, B)`` -> ``(N,)``."""
        if self._additive:
            return self._c0 + self._dc[np.arange(self._nb)[None, :], idx].sum(axis=1)
        return np.array([self._cost_of(row) for row in idx])

    # -- the proposal -----------------------------------------------------------------------------
    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        if not self.history:
            return self._random_unseen(rng, n)
        threads = torch.get_num_threads()
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        try:
            return self._propose_batch(n, rng)
        finally:
            torch.set_num_threads(threads)

    def _propose_batch(self, n: int, rng: random.Random) -> list[Configuration]:
        t_start = time.perf_counter()
        np_rng = np.random.default_rng(rng.getrandbits(63))
        gen = torch.Generator().manual_seed(rng.getrandbits(62))
        obs_idx = np.array([self.space.encode(o.config) for o in self.history], dtype=np.int64)  # (n, B)
        quality = np.array([o.quality for o in self.history], dtype=np.float64)
        y = self._warp(np.where(np.isfinite(quality), quality, 0.0))
        finite = np.isfinite(quality)
        fail_y = max(float(self._warp(self.options.fail_quality * self._warp.e_ref)), float(y[finite].max()) if finite.any() else 0.0)
        y = np.where(finite, y, fail_y)
        X = self._features(obs_idx)
        model = fit_quality_gp(
            X,
            torch.as_tensor(y, dtype=DTYPE),
            self._features,
            use_pairs=self.options.use_pairs,
            use_rbf=self.options.use_rbf,
            use_prior_pairs=self.options.use_prior_pairs,
            mean=self._reference_y() if self.options.anchor_mean else None,
            prior_rel_sd=self.options.prior_rel_sd,
        )
        self._last_gp, self._last_h = model, model.hypers  # for diagnostics
        t_fit = time.perf_counter()
        seen = {tuple(r) for r in obs_idx.tolist()} | {tuple(self.space.encode(c)) for c in self._pending}
        costs = self._costs(obs_idx)
        # believed incumbents per epsilon: (cost, idx) of the cheapest configuration feasible at e
        believed: list[tuple[np.ndarray, float, float]] = [
            (obs_idx[i], float(costs[i]), float(quality[i])) for i in range(len(quality)) if finite[i]
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
                q_believed = float(self._unwarp(mu))
                believed.append((idx, float(self._costs(idx[None])[0]), q_believed))
                model = model.condition(self._features(idx[None]), torch.tensor([mu], dtype=DTYPE))
        self.last_timing = {"fit_s": t_fit - t_start, "total_s": time.perf_counter() - t_start, "n_obs": len(self.history)}
        return out

    def _threshold_margin(self, gp, threshold: float) -> float:
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

    def _reference_y(self) -> float | None:
        """The warped quality of the default (teacher) configuration, when it was told and finite."""
        obs = self._told.get(self.space.default_config())
        if obs is None or not math.isfinite(obs.quality):
            return None
        return float(self._warp(obs.quality))

    def _unwarp(self, y: float) -> float:
        return self._warp.inverse(y)

    def _propose_one(self, gp, eps, believed, seen, np_rng, gen, thompson=False):
        threshold = float(self._warp(eps)) - self._threshold_margin(gp, float(self._warp(eps)))
        feasible = sorted((c, i) for i, (_, c, q) in enumerate(believed) if q <= eps)
        best_cost = feasible[0][0] if feasible else None
        if thompson and best_cost is not None and self._additive:
            choice = self._thompson(gp, threshold, best_cost, seen, gen)
            if choice is not None:
                return choice
        if feasible:
            elites = [believed[i][0] for _, i in feasible[:5]]
        else:  # nothing feasible: start from the least infeasible configurations
            order = sorted(range(len(believed)), key=lambda i: believed[i][2])
            elites = [believed[i][0] for i in order[:5]] or [np.zeros(self._nb, dtype=np.int64)]

        def score(idx: np.ndarray, best: float | None = best_cost) -> tuple[np.ndarray, np.ndarray]:
            return self._score(gp, idx, best, threshold)

        pool = self._pool(gp, elites, np_rng, gen)
        pool = self._unseen_rows(pool, seen)
        dp = self._unseen_rows(self._chain_candidates(gp, threshold, gen), seen) if self.options.chain_dp else None
        radius = self._trust_radius(eps) if (self.options.trust_region and feasible) else self._nb
        if radius < self._nb:
            centre = elites[0]
            pool = np.concatenate([pool, self._project(pool, centre, radius, np_rng)])
            pool = self._unseen_rows(np.unique(pool, axis=0), seen)
            inside = (pool != centre[None]).sum(1) <= radius
            if inside.any():
                pool = pool[inside]
                outside = lambda rows: (rows != centre[None]).sum(1) > radius  # noqa: E731
            else:
                outside = None
        else:
            outside = None
        if dp is not None and len(dp):
            pool = np.unique(np.concatenate([pool, dp]), axis=0)
        if len(pool) == 0:
            pool = self._unseen_rows(self._uniform(np_rng, 2000), seen)
            if len(pool) == 0:
                return None
        scores, mus = score(pool)
        pool, scores, mus = self._local_search(score, pool, scores, mus, seen, outside)
        if self.options.min_pof > 0 and best_cost is not None:
            # probabilistic constraint: among candidates feasible with probability >= min_pof, the best
            _, var = gp.predict(self._features(pool))
            pof = torch.special.ndtr((threshold - torch.as_tensor(mus)) / var.sqrt()).numpy()
            eligible = (pof >= self.options.min_pof) & np.isfinite(scores)
            if eligible.any():
                scores = np.where(eligible, scores, -np.inf)
        if not np.isfinite(scores).any():  # nothing improves on c*: most likely feasible, then cheap
            scores, mus = score(pool, None)
        for i in np.argsort(-scores, kind="stable"):
            row = pool[i]
            if tuple(row.tolist()) in seen:
                continue
            cfg = self.space.decode(row.tolist())
            if self.problem.is_admissible(cfg) and not self.is_seen(cfg):
                return row, cfg, float(mus[i])
        # the pool held no admissible configuration: fall back to random admissible ones
        exclude = [self.space.decode(list(r)) for r in seen]
        rand = self._random_unseen(random.Random(int(np_rng.integers(2**62))), 1, exclude=exclude)
        if not rand:
            return None
        cfg = rand[0]
        row = np.array(self.space.encode(cfg), dtype=np.int64)
        return row, cfg, float(gp.predict(self._features(row[None]))[0].item())

    # -- trust region -----------------------------------------------------------------------------
    def _trust_radius(self, eps: float) -> int:
        """Hamming radius around the incumbent, replayed from the history (CASMOPOLITAN-style).

        Starts at ``tr_init``; a new feasible incumbent doubles it; ``tr_fail_tolerance``
        evaluations in a row without one halve it (never below 1).
        """
        radius, fails, best = self.options.tr_init, 0, math.inf
        for obs in self.history:
            if obs.feasible(eps) and obs.cost < best:
                if best < math.inf:
                    radius = min(self._nb, radius * 2)
                best, fails = obs.cost, 0
            else:
                fails += 1
                if fails >= self.options.tr_fail_tolerance:
                    radius, fails = max(1, radius // 2), 0
        return radius

    def _project(self, pool: np.ndarray, centre: np.ndarray, radius: int, np_rng: np.random.Generator, copies: int = 2) -> np.ndarray:
        """Pull far pool members into the trust region: keep a random ``radius`` of their changes."""
        diff = pool != centre[None]  # (N, B)
        far = diff.sum(1) > radius
        rows = pool[far]
        if len(rows) == 0:
            return np.zeros((0, self._nb), dtype=np.int64)
        out = []
        for _ in range(copies):
            keys = np.where(diff[far], np_rng.random(rows.shape), np.inf)  # random order of the changed blocks
            rank = keys.argsort(axis=1).argsort(axis=1)
            keep = rank < radius
            out.append(np.where(keep, rows, centre[None]))
        return np.concatenate(out)

    # -- scoring ------------------------------------------------------------------------------
    def _score(self, gp, idx: np.ndarray, best_cost: float | None, threshold: float, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Acquisition (eq. 3 of :mod:`~tocsr_nas.strategies.ecbo.acquisition`) and posterior mean of index rows."""
        scores, mus = [], []
        for s in range(0, len(idx), chunk):
            rows = idx[s : s + chunk]
            mean, var = gp.predict(self._features(rows))  # (N,), (N,)
            cost = torch.as_tensor(self._costs(rows), dtype=DTYPE)
            scores.append(log_feasible_improvement(mean, var.sqrt(), cost, best_cost, threshold, self.options.pof_power).numpy())
            mus.append(mean.numpy())
        return np.concatenate(scores), np.concatenate(mus)

    def _local_search(self, score, pool, scores, mus, seen, outside=None):
        """Best-improvement hill climbing over single swaps from the best pool members."""
        k = min(self.options.n_local_starts, len(pool))
        if k == 0 or self.options.local_steps == 0:
            return pool, scores, mus
        order = np.argsort(-scores, kind="stable")[:k]
        current, cur_scores = pool[order].copy(), scores[order].copy()
        extra_rows, extra_scores, extra_mus = [], [], []
        known = {tuple(r) for r in pool.tolist()}
        for _ in range(self.options.local_steps):
            neigh = self._single_swaps(current)  # (k * S, B), grouped by start
            per = len(neigh) // len(current)
            rows = [tuple(r) for r in neigh.tolist()]
            keep = np.array([r not in seen for r in rows])
            if outside is not None:
                keep &= ~outside(neigh)
            s, m = score(neigh)
            s = np.where(keep, s, -np.inf)
            for r, ok, sc, mu in zip(rows, keep, s, m):
                if ok and r not in known:
                    known.add(r)
                    extra_rows.append(r)
                    extra_scores.append(sc)
                    extra_mus.append(mu)
            s = s.reshape(len(current), per)
            best = s.argmax(axis=1)
            improved = s[np.arange(len(current)), best] > cur_scores
            if not improved.any():
                break
            neigh = neigh.reshape(len(current), per, self._nb)
            current = np.where(improved[:, None], neigh[np.arange(len(current)), best], current)
            cur_scores = np.where(improved, s[np.arange(len(current)), best], cur_scores)
        if extra_rows:
            pool = np.concatenate([pool, np.array(extra_rows, dtype=np.int64)])
            scores = np.concatenate([scores, np.array(extra_scores)])
            mus = np.concatenate([mus, np.array(extra_mus)])
        return pool, scores, mus

    # -- the candidate pool -----------------------------------------------------------------------
    def _pool(self, model, elites: list[np.ndarray], np_rng: np.random.Generator, gen: torch.Generator) -> np.ndarray:
        parts = [self._frontiers(model, elites[0], np_rng, gen)]
        elite_arr = np.stack(elites)  # (E, B)
        parts.append(self._single_swaps(elite_arr))
        if self.options.pool_local:
            parts.append(self._random_swaps(elite_arr[np_rng.integers(len(elite_arr), size=self.options.pool_local)], np_rng, 2))
            parts.append(self._random_swaps(elite_arr[np_rng.integers(len(elite_arr), size=self.options.pool_local // 2)], np_rng, 3))
            if len(elite_arr) > 1:  # uniform crossover of two elites
                m = self.options.pool_local // 2
                a = elite_arr[np_rng.integers(len(elite_arr), size=m)]
                b = elite_arr[np_rng.integers(len(elite_arr), size=m)]
                parts.append(np.where(np_rng.random(a.shape) < 0.5, a, b))
        if self.options.pool_random:
            parts.append(self._cost_biased(np_rng, self.options.pool_random * 3 // 4))
            parts.append(self._uniform(np_rng, self.options.pool_random // 4))
        return np.unique(np.concatenate(parts).astype(np.int64), axis=0)

    def _thompson(self, gp, threshold: float, best_cost: float, seen: set, gen: torch.Generator):
        """Thompson sampling on the chain model: draw one posterior sample of the linear terms, take
        the cheapest configuration of its exact frontier that the sample deems feasible (and that
        improves on ``c*``). Explores blocks whose prior looks worse than they are."""
        tables = gp.chain_tables(1, gen)
        x, d = chain_frontiers(tables.U[1:].numpy(), tables.V[1:].numpy(), self._dc)[0]
        costs = self._costs(x)
        for i in np.argsort(costs, kind="stable"):
            if d[i] + tables.const > threshold or costs[i] >= best_cost or tuple(x[i].tolist()) in seen:
                continue
            cfg = self.space.decode(x[i].tolist())
            if self.problem.is_admissible(cfg) and not self.is_seen(cfg):
                return x[i], cfg, float(gp.predict(self._features(x[i][None]))[0].item())
        return None

    def _chain_candidates(self, model, threshold: float, gen: torch.Generator) -> np.ndarray:
        """Configurations near ``f = threshold`` on the exact chain frontiers of the mean and of posterior samples.

        See :mod:`~tocsr_nas.strategies.ecbo.chain_knapsack`: the GP's linear part is a chain model, and
        with an additive cost its cost/damage frontier is found by dynamic programming. From every
        frontier (the mean's and each sample's, Thompson-like) take the cheapest point predicted
        feasible and ``chain_window`` frontier neighbours on either side.
        """
        if not self._additive:
            return np.zeros((0, self._nb), dtype=np.int64)
        tables = model.chain_tables(self.options.posterior_tables, gen)
        rows = []
        w = self.options.chain_window
        for x, d in chain_frontiers(tables.U.numpy(), tables.V.numpy(), self._dc):
            ok = np.nonzero(d + tables.const <= threshold)[0]
            i = int(ok[0]) if len(ok) else len(d) - 1
            rows.append(x[max(0, i - w) : i + w + 1])
        return np.unique(np.concatenate(rows), axis=0)

    def _damage_tables(self, model, center: np.ndarray, gen: torch.Generator) -> list[np.ndarray]:
        """Per-block damages ``m[b, k]`` of single swaps around ``center`` (and the teacher).

        Mean and joint posterior samples of ``f(center with b=k) - f(center)``.
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
            X = self._features(np.concatenate([c[None], swaps]))  # (1 + B*Kmax, d)
            mean, cov = model.joint(X)  # (1 + B*Kmax,), (1 + B*Kmax, 1 + B*Kmax)
            tables.append(self._table((mean[1:] - mean[0]).numpy(), valid))
            t = self.options.posterior_tables
            if t:
                chol = torch.linalg.cholesky_ex(cov + 1e-8 * torch.eye(cov.shape[0], dtype=DTYPE))[0]
                z = torch.randn(cov.shape[0], t, generator=gen, dtype=DTYPE)
                samples = (mean[:, None] + chol @ z).numpy()  # (1 + B*Kmax, t)
                for j in range(t):
                    tables.append(self._table(samples[1:, j] - samples[0, j], valid))
        if self._features.has_prior:
            tables.append(self._features.prior_table.copy())
        return tables

    def _table(self, flat: np.ndarray, valid: np.ndarray) -> np.ndarray:
        table = np.where(valid, flat, 0.0).reshape(self._nb, self._kmax)
        return table

    def _frontiers(self, model, center: np.ndarray, np_rng: np.random.Generator, gen: torch.Generator) -> np.ndarray:
        """Lagrangian solutions ``x_b = argmin_k dc[b, k] + lambda * m[b, k]`` for many (m, lambda)."""
        dc = self._dc  # (B, Kmax), inf where invalid
        rows = []
        for m in self._damage_tables(model, center, gen):
            save = -(dc - dc[:, :1])  # cost saving vs choice 0
            dm = m - m[:, :1]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where((save > 0) & (dm > 1e-12) & self._valid_k, save / dm, np.nan)
            lams = ratio[np.isfinite(ratio)]
            if lams.size == 0:
                lams = np.array([1.0])
            lams = np.unique(np.concatenate([np.quantile(lams, np.linspace(0, 1, 24)), [0.0, lams.max() * 10]]))
            lams = lams * np.exp(np_rng.normal(0.0, 0.05, size=lams.shape))  # jitter between breakpoints
            score = dc[None] + lams[:, None, None] * m[None]  # (L, B, Kmax)
            rows.append(np.argmin(score, axis=2))  # (L, B)
        return np.concatenate(rows)

    def _single_swaps(self, idx: np.ndarray) -> np.ndarray:
        """Every configuration one block away from each row of ``idx`` ``(E, B)`` -> ``(E * S, B)``."""
        bb, kk = np.divmod(np.arange(self._nb * self._kmax), self._kmax)
        valid = kk < self._card[bb]
        bb, kk = bb[valid], kk[valid]
        out = np.repeat(idx[:, None, :], len(bb), axis=1)  # (E, S, B)
        out[:, np.arange(len(bb)), bb] = kk[None, :]
        return out.reshape(-1, self._nb)

    def _random_swaps(self, idx: np.ndarray, np_rng: np.random.Generator, k: int) -> np.ndarray:
        out = idx.copy()
        for _ in range(k):
            b = np_rng.integers(self._nb, size=len(out))
            out[np.arange(len(out)), b] = np.floor(np_rng.random(len(out)) * self._card[b]).astype(np.int64)
        return out

    def _uniform(self, np_rng: np.random.Generator, m: int) -> np.ndarray:
        return np.floor(np_rng.random((m, self._nb)) * self._card[None, :]).astype(np.int64)

    def _cost_biased(self, np_rng: np.random.Generator, m: int) -> np.ndarray:
        """Per block, candidate ``k`` with probability proportional to ``exp(-beta * dc_norm[b, k])``."""
        if m == 0:
            return np.zeros((0, self._nb), dtype=np.int64)
        dc = np.where(self._valid_k, self._dc, np.nan)
        lo, hi = np.nanmin(dc, axis=1, keepdims=True), np.nanmax(dc, axis=1, keepdims=True)
        norm = np.where(self._valid_k, (dc - lo) / np.maximum(hi - lo, 1e-12), np.inf)  # (B, Kmax) in [0, 1]
        beta = np_rng.uniform(0.0, 6.0, size=(m, 1, 1))
        logits = -beta * norm[None]  # (m, B, Kmax)
        gumbel = -np.log(-np.log(np_rng.random(logits.shape).clip(1e-300)))
        return np.argmax(logits + gumbel, axis=2)

    @staticmethod
    def _unseen_rows(idx: np.ndarray, seen: set) -> np.ndarray:
        keep = [i for i, r in enumerate(idx.tolist()) if tuple(r) not in seen]
        return idx[keep]
