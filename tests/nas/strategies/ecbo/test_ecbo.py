"""ecbo specifics: the acquisition, the GP, finding optima, batches, and beating random search."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from tocsr_nas.strategies.testing import chain, small

from tocsr_nas.strategies import StrategyError, make_strategy
from tocsr_nas.strategies.ecbo.acquisition import log_feasible_improvement
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import fit_quality_gp

FAST = {"pool_random": 300, "pool_local": 150, "posterior_tables": 6}


def search(name, land, budget, seed, batch=1, prior=False, **options):
    strategy = make_strategy(name, land.problem(prior=prior), seed=seed, **options)
    while len(strategy.history) < budget:
        proposed = strategy.ask(min(batch, budget - len(strategy.history)))
        if not proposed:
            break
        strategy.tell([land.observe(c) for c in proposed])
    best = strategy.best_feasible(land.epsilon)
    return strategy, (best.cost if best else math.inf)


def test_acquisition_is_improvement_times_probability_of_feasibility():
    mean, sigma = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 2.0, 1.0])
    cost = torch.tensor([1.0, 0.5, 5.0])
    value = log_feasible_improvement(mean, sigma, cost, best_cost=3.0, threshold=0.5).exp()
    phi = torch.distributions.Normal(0.0, 1.0).cdf
    expected = torch.tensor([(3.0 - 1.0) * phi(torch.tensor(0.5)), (3.0 - 0.5) * phi(torch.tensor(-0.25)), 0.0])
    assert torch.allclose(value, expected)
    # nothing feasible yet: probability of feasibility decides, cost only breaks ties
    pof_only = log_feasible_improvement(mean, sigma, cost, best_cost=None, threshold=0.5)
    assert pof_only.argmax() == 0 and pof_only[0] > pof_only[2]


def test_gp_interpolates_and_matches_its_botorch_twin():
    land = small()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 3, size=(30, 8))
    feats = ConfigFeatures(land.space)
    y = torch.tensor([land.quality(land.space.decode(list(r))) / land.epsilon for r in idx], dtype=DTYPE)
    gp = fit_quality_gp(feats(idx), y, feats)
    mean, var = gp.predict(feats(idx))
    assert torch.allclose(mean, y, atol=0.1)  # near-noise-free data is interpolated
    test = feats(rng.integers(0, 3, size=(5, 8)))
    post = gp.to_botorch().posterior(test)
    m2, v2 = gp.predict(test)
    assert torch.allclose(post.mean.squeeze(-1), m2, atol=1e-6)
    assert torch.allclose(post.variance.squeeze(-1), v2, atol=1e-6)


def test_ecbo_scores_with_the_tested_acquisition(monkeypatch):
    """The score ecbo ranks candidates by is :func:`log_feasible_improvement` of the GP's moments."""
    import tocsr_nas.strategies.ecbo.strategy as strategy_module

    calls = []

    def spy(*args):
        calls.append(args)
        return log_feasible_improvement(*args)

    monkeypatch.setattr(strategy_module, "log_feasible_improvement", spy)
    land = small()
    strategy, _ = search("ecbo", land, 4, 0, pof_power=1.5, **FAST)
    assert calls and all(args[-1] == 1.5 for args in calls)
    rows = np.array([land.space.encode(c) for c in land.space.enumerate()][:50])
    scores, mus = strategy._score(strategy._last_gp, rows, best_cost=20.0, threshold=0.5)
    mean, var = strategy._last_gp.predict(strategy._features(rows))
    cost = torch.tensor([land.cost(land.space.decode(list(r))) for r in rows], dtype=DTYPE)
    expected = log_feasible_improvement(mean, var.sqrt(), cost, 20.0, 0.5, 1.5)
    assert np.allclose(scores, expected.numpy()) and np.allclose(mus, mean.numpy())


def test_finds_the_optimum_of_the_small_landscape():
    land = small()
    found = min(search("ecbo", land, 30, seed, **FAST)[1] for seed in (0, 1))
    assert found == pytest.approx(land.optimum())


def test_batches_are_distinct_and_follow_the_believer():
    land = small()
    strategy = make_strategy("ecbo", land.problem(), seed=0, **FAST)
    strategy.tell([land.observe(c) for c in strategy.ask(1)])
    batch = strategy.ask(4)
    assert len(batch) == len(set(batch)) == 4
    strategy.tell([land.observe(c) for c in batch])
    assert len(set(strategy.ask(4)) | set(batch)) == 8


def test_hard_bound_below_the_teacher():
    land = small()
    bound = 0.5 * land.cost(land.space.default_config())
    strategy = make_strategy("ecbo", land.problem(max_cost=bound), seed=0, **FAST)
    for _ in range(8):
        [cfg] = strategy.ask(1)
        assert land.cost(cfg) <= bound
        strategy.tell([land.observe(cfg)])


def test_prior_is_used():
    land = small()
    with_prior = make_strategy("ecbo", land.problem(prior=True), seed=0, **FAST)
    assert with_prior._features.has_prior
    without = make_strategy("ecbo", land.problem(prior=True), seed=0, use_prior=False, **FAST)
    assert not without._features.has_prior


def test_beats_random_search_at_budget_40():
    """20 blocks x 4 options: the median best feasible cost over 3 landscapes/seeds."""
    ecbo, rand = [], []
    for seed in range(3):
        land = chain(20, 4, seed)
        ecbo.append(search("ecbo", land, 40, seed, **FAST)[1])
        rand.append(search("random", land, 40, seed)[1])
    assert statistics.median(ecbo) < statistics.median(rand)
    assert all(e <= r for e, r in zip(ecbo, rand))


def test_gp_mean_is_anchored_at_the_teacher():
    """The constant mean is the teacher's warped quality, not fitted (a fitted one biases every change)."""
    land = chain(10, 4, 0)
    anchored, _ = search("ecbo", land, 8, 0, **FAST)
    assert anchored._last_gp.mean_const == 0.0  # q(teacher) = 0
    fitted, _ = search("ecbo", land, 8, 0, anchor_mean=False, **FAST)
    assert fitted._last_gp.mean_const != 0.0


@pytest.mark.parametrize("options", [{"chain_dp": False}, {"thompson_every": 2}, {"warp": "hinge"}])
def test_variants_find_the_optimum_of_the_small_landscape(options):
    land = small()
    found = min(search("ecbo", land, 30, seed, **FAST, **options)[1] for seed in (0, 1))
    assert found == pytest.approx(land.optimum())


def test_per_cell_prior_weights_are_tied_to_the_prior_scale():
    """``prior_rel_sd``: the per-cell corrections' variance is rel^2 times the prior scale's (in column units)."""
    land = chain(10, 4, 0)
    tied, _ = search("ecbo", land, 8, 0, prior=True, **FAST)  # the default: prior_rel_sd=1.0
    h, norm = tied._last_gp.hypers, tied._features.scaled_norm
    assert h["scaled"] == pytest.approx(h["prior"] * (1.0 / norm) ** 2)
    free, _ = search("ecbo", land, 8, 0, prior=True, prior_rel_sd=None, **FAST)
    h = free._last_gp.hypers
    assert h["scaled"] != pytest.approx(h["prior"] * (1.0 / norm) ** 2)
    with pytest.raises(StrategyError, match="prior_rel_sd"):
        make_strategy("ecbo", land.problem(), prior_rel_sd=0.0)
