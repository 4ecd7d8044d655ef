"""ecbo's parts on their own: the known cost, the candidate pool, the trust region and hill climbing."""

from __future__ import annotations

import numpy as np
from tocsr_nas.strategies.testing import chain, small

from tocsr_nas.strategies import Observation
from tocsr_nas.strategies.ecbo import ECBOOptions
from tocsr_nas.strategies.ecbo.costs import KnownCost
from tocsr_nas.strategies.ecbo.features import ConfigFeatures
from tocsr_nas.strategies.ecbo.local import hill_climb, project, trust_radius, trust_region
from tocsr_nas.strategies.ecbo.pool import CandidatePool, unseen_rows


def test_known_cost_is_exact_and_detects_additivity():
    land = chain(6, 3, 0)
    known = KnownCost(land.space, land.cost, seed=0)
    rows = np.random.default_rng(0).integers(0, 3, size=(20, 6))
    exact = [land.cost(land.space.decode(list(r))) for r in rows]
    assert known.additive and np.allclose(known(rows), exact)
    squared = KnownCost(land.space, lambda c: land.cost(c) ** 2, seed=0)
    assert not squared.additive
    assert np.allclose(squared(rows), np.square(exact))


def test_pool_rows_are_valid_and_unique():
    land = small()
    known = KnownCost(land.space, land.cost, seed=0)
    pool = CandidatePool(known, ConfigFeatures(land.space), ECBOOptions(pool_random=40, pool_local=20))
    rng = np.random.default_rng(0)
    swaps = pool.single_swaps(np.zeros((2, 8), dtype=np.int64))
    assert swaps.shape == (2 * 24, 8) and ((swaps != 0).sum(1) <= 1).all()
    for rows in (pool.cost_biased(rng, 50), pool.uniform(rng, 50), pool.random_swaps(swaps, rng, 2)):
        assert ((rows >= 0) & (rows < known.card[None])).all()
    # cheap candidates are favoured: the mean cost of cost-biased rows is below the uniform rows'
    assert known(pool.cost_biased(rng, 400)).mean() < known(pool.uniform(rng, 400)).mean()
    repeats = int((swaps == swaps[0]).all(1).sum())  # the teacher: each block swapped to choice 0
    assert repeats == 16 and unseen_rows(swaps, {tuple(swaps[0].tolist())}).shape == (len(swaps) - repeats, 8)


def test_trust_radius_halves_after_failures_and_doubles_on_success():
    told = [Observation({"b": "t"}, 0.0, 4.0)] + [Observation({"b": "x"}, 1.0, 1.0)] * 3
    assert trust_radius(told, 0.1, n_blocks=10, tr_init=4, tr_fail_tolerance=3) == 2
    told.append(Observation({"b": "s"}, 0.0, 2.0))
    assert trust_radius(told, 0.1, n_blocks=10, tr_init=4, tr_fail_tolerance=3) == 4


def test_trust_region_keeps_the_pool_near_the_centre():
    rng = np.random.default_rng(0)
    centre = np.zeros(8, dtype=np.int64)
    pool = rng.integers(0, 3, size=(100, 8))
    assert ((project(pool, centre, 2, rng) != 0).sum(1) <= 2).all()
    inside, outside = trust_region(pool, centre, 2, {tuple(centre.tolist())}, rng)
    assert len(inside) and ((inside != 0).sum(1) <= 2).all() and outside(pool).any()
    assert trust_region(pool, centre, 8, set(), rng) == (pool, None)


def test_hill_climb_reaches_the_best_neighbourhood_point():
    land = small()
    pool = CandidatePool(KnownCost(land.space, land.cost, seed=0), ConfigFeatures(land.space), ECBOOptions())
    target = np.array([2, 1, 0, 2, 1, 0, 2, 1])

    def score(rows):
        s = -(rows != target[None]).sum(1).astype(float)
        return s, s

    start = np.zeros((1, 8), dtype=np.int64)
    rows, scores, _ = hill_climb(score, start, *score(start), set(), pool.single_swaps, starts=1, steps=8)
    assert scores.max() == 0 and (rows[scores.argmax()] == target).all()
