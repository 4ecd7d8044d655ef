"""ecbo's option ``rbf_free`` (on by default): without a prior, the linear-warp candidate models leave the residual RBF term out."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tocsr_nas.strategies.testing import Landscape, chain

from tocsr_nas.strategies import Problem, StrategyError, make_strategy
from tocsr_nas.strategies.ecbo.select import MARGIN, Candidate

FAST = {"pool_random": 300, "pool_local": 150, "posterior_tables": 6}


def _per_block_landscape(seed: int, blocks: int = 10) -> Landscape:
    """Additive damage, exactly one scale per block times the option's cost fraction removed (no interactions)."""
    base = chain(blocks, 4, seed)
    saving = base.cost_table[:, :1] - base.cost_table  # (B, K)
    scale = np.random.default_rng(seed).lognormal(0.0, 1.0, size=blocks)
    damage = scale[:, None] * saving / saving.max(axis=1, keepdims=True)
    damage *= base.epsilon / (0.15 * damage[:, -1].sum())
    return Landscape(base.cost_table, damage, np.zeros(blocks - 1), base.epsilon)


class _Collapsing(Landscape):
    """Configurations with four or more cheap blocks fail at 80 epsilon: far from additive."""

    def quality(self, cfg):
        return 80.0 * self.epsilon if (self.idx(cfg) >= 2).sum() >= 4 else super().quality(cfg)


def _fitted(land, seed, n=25, **options):
    """ecbo (no prior) told the teacher and ``n - 1`` random configurations, after one proposal."""
    strategy = make_strategy("ecbo", Problem(land.space, cost=land.cost, epsilons=(land.epsilon,)), seed=seed, **FAST, **options)
    rng = random.Random(seed)
    configs = dict.fromkeys([land.space.default_config()] + [land.space.sample(rng) for _ in range(n - 1)])
    strategy.tell([land.observe(c) for c in configs])
    strategy.ask(1)
    return strategy


def test_rbf_free_drops_the_rbf_term_from_the_linear_warp_models_only_without_a_prior():
    land = chain(6, 4, 0)
    off = [c.label for c in make_strategy("ecbo", land.problem(), seed=0, rbf_free=False, **FAST)._candidates]
    assert off == ["linear", "hinge", "linear+blocks", "saturating"]
    labels = [c.label for c in make_strategy("ecbo", land.problem(), seed=0, **FAST)._candidates]
    assert labels == ["linear-rbf", "hinge", "linear+blocks-rbf", "saturating-rbf"]  # on by default; the hinge model keeps the RBF term
    assert Candidate("linear", False, block_scale=True, rbf=False).label == "linear+blocks-rbf"
    # with the RBF term off altogether, without the block term, or with a prior: nothing changes
    for options, problem in (({"use_rbf": False}, land.problem()), ({"block_scale": False}, land.problem()),
                             ({}, land.problem(prior=True)), ({"cost_prior": True}, land.problem())):
        strategy = make_strategy("ecbo", problem, seed=0, rbf_free=True, **options)
        assert all(c.rbf for c in strategy._candidates), options
    with pytest.raises(StrategyError, match="rbf_free"):
        make_strategy("ecbo", land.problem(), rbf_free="yes")


@pytest.mark.parametrize("seed", [0, 3])
def test_where_damage_is_additive_a_linear_model_without_the_rbf_term_is_chosen_and_fitted_without_it(seed):
    strategy = _fitted(_per_block_landscape(seed), seed, rbf_free=True)
    sel = strategy.last_selection
    assert sel["model"] in ("linear-rbf", "linear+blocks-rbf"), sel
    assert "rbf" not in strategy._last_gp.kernel.active
    # the same observations with the option off: the chosen model has the RBF term
    assert "rbf" in _fitted(_per_block_landscape(seed), seed, rbf_free=False)._last_gp.kernel.active


@pytest.mark.parametrize("seed", [0, 2])
def test_where_failures_lie_far_beyond_epsilon_the_hinge_model_with_the_rbf_term_still_wins(seed):
    base = chain(10, 4, seed)
    # one model of every observation, far failures included (far_model takes them out of the quality model)
    strategy = _fitted(_Collapsing(base.cost_table, base.damage, base.pairs, base.epsilon), seed, n=30, rbf_free=True, far_model=False)
    sel = strategy.last_selection
    assert sel["model"] == "hinge" and sel["scores"]["hinge"] > sel["scores"]["linear-rbf"] + MARGIN, sel
    assert "rbf" in strategy._last_gp.kernel.active


def test_a_far_failure_makes_the_hinge_model_the_reference_also_when_the_linear_ones_drop_the_rbf_term():
    """``reference_first`` finds the hinge model by warp and prior setting: with ``rbf_free`` the linear
    reference is ``linear-rbf`` and the hinge model keeps its RBF term, so an exact-match lookup missed it."""
    from tocsr_nas.strategies.ecbo.select import FAR, reference_first

    cands = make_strategy("ecbo", chain(6, 4, 0).problem(), seed=0, **FAST)._candidates
    far = np.array([0.0, 2.0 * FAR])
    assert [c.label for c in reference_first(cands, far, 1.0)] == ["hinge", "linear-rbf", "linear+blocks-rbf", "saturating-rbf"]
    assert reference_first(cands, np.array([0.0, 0.5 * FAR]), 1.0) == cands
