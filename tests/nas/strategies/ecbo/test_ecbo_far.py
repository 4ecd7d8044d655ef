"""ecbo's options for landscapes with far failures: ``far_model``, ``far_weight`` and ``failures_far``."""

from __future__ import annotations

import numpy as np
import pytest
from tocsr_nas.strategies.testing import Landscape, chain

from tocsr_nas.strategies import Problem, StrategyError, make_strategy
from tocsr_nas.strategies.ecbo.far import far_mask
from tocsr_nas.strategies.ecbo.select import FAR, MIN_OBSERVATIONS

FAST = {"pool_random": 300, "pool_local": 150, "posterior_tables": 6}


class _Collapsing(Landscape):
    """Configurations with four or more cheap blocks fail at 80 epsilon: far from additive."""

    def quality(self, cfg):
        return 80.0 * self.epsilon if (self.idx(cfg) >= 2).sum() >= 4 else super().quality(cfg)


def _collapsing(seed: int) -> _Collapsing:
    base = chain(10, 4, seed)
    return _Collapsing(base.cost_table, base.damage, base.pairs, base.epsilon)


def _told(land, seed, n, **options):
    """ecbo told the teacher and ``n - 1`` configurations, about half of them with few cheap blocks (working)."""
    strategy = make_strategy("ecbo", Problem(land.space, cost=land.cost, epsilons=(land.epsilon,)), seed=seed, **FAST, **options)
    rng = np.random.default_rng(seed)
    rows = [np.where(rng.random(10) < (0.15 if i % 2 else 0.6), rng.integers(0, 4, 10), 0) for i in range(n - 1)]
    configs = dict.fromkeys([land.space.default_config()] + [land.space.decode(r.tolist()) for r in rows])
    strategy.tell([land.observe(c) for c in configs])
    return strategy


def test_far_model_fits_a_label_model_and_leaves_far_failures_out_of_the_quality_model():
    land = _collapsing(0)
    strategy = _told(land, 0, 30)  # on by default
    strategy.ask(1)
    quality = np.array([o.quality for o in strategy.history])
    far = far_mask(quality, FAR * land.epsilon)
    assert far.any() and (~far).sum() >= MIN_OBSERVATIONS and strategy._far is not None
    assert len(strategy._last_gp.y) == (~far).sum()
    rows = np.array([strategy.space.encode(o.config) for o in strategy.history])
    p_ok = strategy._far.log_p_ok(rows).exp().numpy()
    assert p_ok[far].mean() < p_ok[~far].mean()  # the label model separates what it was told
    # too few working observations, or the option off: the one model of every observation
    few = _told(land, 0, 6, far_model=True)
    few.ask(1)
    assert few._far is None and len(few._last_gp.y) == len(few.history)
    off = _told(land, 0, 30, far_model=False)
    off.ask(1)
    assert off._far is None and len(off._last_gp.y) == len(quality)


def test_far_model_waits_for_two_far_observations():
    """One far label gives the label GP nothing to learn (macro: the all-Identity network alone)."""
    land = _collapsing(2)
    strategy = make_strategy("ecbo", Problem(land.space, cost=land.cost, epsilons=(land.epsilon,)), seed=2, far_model=True, **FAST)
    working = [land.space.default_config()] + [land.space.decode([0] * b + [1] + [0] * (9 - b)) for b in range(10)]
    strategy.tell([land.observe(c) for c in working] + [land.observe(land.space.decode([3] * 10))])
    strategy.ask(1)
    assert strategy._far is None and len(strategy._last_gp.y) == len(strategy.history)
    strategy.tell([land.observe(land.space.decode([2] * 10))])
    strategy.ask(1)
    assert strategy._far is not None and len(strategy._last_gp.y) == len(strategy.history) - 2


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), "3"])
def test_far_weight_rejects_invalid_values(value):
    with pytest.raises(StrategyError, match="far_weight"):
        make_strategy("ecbo", chain(4, 3, 0).problem(), far_weight=value)


def test_far_weight_is_the_power_of_p_not_far_in_the_acquisition():
    """The score of a configuration moves by ``(w2 - w1) * pof_power * log P(not far)`` between two weights."""
    land = _collapsing(0)
    scores = {}
    for weight in (1.0, 3.0):
        strategy = _told(land, 0, 30, far_weight=weight)
        strategy.ask(1)
        rows = np.array([strategy.space.encode(o.config) for o in strategy.history])
        gp, threshold = strategy._last_gp, float(strategy._warp(land.epsilon))
        scores[weight] = strategy._score(gp, rows, land.cost(land.space.default_config()), threshold)[0]
        log_ok = strategy._far.log_p_ok(rows).numpy()
    expected = 2.0 * strategy.options.pof_power * log_ok
    finite = np.isfinite(scores[1.0])
    assert finite.any() and np.allclose(scores[3.0][finite] - scores[1.0][finite], expected[finite])


class _Failing(Landscape):
    """Configurations with four or more cheap blocks fail to evaluate (NaN): a region where the network breaks."""

    def quality(self, cfg):
        return float("nan") if (self.idx(cfg) >= 2).sum() >= 4 else super().quality(cfg)


def test_failures_far_puts_failed_evaluations_in_the_label_model():
    """With ``failures_far`` failed evaluations are far failures: the label model learns their region and the
    quality model describes the working configurations only; off, they are imputed inside the quality model."""
    base = chain(10, 4, 0)
    land = _Failing(base.cost_table, base.damage, base.pairs, base.epsilon)
    strategy = _told(land, 0, 30, failures_far=True)
    strategy.ask(1)
    quality = np.array([o.quality for o in strategy.history])
    failed = ~np.isfinite(quality)
    assert failed.sum() >= 2 and (~failed).sum() >= MIN_OBSERVATIONS and strategy._far is not None
    assert len(strategy._last_gp.y) == (~failed).sum() and np.isfinite(strategy._last_gp.y.numpy()).all()
    rows = np.array([strategy.space.encode(o.config) for o in strategy.history])
    p_ok = strategy._far.log_p_ok(rows).exp().numpy()
    assert p_ok[failed].mean() < p_ok[~failed].mean()
    off = _told(land, 0, 30, failures_far=False)
    off.ask(1)
    assert off._far is None and len(off._last_gp.y) == len(quality)
    # the far model off: nothing to put them in
    no_far = _told(land, 0, 30, failures_far=True, far_model=False)
    no_far.ask(1)
    assert no_far._far is None and len(no_far._last_gp.y) == len(quality)
