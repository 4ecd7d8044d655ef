"""The conformance suite every registered strategy passes (a new strategy gets it for free).

On the 8-block x 3-option landscape of ``strategy_landscape.small``: the teacher comes first,
nothing inadmissible or repeated is ever proposed, the same seed gives the same trials, the state
round-trips through JSON into a fresh instance, failed evaluations are survived, and a tiny space
is exhausted cleanly.
"""

from __future__ import annotations

import json
import math

import pytest
from tocsr_nas.strategies.testing import small, small_constrained

from tocsr_nas.searchspace import SearchSpace
from tocsr_nas.strategies import Observation, Problem, StrategyError, available_strategies, make_strategy

#: options that keep each strategy fast on the tiny landscapes
FAST = {"ecbo": {"pool_random": 200, "pool_local": 100, "posterior_tables": 4, "local_steps": 3, "n_local_starts": 4}}
STRATEGIES = available_strategies()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """GP-based strategies (ecbo, optuna-gp) work on tiny matrices: one thread avoids
    oversubscribing a shared CPU (tens of times faster there)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name, problem, seed=0):
    return make_strategy(name, problem, seed=seed, **FAST.get(name, {}))


def run(strategy, land, steps, batch=1, fail_every=0):
    """Ask/tell ``steps`` evaluations in batches; every ``fail_every``-th evaluation fails (inf)."""
    trials = []
    while len(trials) < steps:
        proposed = strategy.ask(batch)
        if not proposed:
            break
        obs = []
        for cfg in proposed:
            o = land.observe(cfg)
            if fail_every and (len(trials) + 1) % fail_every == 0:
                o = Observation(cfg, math.inf, o.cost)
            obs.append(o)
            trials.append(cfg)
        strategy.tell(obs)
    return trials


@pytest.mark.parametrize("name", STRATEGIES)
def test_first_proposal_is_the_teacher(name):
    land = small()
    strategy = build(name, land.problem())
    first = strategy.ask(2)
    assert first[0] == land.space.default_config()
    assert len(first) == 2 and first[0] != first[1]


@pytest.mark.parametrize("name", STRATEGIES)
def test_respects_admissible_and_never_repeats(name):
    land = small_constrained()
    bound = 0.7 * land.cost(land.space.default_config())  # the teacher itself is inadmissible
    problem = land.problem(max_cost=bound)
    strategy = build(name, problem, seed=3)
    trials = run(strategy, land, 14, batch=2)
    assert len(trials) == 14
    assert len(set(trials)) == len(trials)
    for cfg in trials:
        assert land.cost(cfg) <= bound, cfg
        assert land.space.is_valid(cfg), cfg
    assert land.space.default_config() not in trials


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_trials(name):
    land = small()
    a = run(build(name, land.problem(), seed=7), land, 10, batch=2)
    b = run(build(name, land.problem(), seed=7), land, 10, batch=2)
    assert a == b


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_round_trips_into_a_fresh_instance(name):
    land = small()
    original = build(name, land.problem(), seed=5)
    run(original, land, 6, batch=2)
    pending = original.ask(2)  # asked, not told: part of the state
    state = json.loads(json.dumps(original.state_dict()))

    fresh = build(name, land.problem(), seed=5)
    fresh.tell(list(original.history))
    fresh.load_state_dict(state)
    assert fresh.pending == pending
    assert fresh.ask(3) == original.ask(3)
    # and the two stay in step after telling the same results
    for s in (original, fresh):
        s.tell([land.observe(c) for c in s.pending])
    assert fresh.ask(2) == original.ask(2)


@pytest.mark.parametrize("name", STRATEGIES)
def test_load_state_dict_rejects_a_foreign_history(name):
    land = small()
    original = build(name, land.problem(), seed=5)
    run(original, land, 4)
    state = original.state_dict()
    other = build(name, land.problem(), seed=5)
    with pytest.raises(StrategyError, match="tell"):
        other.load_state_dict(state)  # nothing told: the history does not match


@pytest.mark.parametrize("name", STRATEGIES)
def test_handles_failed_evaluations(name):
    land = small()
    strategy = build(name, land.problem(), seed=1)
    trials = run(strategy, land, 10, fail_every=3)
    assert len(set(trials)) == len(trials) == 10
    strategy.tell([Observation(c, float("nan"), land.cost(c)) for c in strategy.ask(1)])
    assert len(strategy.ask(1)) == 1


@pytest.mark.parametrize("name", STRATEGIES)
def test_exhausts_a_tiny_space(name):
    space = SearchSpace.from_choices({"a": ["t", "x"], "b": ["t", "x", "y"]})
    problem = Problem(space, cost=lambda c: 1.0 + (c["a"] == "t") + (c["b"] == "t"), epsilons=(-1.0,))
    strategy = build(name, problem)  # nothing is ever feasible: even exhaustive visits everything
    seen = []
    for _ in range(10):
        batch = strategy.ask(2)
        if not batch:
            break
        seen += batch
        strategy.tell([Observation(c, 1.0, problem.cost(c)) for c in batch])
    assert sorted(c.to_json() for c in seen) == sorted(c.to_json() for c in space.enumerate())
    assert strategy.ask(1) == []


@pytest.mark.parametrize("name", STRATEGIES)
def test_unknown_option_is_an_error(name):
    with pytest.raises(StrategyError, match="unknown option"):
        make_strategy(name, small().problem(), no_such_option=1)


@pytest.mark.parametrize("name", STRATEGIES)
def test_sweep_of_epsilons(name):
    land = small()
    strategy = build(name, land.problem(epsilons=(0.01, 0.03)), seed=2)
    trials = run(strategy, land, 8, batch=2)
    assert len(set(trials)) == 8
