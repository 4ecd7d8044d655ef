"""The local side of ``ecbo``: a trust region around the incumbent and hill climbing.

* :func:`trust_radius` replays a CASMOPOLITAN-style Hamming radius from the history;
  :func:`trust_region` keeps the pool inside that ball around the incumbent, pulling far members
  in (:func:`project`) rather than only dropping them.
* :func:`hill_climb`: best-improvement hill climbing over single swaps from the best-scored pool
  members; every neighbour scored on the way joins the pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from tocsr_nas.strategies.base import Observation
from tocsr_nas.strategies.ecbo.pool import unseen_rows

__all__ = ["hill_climb", "project", "trust_radius", "trust_region"]

#: ``score(rows) -> (acquisition, posterior mean)``, both ``(N,)``
Score = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: ``outside(rows) -> (N,)`` bool: which rows lie outside the trust region
Outside = Callable[[np.ndarray], np.ndarray]


def trust_radius(history: Sequence[Observation], eps: float, n_blocks: int, tr_init: int, tr_fail_tolerance: int) -> int:
    """Hamming radius around the incumbent, replayed from the history (CASMOPOLITAN-style).

    Starts at ``tr_init``; a new feasible incumbent (at ``eps``) doubles it (at most
    ``n_blocks``); ``tr_fail_tolerance`` evaluations in a row without one halve it (never below 1).

    Example:
        >>> from tocsr_nas.strategies import Observation
        >>> told = [Observation({"b": "t"}, 0.0, 4.0), Observation({"b": "s"}, 0.0, 2.0)]
        >>> trust_radius(told, 0.1, n_blocks=10, tr_init=4, tr_fail_tolerance=3)
        8
    """
    radius, fails, best = tr_init, 0, math.inf
    for obs in history:
        if obs.feasible(eps) and obs.cost < best:
            if best < math.inf:
                radius = min(n_blocks, radius * 2)
            best, fails = obs.cost, 0
        else:
            fails += 1
            if fails >= tr_fail_tolerance:
                radius, fails = max(1, radius // 2), 0
    return radius


def project(pool: np.ndarray, centre: np.ndarray, radius: int, np_rng: np.random.Generator, copies: int = 2) -> np.ndarray:
    """Pull far pool members into the trust region: keep a random ``radius`` of their changes.

    Returns ``copies`` projections of every row of ``pool`` ``(N, B)`` that differs from
    ``centre`` ``(B,)`` in more than ``radius`` blocks.
    """
    diff = pool != centre[None]  # (N, B)
    far = diff.sum(1) > radius
    rows = pool[far]
    if len(rows) == 0:
        return np.zeros((0, len(centre)), dtype=np.int64)
    out = []
    for _ in range(copies):
        keys = np.where(diff[far], np_rng.random(rows.shape), np.inf)  # random order of the changed blocks
        rank = keys.argsort(axis=1).argsort(axis=1)
        keep = rank < radius
        out.append(np.where(keep, rows, centre[None]))
    return np.concatenate(out)


def trust_region(
    pool: np.ndarray, centre: np.ndarray, radius: int, seen: set, np_rng: np.random.Generator
) -> tuple[np.ndarray, Outside | None]:
    """The unseen pool inside the Hamming ball of ``radius`` around ``centre``, and its outside test.

    Far members are projected into the ball first (:func:`project`). With ``radius`` covering
    every block, or with nothing unseen inside the ball, the pool is returned as it is (projections
    added) with no outside test (``None``).
    """
    if radius >= len(centre):
        return pool, None
    pool = np.concatenate([pool, project(pool, centre, radius, np_rng)])
    pool = unseen_rows(np.unique(pool, axis=0), seen)
    inside = (pool != centre[None]).sum(1) <= radius
    if not inside.any():
        return pool, None
    return pool[inside], lambda rows: (rows != centre[None]).sum(1) > radius


def hill_climb(
    score: Score,
    pool: np.ndarray,
    scores: np.ndarray,
    mus: np.ndarray,
    seen: set,
    neighbours: Callable[[np.ndarray], np.ndarray],
    *,
    starts: int,
    steps: int,
    outside: Outside | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-improvement hill climbing from the ``starts`` best-scored pool members.

    Args:
        score: scores and posterior means of rows.
        pool: candidate rows ``(N, B)`` with their ``scores`` and posterior means ``mus`` ``(N,)``.
        seen: row tuples that must not be proposed (scored ``-inf``).
        neighbours: rows ``(E, B)`` -> their neighbours ``(E * S, B)``, grouped by row.
        starts: number of climbs.
        steps: most steps of each climb.
        outside: rows outside the trust region (scored ``-inf``).

    Returns:
        The pool, scores and means with every new neighbour scored on the way appended.
    """
    k = min(starts, len(pool))
    if k == 0 or steps == 0:
        return pool, scores, mus
    n_blocks = pool.shape[1]
    order = np.argsort(-scores, kind="stable")[:k]
    current, cur_scores = pool[order].copy(), scores[order].copy()
    extra_rows, extra_scores, extra_mus = [], [], []
    known = {tuple(r) for r in pool.tolist()}
    for _ in range(steps):
        neigh = neighbours(current)  # (k * S, B), grouped by start
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
        neigh = neigh.reshape(len(current), per, n_blocks)
        current = np.where(improved[:, None], neigh[np.arange(len(current)), best], current)
        cur_scores = np.where(improved, s[np.arange(len(current)), best], cur_scores)
    if extra_rows:
        pool = np.concatenate([pool, np.array(extra_rows, dtype=np.int64)])
        scores = np.concatenate([scores, np.array(extra_scores)])
        mus = np.concatenate([mus, np.array(extra_mus)])
    return pool, scores, mus
