"""ecbo's distant-pair term (option ``far_pairs_blocks``): one-hot pairs of blocks that are not neighbours."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tocsr_nas.strategies.testing import chain

from tocsr_nas.strategies import StrategyError, make_strategy
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import fit_quality_gp

FAST = {"pool_random": 300, "pool_local": 150, "posterior_tables": 6}


class Distant:
    """A 5 x 3 landscape: additive damage, plus a large one when block 0 takes option 1 and block 4 option 2."""

    def __init__(self, seed: int) -> None:
        self.land = chain(5, 3, seed)
        self.space = self.land.space

    def quality(self, idx: np.ndarray) -> float:
        return self.land.quality(self.space.decode(list(idx))) + (2.0 * self.land.epsilon if idx[0] == 1 and idx[4] == 2 else 0.0)


def test_the_distant_pair_columns_one_hot_every_non_neighbour_pair_and_stay_out_of_the_chain_tables():
    space = chain(5, 3, 0).space
    plain, far = ConfigFeatures(space, None), ConfigFeatures(space, None, far_pairs=True)
    assert far.far == [(0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4)] and far.d6 == 6 * 9 and not plain.d6
    idx = np.random.default_rng(0).integers(0, 3, size=(7, 5))
    X = far(idx)
    cols = X[:, far.slice_far]
    assert torch.equal((cols > 0).sum(1), torch.full((7,), 6)) and torch.allclose((cols**2).sum(1), torch.ones(7, dtype=DTYPE))
    for row, x in zip(idx, cols):  # the column of pair (a, b) at choices (i, j)
        for p, (a, b) in enumerate(far.far):
            assert x[far.far_offsets[p] + row[a] * 3 + row[b]] == pytest.approx(1 / math.sqrt(6))
    assert torch.equal(X[:, : plain.dim], plain(idx))  # the other columns are the plain features
    assert far.column_terms()["far_pairs"] == slice(plain.dim, far.dim)
    # the chain tables hold no distant pair: weights on them change no table
    w = torch.randn(far.dim, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    U, V = far.decompose(w)
    U0, V0 = plain.decompose(w[: plain.dim])
    assert torch.equal(U, U0) and torch.equal(V, V0)


def test_the_distant_pair_term_matches_its_botorch_twin_and_a_model_without_it_is_unchanged_by_its_columns():
    d = Distant(0)
    plain, far = ConfigFeatures(d.space, None), ConfigFeatures(d.space, None, far_pairs=True)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 3, size=(30, 5))
    y = torch.tensor([d.quality(r) / d.land.epsilon for r in idx], dtype=DTYPE)
    gp = fit_quality_gp(far(idx), y, far, use_far_pairs=True, mean=0.0)
    assert "far_pairs" in gp.kernel.active and gp.hypers["far_pairs"] > 0
    test = rng.integers(0, 3, size=(6, 5))
    mean, var = gp.predict(far(test))
    post = gp.to_botorch().posterior(far(test))
    assert torch.allclose(post.mean.squeeze(-1), mean, atol=1e-6) and torch.allclose(post.variance.squeeze(-1), var, atol=1e-6)
    # without the term (fit_quality_gp's default) the extra columns change nothing: fit, predictions, chain tables, samples
    a, b = fit_quality_gp(far(idx), y, far, mean=0.0), fit_quality_gp(plain(idx), y, plain, mean=0.0)
    assert "far_pairs" not in a.kernel.active and a.hypers == b.hypers
    assert torch.equal(a.predict(far(test))[0], b.predict(plain(test))[0])
    ta, tb = (g.chain_tables(4, torch.Generator().manual_seed(3)) for g in (a, b))
    assert torch.equal(ta.U, tb.U) and torch.equal(ta.V, tb.V)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_where_two_distant_blocks_interact_the_term_predicts_unseen_configurations_better(seed):
    d = Distant(seed)
    far = ConfigFeatures(d.space, None, far_pairs=True)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 3, size=(60, 5))
    y = torch.tensor([d.quality(r) / d.land.epsilon for r in idx], dtype=DTYPE)
    every = np.array([d.space.encode(c) for c in d.space.enumerate()])
    truth = np.array([d.quality(r) / d.land.epsilon for r in every])
    errors = {}
    for term in (False, True):
        gp = fit_quality_gp(far(idx), y, far, use_far_pairs=term, mean=0.0)
        errors[term] = float(np.abs(gp.predict(far(every))[0].numpy() - truth).mean())
    assert errors[True] < 0.7 * errors[False]


def test_the_option_adds_the_term_to_every_model_in_small_spaces_only():
    small = chain(5, 3, 0)
    assert not make_strategy("ecbo", small.problem(), seed=0)._features.d6  # off by default
    on = make_strategy("ecbo", small.problem(), seed=0, far_pairs_blocks=8, **FAST)
    assert on._features.d6 == 6 * 9
    on.tell([small.observe(c) for c in [small.space.default_config(), *list(small.space.enumerate())[1:12]]])
    on.ask(1)
    assert "far_pairs" in on._last_gp.kernel.active
    assert not make_strategy("ecbo", chain(10, 3, 0).problem(), seed=0, far_pairs_blocks=8)._features.d6  # too many blocks
    with pytest.raises(StrategyError, match="far_pairs_blocks"):
        make_strategy("ecbo", small.problem(), far_pairs_blocks=-1)
