"""tocsr_nas.search: validated keyword-only arguments, a SearchResult, outputs on disk."""

from __future__ import annotations

import math

import pytest
from search_toys import toy_cost, toy_quality, toy_space

import tocsr_nas
from tocsr_nas import search
from tocsr_nas.errors import TocsrError
from tocsr_nas.search.results import SearchResult

COLUMNS = ["trial", "strategy", "config", "hash", "gmacs", "params", "quality", "feasible", "feasible@0.05",
           "feasible@0.1", "seconds"]


def run(**kw):
    args = dict(quality=toy_quality, cost=toy_cost, epsilon=[0.05, 0.1], strategy="random", budget=10, seed=0,
                progress=False)
    args.update(kw)
    return search(toy_space(), **args)


def test_lazy_top_level_names():
    assert tocsr_nas.search is search
    assert tocsr_nas.SearchResult is SearchResult
    assert callable(tocsr_nas.load_search)


def test_returns_a_search_result_with_the_documented_columns():
    result = run()
    assert isinstance(result, SearchResult)
    assert list(result.trials.columns) == COLUMNS
    assert len(result.trials) == 10 and (result.trials["strategy"] == "random").all()
    assert result.best is not None and result.best.quality <= 0.05
    assert set(result.pareto["trial"]) <= set(result.trials["trial"])


def test_a_single_epsilon():
    result = run(epsilon=0.1)
    assert result.epsilons == (0.1,) and "feasible@0.1" in result.trials and result.best.quality <= 0.1


@pytest.mark.parametrize("epsilon", [0, -0.1, math.nan, math.inf, "abc", [], [0.05, 0.0], True, None])
def test_epsilon_out_of_range(epsilon):
    with pytest.raises(TocsrError, match="epsilon out of range"):
        run(epsilon=epsilon)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"budget": 0}, "budget must be a positive integer"),
        ({"budget": -3}, "budget must be a positive integer"),
        ({"budget": 2.5}, "budget must be a positive integer"),
        ({"time_budget": 0}, "time_budget must be a positive"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"objective": "flops"}, r"objective must be one of \['gmacs', 'params', 'latency'\]"),
        ({"max_gmacs": -1}, "max_gmacs must be a positive"),
        ({"seed": "zero"}, "seed must be an integer"),
        ({"quality": 0.1}, "quality must be a callable"),
        ({"strategy": "nope"}, "unknown strategy 'nope'"),
        ({"strategy_options": {"x": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_arguments_are_one_clear_error(kw, message):
    with pytest.raises(TocsrError, match=message):
        run(**kw)


def test_a_bad_strategy_option_leaves_no_files(tmp_path):
    with pytest.raises(TocsrError, match="unknown option"):
        run(out_dir=tmp_path, strategy_options={"no_such_option": 1})
    assert not any(tmp_path.iterdir())


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        search(toy_space(), toy_quality, toy_cost, 0.05)  # type: ignore[misc]


def test_out_dir_and_resume(tmp_path):
    first = run(out_dir=tmp_path, budget=5)
    assert (tmp_path / "best.json").exists() and (tmp_path / "plots" / "pareto.png").exists()
    more = run(out_dir=tmp_path, budget=10, resume=True)
    assert more.trials.iloc[:5].equals(first.trials)
    assert tocsr_nas.load_search(tmp_path).trials.shape == more.trials.shape


def test_objective_params_minimises_parameters():
    result = run(objective="params", budget=30, epsilon=0.1)
    feasible = result.trials[result.trials["feasible"]]
    assert result.best.params == feasible["params"].min()
