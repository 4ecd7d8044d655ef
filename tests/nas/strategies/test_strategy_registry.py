"""The strategy registry and the Problem/Observation contracts."""

from __future__ import annotations

import math

import pytest
from tocsr_nas.strategies.testing import small

from tocsr_nas.errors import TocsrError
from tocsr_nas.strategies import (
    Observation,
    Problem,
    Strategy,
    StrategyError,
    available_strategies,
    get_strategy,
    make_strategy,
    register_strategy,
)


def test_builtin_strategies_are_registered():
    names = available_strategies()
    for name in ("ecbo", "random", "evolution", "exhaustive", "nni-tpe", "nni-evolution", "nni-random"):
        assert name in names
    pytest.importorskip("optuna")
    for name in ("optuna-tpe", "optuna-nsga2", "optuna-gp"):
        assert name in names


def test_unknown_name_lists_valid_ones_and_how_to_register():
    with pytest.raises(StrategyError) as err:
        get_strategy("bayes-magic")
    assert isinstance(err.value, TocsrError)
    assert "ecbo" in str(err.value) and "register_strategy" in str(err.value)


def test_duplicate_name_is_an_error():
    with pytest.raises(StrategyError, match="already registered"):

        @register_strategy("random")
        class Again(Strategy):
            def _propose(self, n, rng):
                return []


def test_a_new_strategy_is_one_class():
    @register_strategy("test-first-cheapest")
    class FirstCheapest(Strategy):
        def _propose(self, n, rng):
            return self._random_unseen(rng, n)

    land = small()
    strategy = make_strategy("test-first-cheapest", land.problem(), seed=1)
    assert strategy.name == "test-first-cheapest"
    assert strategy.ask(1) == [land.space.default_config()]


def test_options_are_validated():
    land = small()
    with pytest.raises(StrategyError, match="population_size"):
        make_strategy("evolution", land.problem(), population_size=0)
    with pytest.raises(StrategyError, match="warp"):
        make_strategy("ecbo", land.problem(), warp="cubic")
    with pytest.raises(StrategyError, match="seed"):
        make_strategy("random", land.problem(), seed="0")
    with pytest.raises(StrategyError, match="positive integer"):
        make_strategy("random", land.problem()).ask(0)


def test_problem_validation():
    land = small()
    with pytest.raises(StrategyError, match="epsilons"):
        Problem(land.space, cost=land.cost, epsilons=())
    with pytest.raises(StrategyError, match="finite"):
        Problem(land.space, cost=land.cost, epsilons=(math.nan,))
    with pytest.raises(StrategyError, match="not in the space"):
        Problem(land.space, cost=land.cost, epsilons=(0.1,), prior={"nope": {"teacher": 0.0}})
    with pytest.raises(StrategyError, match="nonnegative"):
        Problem(land.space, cost=land.cost, epsilons=(0.1,), prior={"b0": {"c1": -1.0}})
    assert Problem(land.space, cost=land.cost, epsilons=0.05).epsilons == (0.05,)


def test_observation_feasibility_and_failed_evaluations():
    cfg = small().space.default_config()
    assert Observation(cfg, 0.01, 1.0).feasible(0.02)
    assert not Observation(cfg, 0.03, 1.0).feasible(0.02)
    assert not Observation(cfg, math.inf, 1.0).feasible(0.02)
    assert not Observation(cfg, math.nan, 1.0).feasible(0.02)


def test_exhaustive_refuses_large_spaces_and_finds_the_optimum():
    land = small()
    with pytest.raises(StrategyError, match="max_size"):
        make_strategy("exhaustive", land.problem(), max_size=100)
    strategy = make_strategy("exhaustive", land.problem())
    while batch := strategy.ask(8):
        strategy.tell([land.observe(c) for c in batch])
    assert strategy.best_feasible(land.epsilon).cost == pytest.approx(land.optimum())
    assert len(strategy.history) < land.space.size  # it stopped once the optimum was certain


def test_adapters_fold_feasibility_into_one_scalar():
    land = small()
    strategy = make_strategy("nni-tpe", land.problem())
    cfg = land.space.default_config()
    feasible = strategy.scalar(Observation(cfg, 0.0, 3.0))
    infeasible = strategy.scalar(Observation(cfg, land.epsilon * 1.01, 0.1))
    failed = strategy.scalar(Observation(cfg, math.inf, 0.1))
    assert feasible == 3.0 < strategy.cost_max < infeasible < failed
