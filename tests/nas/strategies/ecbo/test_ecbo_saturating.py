"""ecbo's option ``saturating_warp`` (on by default): a warp for a quality that compounds towards a ceiling."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tocsr_nas.strategies.testing import Landscape, chain

from tocsr_nas.strategies import Problem, StrategyError, make_strategy
from tocsr_nas.strategies.ecbo.select import MARGIN
from tocsr_nas.strategies.ecbo.warp import QualityWarp

FAST = {"pool_random": 300, "pool_local": 150, "posterior_tables": 6}


class _Product(Landscape):
    """Quality ``1 - prod_b exp(-d_b[x_b])``: per-block retentions that compound (every block at its cheapest: 2%)."""

    def __init__(self, seed: int, blocks: int = 8) -> None:
        base = chain(blocks, 4, seed)
        damage = base.damage / base.damage[:, -1].sum() * 4.0
        super().__init__(base.cost_table, damage, np.zeros(blocks - 1), 1.0 - np.exp(-1.2))

    def quality(self, cfg):
        i = self.idx(cfg)
        return float(1.0 - np.exp(-self.damage[np.arange(len(i)), i].sum()))


def test_saturating_warp_makes_a_product_of_retentions_additive():
    """With the ceiling at the quality's true bound the warp turns ``1 - exp(-s)`` into ``s / e_ref`` exactly;
    it is monotone, its inverse round-trips, and it is the identity to first order."""
    e_ref = 0.7
    warp = QualityWarp("saturating", e_ref, ceiling=1.0 / e_ref)
    s = np.linspace(0.0, 5.0, 11)
    assert warp(1.0 - np.exp(-s)) == pytest.approx(s / e_ref)
    q = np.array([-0.1, 0.0, 0.1, 0.5, 0.9, 0.99])
    y = warp(q)
    assert np.all(np.diff(y) > 0)
    assert [warp.inverse(float(v)) for v in y] == pytest.approx(q.tolist())
    assert float(warp(1e-6)) == pytest.approx(1e-6 / e_ref, rel=1e-4)
    assert np.isfinite(warp(np.array([2.0, 50.0]))).all()  # beyond the ceiling: clipped, finite
    with pytest.raises(ValueError, match="ceiling"):
        QualityWarp("saturating", e_ref)


@pytest.mark.parametrize("seed", range(4))
def test_the_ceiling_is_fitted_to_the_data(seed):
    """The fitted ceiling finds a product of retentions' bound (within 10%) from 30 observations, and no
    ceiling is fitted to an additive quality or to one that grows faster than additive (the ``B`` case)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, size=(30, 8))
    s = rng.uniform(0.0, 0.5, size=(8, 4))[np.arange(8), idx].sum(1)
    e_ref = 0.3
    u = QualityWarp.fit_ceiling(1.0 - np.exp(-s), idx, e_ref)
    assert u is not None and u == pytest.approx(1.0 / e_ref, rel=0.1)
    assert u > (1.0 - np.exp(-s)).max() / e_ref
    assert QualityWarp.fit_ceiling(s, idx, e_ref) is None
    assert QualityWarp.fit_ceiling(s**2, idx, e_ref) is None
    assert QualityWarp.fit_ceiling(np.expm1(s), idx, e_ref) is None
    # nothing beyond epsilon yet: nothing to stretch; failed evaluations are left out
    small = np.where(np.arange(30) % 5 == 0, np.inf, 0.9 * e_ref * s / s.max())
    assert QualityWarp.fit_ceiling(small, idx, e_ref) is None
    assert QualityWarp.fit_ceiling(np.where(np.arange(30) == 3, np.nan, 1.0 - np.exp(-s)), idx, e_ref) == pytest.approx(u, rel=0.1)


def test_no_saturating_model_where_the_quality_grows_faster_than_additive():
    """On a superadditive quality (damages that compound upwards) no ceiling is fitted, so the saturating
    model is not among the candidates the fit compares."""
    from tocsr_nas.strategies import Observation

    land = _Product(seed=1)
    rng = random.Random(0)
    configs = list(dict.fromkeys([land.space.default_config()] + [land.space.sample(rng) for _ in range(24)]))
    strategy = make_strategy("ecbo", land.problem(), seed=0, **FAST)
    superadditive = []
    for c in configs:
        i = land.idx(c)
        s = float(land.damage[np.arange(len(i)), i].sum())  # up to 4 at the cheapest corner
        superadditive.append(Observation(c, land.epsilon * (s / 2.0) ** 2, land.cost(c)))  # up to 4 epsilon, within FAR
    assert max(o.quality for o in superadditive) > 1.5 * land.epsilon
    strategy.tell(superadditive)
    strategy.ask(1)
    scores = strategy.last_selection["scores"]
    assert scores and not any("saturating" in k for k in scores)


@pytest.mark.parametrize("prior", [False, True])
def test_saturating_warp_is_chosen_where_the_quality_saturates(prior):
    """On a product of retentions the saturating model predicts feasibility better by leave-one-out and is chosen;
    with the option off it is never offered (on by default)."""
    land = _Product(seed=1)
    problem = land.problem(prior=prior)
    rng = random.Random(0)
    configs = list(dict.fromkeys([land.space.default_config()] + [land.space.sample(rng) for _ in range(24)]))
    labels = {}
    for on in (False, True):
        strategy = make_strategy("ecbo", problem, seed=0, saturating_warp=on, **FAST)
        strategy.tell([land.observe(c) for c in configs])
        strategy.ask(1)
        labels[on] = strategy.last_selection
    assert not any("saturating" in label for label in labels[False]["scores"])
    scores = labels[True]["scores"]
    assert labels[True]["model"].startswith("saturating")
    reference = next(iter(scores))  # select_model scores the reference first
    assert not reference.startswith("saturating")
    assert scores[labels[True]["model"]] > scores[reference] + MARGIN


def test_saturating_warp_option_is_validated():
    land = _Product(seed=0)
    with pytest.raises(StrategyError, match="saturating_warp"):
        make_strategy("ecbo", Problem(land.space, cost=land.cost, epsilons=(land.epsilon,)), saturating_warp="yes")


def test_saturating_warp_is_not_offered_once_a_failure_lies_far_beyond_epsilon():
    """A quality beyond FAR times epsilon says the qualities do not pile up under a ceiling near the threshold."""
    from tocsr_nas.strategies import Observation
    from tocsr_nas.strategies.ecbo.select import FAR

    land = _Product(seed=1)
    rng = random.Random(0)
    configs = list(dict.fromkeys([land.space.default_config()] + [land.space.sample(rng) for _ in range(24)]))
    strategy = make_strategy("ecbo", land.problem(), seed=0, saturating_warp=True, **FAST)
    observations = [land.observe(c) for c in configs]
    far = observations[-1]
    strategy.tell([*observations[:-1], Observation(far.config, 2.0 * FAR * land.epsilon, far.cost)])
    strategy.ask(1)
    assert strategy.last_selection["scores"] and not any("saturating" in k for k in strategy.last_selection["scores"])


def test_early_saturating_fits_the_saturating_model_before_the_comparison_starts():
    """Below MIN_OBSERVATIONS only one model is fitted: the reference, or with ``early_saturating`` the
    saturating model once a ceiling is fitted (on a product of retentions); without a ceiling it changes nothing."""
    from tocsr_nas.strategies.ecbo.select import MIN_OBSERVATIONS

    land = _Product(seed=1)
    rng = random.Random(3)
    cheap = land.space.decode([land.cost_table.shape[1] - 1] * land.cost_table.shape[0])
    configs = list(dict.fromkeys([land.space.default_config(), cheap] + [land.space.sample(rng) for _ in range(12)]))
    observations = [land.observe(c) for c in configs][: MIN_OBSERVATIONS - 1]
    assert QualityWarp.fit_ceiling(np.array([o.quality for o in observations]), np.array([land.idx(o.config) for o in observations]), land.epsilon) is not None
    models = {}
    for early in (False, True):
        strategy = make_strategy("ecbo", land.problem(), seed=0, early_saturating=early, **FAST)
        strategy.tell(observations)
        strategy.ask(1)
        models[early] = strategy.last_selection["model"]
    assert not models[False].startswith("saturating") and models[True].startswith("saturating")
    with pytest.raises(StrategyError, match="early_saturating"):
        make_strategy("ecbo", land.problem(), early_saturating="yes")
