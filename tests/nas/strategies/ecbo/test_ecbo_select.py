"""ecbo's per-fit model choice (warp="auto", use_prior="auto"): the data decide the warp and the prior's weight."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tocsr_nas.strategies.testing import Landscape, chain

import torch

from tocsr_nas.strategies import Problem, StrategyError, make_strategy
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures
from tocsr_nas.strategies.ecbo.gp import fit_quality_gp
from tocsr_nas.strategies.ecbo.select import (
    FAR,
    MARGIN,
    MIN_OBSERVATIONS,
    Candidate,
    feasibility_score,
    reference_first,
    select_model,
)

FAST = {"pool_random": 300, "pool_local": 150, "posterior_tables": 6}


class Collapsing(Landscape):
    """A chain landscape whose configurations with four or more cheap blocks fail at 80 epsilon (a NAS table's range)."""

    def quality(self, cfg):
        return 80.0 * self.epsilon if (self.idx(cfg) >= 2).sum() >= 4 else super().quality(cfg)


def _prior(land, table):
    return {b.path: {n: float(table[i, k]) for k, n in enumerate(b.names)} for i, b in enumerate(land.space.blocks)}


def _rank_reversed(damage):
    """The cells' damages handed out in reversed rank order (teacher 0): anti-correlated with the truth."""
    cells = damage[:, 1:].ravel()
    out = np.zeros_like(damage)
    out[:, 1:] = np.sort(cells)[::-1][np.argsort(np.argsort(cells))].reshape(damage.shape[0], -1)
    return out


def _fitted(land, seed, prior=None, n=30, **options):
    """ecbo told the teacher and ``n - 1`` random configurations, after one proposal."""
    problem = Problem(land.space, cost=land.cost, epsilons=(land.epsilon,), prior=prior)
    strategy = make_strategy("ecbo", problem, seed=seed, **FAST, **options)
    rng = random.Random(seed)
    configs = dict.fromkeys([land.space.default_config()] + [land.space.sample(rng) for _ in range(n - 1)])
    strategy.tell([land.observe(c) for c in configs])
    strategy.ask(1)
    return strategy


@pytest.mark.parametrize("seed", [0, 2])
def test_failures_far_beyond_epsilon_choose_the_hinge_warp(seed):
    base = chain(10, 4, seed)
    # one model of every observation, far failures included (far_model takes them out of the quality model)
    strategy = _fitted(Collapsing(base.cost_table, base.damage, base.pairs, base.epsilon), seed, far_model=False)
    sel = strategy.last_selection
    assert sel["model"] == "hinge"
    assert sel["scores"]["hinge"] > sel["scores"]["linear-rbf"] + MARGIN
    assert strategy._warp.kind == "hinge"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_additive_landscape_keeps_the_linear_warp(seed):
    strategy = _fitted(chain(10, 4, seed), seed)
    assert strategy.last_selection["model"] in ("linear-rbf", "linear+blocks-rbf") and strategy._warp.kind == "linear"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_honest_prior_is_used_and_a_misleading_one_gets_weight_near_zero(seed):
    land = chain(10, 4, seed)
    honest = _fitted(land, seed, prior=_prior(land, land.damage))
    assert honest.last_selection["model"] == "linear+prior"
    misled = _fitted(land, seed, prior=_prior(land, _rank_reversed(land.damage)))
    # either the model without the prior wins, or the prior's fitted weight collapses
    weight = misled._last_h.get("prior", 0.0) if misled.last_selection["model"].endswith("+prior") else 0.0
    assert weight < 0.2 * honest._last_h["prior"]


def test_pinned_options_fit_one_model_and_old_values_still_work():
    land = chain(10, 4, 0)
    prior = _prior(land, land.damage)
    pinned = _fitted(land, 0, prior=prior, warp="hinge", use_prior=True)
    assert pinned.last_selection == {"model": "hinge+prior", "scores": {}}
    assert _fitted(land, 0, prior=prior, warp="linear", use_prior=False).last_selection["model"] == "linear-rbf"  # prior withheld: rbf_free
    with pytest.raises(StrategyError, match="use_prior"):
        make_strategy("ecbo", land.problem(), use_prior="maybe")


def test_few_observations_use_the_reference_model_without_comparing():
    land = chain(10, 4, 0)
    strategy = _fitted(land, 0, n=MIN_OBSERVATIONS - 1)
    assert strategy.last_selection == {"model": "linear-rbf", "scores": {}}


def test_feasibility_score_rewards_the_model_that_predicts_the_labels():
    land = chain(10, 4, 0)
    strategy = _fitted(land, 0)
    gp, warp = strategy._last_gp, strategy._warp
    quality = np.array([o.quality for o in strategy.history])
    right = feasibility_score(gp, warp, quality, [land.epsilon])
    # the same model scored against every observation relabelled infeasible: the feasible ones are surprises
    wrong = feasibility_score(gp, warp, quality * 0 + 1e9, [land.epsilon])
    assert right > wrong
    assert right <= 0.0


def test_select_model_keeps_the_reference_unless_beaten_by_the_margin():
    land = chain(10, 4, 0)
    strategy = _fitted(land, 0)
    gp, warp = strategy._last_gp, strategy._warp
    quality = np.array([o.quality for o in strategy.history])
    same = lambda cand: (gp, warp)  # noqa: E731 - equal scores: the reference stays
    chosen, *_ , scores = select_model([Candidate("linear", False), Candidate("hinge", False)], same, quality, [land.epsilon])
    assert chosen == Candidate("linear", False) and scores["linear"] == scores["hinge"]


# -- the cost-derived prior (cost_prior: a problem without a prior) ----------------------------------


def test_the_cost_prior_is_each_cells_fraction_of_its_block_cost_removed():
    land = chain(6, 4, 0)
    assert not make_strategy("ecbo", land.problem(), seed=0).cost_prior  # off by default
    strategy = make_strategy("ecbo", land.problem(), seed=0, cost_prior=True, **FAST)
    assert strategy.cost_prior and strategy._features.has_prior
    saving = land.cost_table[:, :1] - land.cost_table  # (B, K), exact: the cost is additive
    expected = saving / saving.max(axis=1, keepdims=True)
    # ConfigFeatures scales a prior so that its worst configuration sums to 1
    np.testing.assert_allclose(strategy._features.prior_table, expected / expected.max(axis=1).sum(), rtol=1e-9)
    # the models without it come first: the reference is the model without a prior
    assert [c.label for c in strategy._candidates] == ["linear", "hinge", "linear+prior", "hinge+prior", "saturating", "saturating+prior"]


def test_a_given_prior_or_the_option_off_leaves_no_cost_prior():
    land = chain(6, 4, 0)
    given = Problem(land.space, cost=land.cost, epsilons=(land.epsilon,), prior=_prior(land, land.damage))
    assert not make_strategy("ecbo", given, seed=0, cost_prior=True).cost_prior
    for options in ({"cost_prior": False}, {"cost_prior": True, "use_prior": False}):
        off = make_strategy("ecbo", land.problem(), seed=0, block_scale=False, saturating_warp=False, **options)
        assert not off.cost_prior and not off._features.has_prior
        assert [c.label for c in off._candidates] == ["linear", "hinge"]
    with pytest.raises(StrategyError, match="cost_prior"):
        make_strategy("ecbo", land.problem(), cost_prior="yes")


def _cost_blind_landscape() -> Landscape:
    """chain(10, 4, 0) with each block's damages shuffled across its options: the cheaper option is
    no longer the worse one, so nothing derived from the cost describes the damage."""
    base = chain(10, 4, 0)
    rng = np.random.default_rng(0)
    damage = base.damage.copy()
    for b in range(len(damage)):
        damage[b, 1:] = rng.permutation(damage[b, 1:])[::-1] if b % 2 else damage[b, 1:][::-1]
    return Landscape(base.cost_table, damage, base.pairs, base.epsilon)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_a_landscape_whose_damage_grows_as_blocks_get_cheaper_the_cost_prior_predicts_feasibility_better(seed):
    # chain(): damage ~ sensitivity * (1 - cost fraction)^power, the structure the cost prior encodes
    for n in (15, 30):
        scores = _fitted(chain(10, 4, seed), seed, n=n, cost_prior=True).last_selection["scores"]
        assert scores["linear+prior"] > scores["linear"]


def test_where_damage_ignores_the_cost_the_cost_prior_is_not_chosen():
    land = _cost_blind_landscape()
    assert not _fitted(land, 0, cost_prior=True).last_selection["model"].endswith("+prior")


# -- the per-block-scale term (block_scale: a problem without a prior) ---------------------------------


def _per_block_landscape(seed: int, blocks: int = 10) -> Landscape:
    """A chain landscape whose damage is exactly one scale per block times the option's cost fraction removed."""
    base = chain(blocks, 4, seed)
    saving = base.cost_table[:, :1] - base.cost_table  # (B, K)
    shape = saving / saving.max(axis=1, keepdims=True)
    scale = np.random.default_rng(seed).lognormal(0.0, 1.0, size=blocks)
    damage = scale[:, None] * shape
    damage *= base.epsilon / (0.15 * damage[:, -1].sum())
    return Landscape(base.cost_table, damage, np.zeros(blocks - 1), base.epsilon)


def test_without_a_prior_the_block_scale_models_are_candidates_after_the_reference():
    land = chain(6, 4, 0)
    strategy = make_strategy("ecbo", land.problem(), seed=0, **FAST)
    # linear warp only, no RBF term (rbf_free); the saturating model (saturating_warp) leaves it out too
    assert [c.label for c in strategy._candidates] == ["linear-rbf", "hinge", "linear+blocks-rbf", "saturating-rbf"]
    assert make_strategy("ecbo", land.problem(), seed=0, warp="hinge")._candidates == [Candidate("hinge", False)]
    feats = strategy._features
    saving = land.cost_table[:, :1] - land.cost_table
    np.testing.assert_allclose(feats.shape_table, saving / saving.max(axis=1, keepdims=True), rtol=1e-9)
    idx = np.array([[0, 1, 2, 3, 0, 1]])
    r = feats(idx)[0, feats.slice_r[0] :].numpy()
    np.testing.assert_allclose(r, feats.shape_table[np.arange(6), idx[0]] * feats.block_norm)
    assert float((feats(np.full((1, 6), 3))[0, feats.slice_r[0] :] ** 2).sum()) <= 1.0 + 1e-12  # like phi1
    # with a prior (given, or derived from the cost) or the option off: no block-scale models (prior_block_scale: below)
    with_prior = make_strategy("ecbo", land.problem(prior=True), seed=0)
    assert not with_prior._features.d5 and not any(c.block_scale for c in with_prior._candidates)
    assert not make_strategy("ecbo", land.problem(), seed=0, cost_prior=True)._features.d5
    off = make_strategy("ecbo", land.problem(), seed=0, block_scale=False, saturating_warp=False)
    assert not off._features.d5 and [c.label for c in off._candidates] == ["linear", "hinge"]
    with pytest.raises(StrategyError, match="block_scale"):
        make_strategy("ecbo", land.problem(), block_scale="yes")


def _assert_twin_and_tables_agree(gp, feats, test):
    """The GP's predictions at index rows ``test`` equal its botorch twin's and its chain tables' mean."""
    mean, var = gp.predict(feats(test))
    post = gp.to_botorch().posterior(feats(test))
    assert torch.allclose(post.mean.squeeze(-1), mean, atol=1e-6)
    assert torch.allclose(post.variance.squeeze(-1), var, atol=1e-6)
    np.testing.assert_allclose(gp.chain_tables(0).value(test)[0], mean.numpy(), atol=1e-8)


def test_the_block_scale_term_matches_its_botorch_twin_and_its_chain_tables():
    land = _per_block_landscape(0, blocks=8)
    shape = {b.path: {n: float(v) for n, v in zip(b.names, row)}
             for b, row in zip(land.space.blocks, land.damage / land.damage.max(axis=1, keepdims=True))}
    feats = ConfigFeatures(land.space, None, block_shape=shape)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 4, size=(30, 8))
    y = torch.tensor([land.quality(land.space.decode(list(r))) / land.epsilon for r in idx], dtype=DTYPE)
    gp = fit_quality_gp(feats(idx), y, feats, use_block_scale=True, use_rbf=False, mean=0.0)
    assert "block_scale" in gp.kernel.active
    # the per-block scale explains this landscape: the free per-cell weights are not needed
    assert gp.hypers["block_scale"] > 10 * gp.hypers["additive"]
    _assert_twin_and_tables_agree(gp, feats, rng.integers(0, 4, size=(5, 8)))
    # off (the default of fit_quality_gp): the term's columns are unused
    assert "block_scale" not in fit_quality_gp(feats(idx), y, feats, use_rbf=False).kernel.active


@pytest.mark.parametrize("seed", [0, 1])
def test_where_damage_is_a_per_block_scale_times_the_cost_removed_the_block_model_predicts_feasibility_better(seed):
    scores = _fitted(_per_block_landscape(seed), seed, n=25).last_selection["scores"]
    assert scores["linear+blocks-rbf"] > scores["linear-rbf"]


def test_where_damage_ignores_the_cost_the_block_model_is_not_chosen():
    land = _cost_blind_landscape()
    assert not _fitted(land, 0).last_selection["model"].endswith("+blocks")


def test_a_block_scale_model_must_beat_the_same_model_without_it_by_the_margin(monkeypatch):
    import tocsr_nas.strategies.ecbo.select as select

    quality = np.zeros(MIN_OBSERVATIONS)
    cands = [Candidate("linear", False), Candidate("hinge", False), Candidate("linear", False, True), Candidate("hinge", False, True)]
    for hinge_blocks, expected in ((-10.0 + MARGIN / 2, "hinge"), (-10.0 + 1.5 * MARGIN, "hinge+blocks")):
        table = {"linear": -20.0, "hinge": -10.0, "linear+blocks": -20.0 + 1.5 * MARGIN, "hinge+blocks": hinge_blocks}
        monkeypatch.setattr(select, "feasibility_score", lambda gp, warp, q, e: table[gp])
        chosen, gp, _, scores = select_model(cands, lambda c: (c.label, None), quality, [0.1])
        # linear+blocks beats its own base by more than the margin but not the best model so far
        assert chosen.label == expected and gp == expected and scores == table


# -- the per-block scales of a given prior (prior_block_scale) -----------------------------------------


def _per_block_prior_landscape(seed: int, blocks: int = 10) -> tuple[Landscape, np.ndarray]:
    """A chain landscape whose damage is the prior times one scale per block (spread over two orders of
    magnitude, as a distillation loss's units are per block), and that prior."""
    base = chain(blocks, 4, seed)
    scale = np.exp(np.random.default_rng(100 + seed).uniform(np.log(0.1), np.log(10.0), size=blocks))
    damage = scale[:, None] * base.damage
    damage *= base.epsilon / (0.15 * damage[:, -1].sum())
    return Landscape(base.cost_table, damage, np.zeros(blocks - 1), base.epsilon), base.damage


def test_with_a_prior_the_block_scale_term_is_shaped_by_the_prior():
    land = chain(6, 4, 0)
    strategy = make_strategy("ecbo", land.problem(prior=True), seed=0, prior_block_scale=True, **FAST)
    feats = strategy._features
    assert feats.shape_is_prior and feats.d5 == 6
    np.testing.assert_allclose(feats.shape_table, feats.prior_table)
    # beside the prior terms, with the linear warp (and the residual RBF term: rbf_free is for no prior)
    assert [c.label for c in strategy._candidates] == [
        "linear+prior", "hinge+prior", "linear", "hinge", "linear+prior+blocks", "saturating+prior", "saturating"]
    # not beside a prior derived from the cost; without a prior the option changes nothing (block_scale's shape)
    assert not make_strategy("ecbo", land.problem(), seed=0, cost_prior=True, prior_block_scale=True)._features.d5
    assert not make_strategy("ecbo", land.problem(), seed=0, prior_block_scale=True)._features.shape_is_prior
    with pytest.raises(StrategyError, match="prior_block_scale"):
        make_strategy("ecbo", land.problem(prior=True), prior_block_scale="yes")
    with pytest.raises(ValueError, match="block_shape"):
        ConfigFeatures(land.space, None, block_shape="prior")


def test_the_prior_block_scale_term_ties_the_per_cell_error_to_the_blocks_scale_and_matches_its_botorch_twin():
    land, prior = _per_block_prior_landscape(0, blocks=8)
    feats = ConfigFeatures(land.space, _prior(land, prior), block_shape="prior")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 4, size=(30, 8))
    y = torch.tensor([land.quality(land.space.decode(list(r))) / land.epsilon for r in idx], dtype=DTYPE)
    gp = fit_quality_gp(feats(idx), y, feats, use_block_scale=True, use_rbf=False, mean=0.0, prior_rel_sd=0.5)
    h = gp.hypers
    assert "block_scale" in gp.kernel.active
    expected = 0.25 * (h["prior"] + h["block_scale"] * feats.block_norm**2) / feats.scaled_norm**2
    assert h["scaled"] == pytest.approx(expected, rel=1e-9)
    _assert_twin_and_tables_agree(gp, feats, rng.integers(0, 4, size=(5, 8)))
    # the prior's per-block scales are the prior's: not without the prior terms
    assert "block_scale" not in fit_quality_gp(feats(idx), y, feats, use_block_scale=True, use_prior=False).kernel.active


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_where_each_block_scales_the_prior_differently_the_prior_block_model_predicts_untried_cells_better(seed):
    land, prior = _per_block_prior_landscape(seed)
    strategy = _fitted(land, seed, prior=_prior(land, prior), n=25, prior_block_scale=True)
    assert "linear+prior+blocks" in strategy.last_selection["scores"]  # a candidate of every fit
    # every single change from the teacher, most of them never observed alone
    feats, B, rows = strategy._features, len(land.space.blocks), []
    for b in range(B):
        for k in range(1, 4):
            rows.append([k if i == b else 0 for i in range(B)])
    truth = np.array([land.quality(land.space.decode(r)) for r in rows]) / land.epsilon
    X = feats(np.array([strategy.space.encode(o.config) for o in strategy.history]))
    y = torch.tensor([o.quality / land.epsilon for o in strategy.history], dtype=DTYPE)
    errors = {}
    for blocks in (False, True):
        gp = fit_quality_gp(X, y, feats, use_block_scale=blocks, mean=0.0, prior_rel_sd=1.0)
        errors[blocks] = float(np.abs(gp.predict(feats(np.array(rows)))[0].numpy() - truth).mean())
    assert errors[True] < 0.8 * errors[False]


# -- the reference chosen by the data (reference_first: observations far beyond epsilon) -------------


def test_an_observation_far_beyond_epsilon_makes_the_hinge_of_the_same_prior_setting_the_reference():
    cands = [Candidate("linear", True), Candidate("hinge", True), Candidate("linear", False), Candidate("hinge", False)]
    eps = 0.1
    near = np.array([0.0, 0.05, FAR * eps])  # at most FAR epsilon: the default order
    assert reference_first(cands, near, eps) == cands
    far = np.array([0.0, 0.05, 1.01 * FAR * eps])
    assert [c.label for c in reference_first(cands, far, eps)] == ["hinge+prior", "linear+prior", "linear", "hinge"]
    # failed evaluations (inf / nan) are not far qualities; pinned warps have no hinge to promote
    assert reference_first(cands, np.array([0.0, np.inf, np.nan]), eps) == cands
    assert reference_first([Candidate("linear", False)], far, eps) == [Candidate("linear", False)]
    no_prior = [Candidate("linear", False), Candidate("hinge", False), Candidate("linear", False, True)]
    assert [c.label for c in reference_first(no_prior, far, eps)] == ["hinge", "linear", "linear+blocks"]


def test_select_model_keeps_the_data_chosen_reference_unless_beaten_by_the_margin(monkeypatch):
    import tocsr_nas.strategies.ecbo.select as select

    eps = 0.1
    far = np.r_[np.zeros(MIN_OBSERVATIONS - 1), 2 * FAR * eps]
    cands = [Candidate("linear", False), Candidate("hinge", False)]
    for linear, expected in ((-10.0 + MARGIN / 2, "hinge"), (-10.0 + 1.5 * MARGIN, "linear")):
        table = {"linear": linear, "hinge": -10.0}
        monkeypatch.setattr(select, "feasibility_score", lambda gp, warp, q, e: table[gp])
        chosen, *_ = select_model(cands, lambda c: (c.label, None), far, [eps])
        assert chosen.label == expected
    # below MIN_OBSERVATIONS: the data-chosen reference without a comparison
    chosen, _, _, scores = select_model(cands, lambda c: (c.label, None), far[-3:], [eps])
    assert chosen.label == "hinge" and scores == {}


@pytest.mark.parametrize("seed", [0, 1])
def test_failures_far_beyond_epsilon_use_the_hinge_warp_before_a_comparison_is_possible(seed):
    base = chain(10, 4, seed)
    land = Collapsing(base.cost_table, base.damage, base.pairs, base.epsilon)
    strategy = _fitted(land, seed, n=MIN_OBSERVATIONS - 1)
    assert max(o.quality for o in strategy.history) > FAR * land.epsilon  # a collapse was observed
    assert strategy.last_selection == {"model": "hinge", "scores": {}} and strategy._warp.kind == "hinge"
    # the same observations with the collapses scored just below FAR epsilon keep the linear reference
    capped = _fitted(Capped(base.cost_table, base.damage, base.pairs, base.epsilon), seed, n=MIN_OBSERVATIONS - 1)
    assert capped.last_selection == {"model": "linear-rbf", "scores": {}}


class Capped(Landscape):
    """:class:`Collapsing` with the collapses at ``FAR`` epsilon: bad, but not far beyond the threshold."""

    def quality(self, cfg):
        return FAR * self.epsilon if (self.idx(cfg) >= 2).sum() >= 4 else super().quality(cfg)
