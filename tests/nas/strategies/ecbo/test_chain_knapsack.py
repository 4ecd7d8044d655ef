"""The chain knapsack frontier against brute force, and the GP's chain tables against its mean."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from tocsr_nas.strategies.testing import chain

from tocsr_nas.strategies.ecbo.chain_knapsack import chain_frontiers
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import fit_quality_gp


def brute_frontier(U, V, C):
    B, K = C.shape
    points = []
    for x in itertools.product(range(K), repeat=B):
        if not all(np.isfinite(U[b, k]) for b, k in enumerate(x)):
            continue
        c = C[np.arange(B), x].sum()
        d = U[np.arange(B), x].sum() + V[np.arange(B - 1), x[:-1], x[1:]].sum()
        points.append((c, d))
    points.sort()
    frontier, best = [], np.inf
    for c, d in points:
        if d < best - 1e-12:
            frontier.append((c, d))
            best = d
    return frontier


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frontier_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    B, K = 6, 3
    U = rng.random((2, B, K))
    U[:, 2, 2] = np.inf  # block 2 has two choices only
    V = rng.normal(0.0, 0.3, size=(2, B - 1, K, K))
    C = rng.integers(1, 20, size=(B, K)).astype(float)
    C[2, 2] = np.inf
    for s, (x, d) in enumerate(chain_frontiers(U, V, C, buckets=4096)):
        expected = brute_frontier(U[s], V[s], C)
        assert len(x) == len(expected)
        assert np.allclose(d, [e[1] for e in expected])
        assert np.allclose(C[np.arange(B)[None], x].sum(1), [e[0] for e in expected])
        assert (x[:, 2] < 2).all()


@pytest.mark.parametrize("prior", [False, True])
def test_chain_tables_reproduce_the_linear_posterior_mean(prior):
    land = chain(8, 4, 0)
    problem = land.problem(prior=prior)
    feats = ConfigFeatures(land.space, problem.prior)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 4, size=(30, 8))
    y = torch.tensor([land.quality(land.space.decode(list(r))) / land.epsilon for r in idx], dtype=DTYPE)
    gp = fit_quality_gp(feats(idx), y, feats, use_rbf=False)
    tables = gp.chain_tables(64, torch.Generator().manual_seed(0))
    test = rng.integers(0, 4, size=(9, 8))
    mean, var = gp.predict(feats(test))
    values = tables.value(test)  # (65, 9)
    assert np.allclose(values[0], mean.numpy(), atol=1e-9)
    # the samples scatter around the mean with the posterior's spread
    assert np.allclose(values[1:].mean(0), mean.numpy(), atol=4 * var.sqrt().max().item())
    ratio = values[1:].std(0) / var.sqrt().numpy()
    assert 0.6 < np.median(ratio) < 1.5
