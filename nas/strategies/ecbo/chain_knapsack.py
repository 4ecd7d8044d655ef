"""Cost/damage frontiers of a chain-structured damage model, by dynamic programming over cost buckets.

``ecbo``'s quality GP has a linear part that decomposes along the chain of blocks
(:class:`~tocsr_nas.strategies.ecbo.gp.ChainTables`)::

    f(x) = sum_b U[b, x_b] + sum_{b < B-1} V[b, x_b, x_{b+1}]

With an additive known cost ``c(x) = sum_b C[b, x_b]`` the problem ``min c(x) s.t. f(x) <= t`` is a
knapsack along a chain. Its Lagrangian relaxation (``argmin c + lambda f``) only reaches the points
on the convex hull of the frontier, and with an additive model it ignores the pair terms; here the
whole frontier is computed exactly, up to a cost resolution ``w``. Round every cell cost to an integer
number of buckets ``r[b, k] = round((C[b, k] - min_k C[b, k]) / w)`` and let ``F_b[k, j]`` be the least
damage of a prefix ``x_0..x_b`` ending in ``x_b = k`` whose rounded cost is ``j``::

    F_0[k, j]     = U[0, k]                                         if j = r[0, k], else inf
    F_b[k', j]    = U[b, k'] + min_k ( F_{b-1}[k, j - r[b, k']] + V[b-1, k, k'] )          (1)

and ``D(j) = min_k F_{B-1}[k, j]`` is the least damage at rounded cost ``j``. The Pareto frontier is
the set of ``j`` whose ``D(j)`` is below every ``D(j')``, ``j' < j``; each point is read back by
following the stored ``argmin_k`` of (1). Rounding moves a configuration's cost by at most
``B w / 2`` (typically ``sqrt(B / 12) w``); callers re-cost the returned configurations exactly.

All ``S`` tables (the posterior mean and posterior samples) run in one vectorised pass:
``O(B Kmax^2 J S)`` work for ``J`` buckets.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chain_frontiers"]


def chain_frontiers(
    U: np.ndarray, V: np.ndarray, cell_cost: np.ndarray, *, buckets: int = 1024
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact (up to cost rounding) cost/damage Pareto frontiers of ``S`` chain models.

    Args:
        U: unary damages ``(S, B, Kmax)``; ``inf`` marks choices a block does not have.
        V: pair damages ``(S, B - 1, Kmax, Kmax)`` between neighbouring blocks.
        cell_cost: additive cost ``(B, Kmax)`` of each (block, choice); ``inf`` where invalid.
        buckets: number of cost buckets spanning the range of total costs.

    Returns:
        For each of the ``S`` models, ``(configs, damage)``: the frontier's configurations
        ``(M, B)`` (choice indices, cost increasing) and their model damages ``(M,)`` (decreasing).

    Example:
        >>> import numpy as np
        >>> U = np.array([[[0.0, 1.0], [0.0, 2.0]]])          # (S=1, B=2, K=2)
        >>> V = np.zeros((1, 1, 2, 2))
        >>> C = np.array([[4.0, 1.0], [4.0, 1.0]])
        >>> [(x.tolist(), d.tolist()) for x, d in chain_frontiers(U, V, C, buckets=8)]
        [([[1, 1], [1, 0], [0, 0]], [3.0, 1.0, 0.0])]
    """
    U = np.asarray(U, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    S, B, K = U.shape
    valid = np.isfinite(cell_cost) & np.isfinite(U[0])  # (B, K)
    base = np.where(valid, cell_cost, np.inf).min(axis=1, keepdims=True)  # (B, 1)
    extra = np.where(valid, cell_cost - base, 0.0)  # (B, K) >= 0
    width = max(float(extra.max(axis=1).sum()) / max(buckets - 1, 1), 1e-12)
    r = np.rint(extra / width).astype(np.int64)  # (B, K) cost in buckets
    J = int(r.max(axis=1).sum()) + 1
    F = np.full((S, K, J), np.inf)
    for k in range(K):
        if valid[0, k]:
            F[:, k, r[0, k]] = U[:, 0, k]
    args = []  # args[b - 1][s, k', j] = best previous choice k
    for b in range(1, B):
        G = np.full((S, K, J), np.inf)
        arg = np.zeros((S, K, J), dtype=np.int8)
        for k2 in range(K):
            if not valid[b, k2]:
                continue
            shift = r[b, k2]
            cand = F[:, :, : J - shift] + V[:, b - 1, :, k2][:, :, None]  # (S, K, J - shift), eq. (1)
            best = cand.argmin(axis=1)  # (S, J - shift)
            G[:, k2, shift:] = np.take_along_axis(cand, best[:, None, :], axis=1)[:, 0] + U[:, b, k2][:, None]
            arg[:, k2, shift:] = best
        args.append(arg)
        F = G
    last = F.argmin(axis=1)  # (S, J)
    D = np.take_along_axis(F, last[:, None, :], axis=1)[:, 0]  # (S, J)
    out = []
    for s in range(S):
        d = D[s]
        prev = np.minimum.accumulate(np.concatenate([[np.inf], d[:-1]]))
        js = np.nonzero(np.isfinite(d) & (d < prev))[0]  # Pareto points, cost increasing
        x = np.zeros((len(js), B), dtype=np.int64)
        k = last[s, js]
        j = js.copy()
        for b in range(B - 1, 0, -1):  # read the argmins of (1) back
            x[:, b] = k
            kp = args[b - 1][s, k, j].astype(np.int64)
            j = j - r[b, k]
            k = kp
        x[:, 0] = k
        out.append((x, d[js]))
    return out
