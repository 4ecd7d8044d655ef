"""How a sweep shares its proposals between epsilons (``Strategy.target_epsilon``, ``sweep_gains``):
in turn by default (``Problem.sweep == "cycle"``), by gain with ``sweep="gain"``."""

import math
from collections import Counter

import pytest

from tocsr_nas.searchspace import SearchSpace
from tocsr_nas.strategies import Observation, Problem, make_strategy

PRICE = {"t": 4.0, "half": 2.0, "skip": 1.0}
SPACE = SearchSpace.from_choices({f"b{i}": list(PRICE) for i in range(4)})


def cost(config):
    return sum(PRICE[v] for v in config.values())


def cfg(*names):
    return SPACE.validate({f"b{i}": n for i, n in enumerate(names)})


def strategy(epsilons, told=(), name="random", sweep="gain"):
    s = make_strategy(name, Problem(SPACE, cost=cost, epsilons=epsilons, sweep=sweep), seed=0)
    s.tell([Observation(c, q, cost(c)) for c, q in told])
    return s


def targets(s, n):
    return [s.target_epsilon(j) for j in range(n)]


# the teacher (cost 16), one configuration feasible at 0.05 and 0.1 (cost 14), one only at 0.1 (cost 10)
TOLD = [(cfg("t", "t", "t", "t"), 0.0), (cfg("half", "t", "t", "t"), 0.03), (cfg("half", "half", "half", "t"), 0.08)]


def test_an_epsilon_still_at_the_teacher_gets_every_shared_proposal():
    s = strategy((0.05, 0.02, 0.1), TOLD)
    gains = s.sweep_gains()
    assert gains[0.02] == math.inf
    assert gains[0.05] == pytest.approx(math.log(14 / 10) / math.log(2))  # 14 -> 10 over 0.05 -> 0.1
    assert gains[0.1] == gains[0.05]  # the largest: the pair below it
    counts = Counter(targets(s, 60))  # 10 cycles of 6: 3 floor slots, 3 shared
    assert counts == {0.02: 40, 0.05: 10, 0.1: 10}


# bests 9, 6, 4 at 0.02, 0.04, 0.08: the same ratio for each doubling of epsilon
EVEN = [TOLD[0], (cfg("t", "half", "half", "skip"), 0.01), (cfg("half", "half", "skip", "skip"), 0.03),
        (cfg("skip", "skip", "skip", "skip"), 0.07)]


def test_a_log_linear_trade_off_is_shared_evenly_and_a_lagging_epsilon_gains_more():
    s = strategy((0.02, 0.04, 0.08), EVEN)
    gains = s.sweep_gains()
    assert gains == {e: pytest.approx(math.log(1.5) / math.log(2)) for e in (0.02, 0.04, 0.08)}
    counts = Counter(targets(s, 600))
    assert all(abs(counts[e] - 200) <= 2 for e in counts)
    lagging = strategy((0.02, 0.04, 0.08), [EVEN[0], (cfg("t", "t", "half", "half"), 0.01), *EVEN[2:]])  # 12, not 9
    gains = lagging.sweep_gains()
    assert gains[0.02] == pytest.approx(1.0) and gains[0.02] > gains[0.04] == gains[0.08]
    assert Counter(targets(lagging, 600))[0.02] > 200 + 20


def test_several_epsilons_at_the_teacher_take_turns():
    s = strategy((0.05, 0.02, 0.1), TOLD[:1])
    assert Counter(targets(s, 60)) == {0.05: 20, 0.02: 20, 0.1: 20}


def test_no_epsilon_is_starved_and_shares_follow_the_gains():
    # 0.02 and 0.05 share their best (gain 0 below 0.1's); only 0.1 has something left to gain
    told = [*TOLD[:1], (cfg("half", "t", "t", "t"), 0.01), (cfg("skip", "skip", "t", "t"), 0.09)]
    s = strategy((0.05, 0.02, 0.1), told)
    gains = s.sweep_gains()
    assert gains[0.02] == 0.0 and gains[0.05] > 0 and gains[0.1] > 0
    counts = Counter(targets(s, 600))
    assert min(counts.values()) >= 600 // 6  # the floor: half a fair share each
    assert counts[0.02] == 100  # gain 0: the floor only
    shared = {e: counts[e] - 100 for e in (0.05, 0.1)}
    total = gains[0.05] + gains[0.1]
    for e in shared:  # the golden-ratio draws split the 300 shared slots by gain, within a few
        assert shared[e] == pytest.approx(300 * gains[e] / total, abs=3)


def test_targets_are_a_function_of_the_told_history_and_pending_set():
    a, b = strategy((0.05, 0.02, 0.1), TOLD), strategy((0.05, 0.02, 0.1), TOLD)
    assert targets(a, 30) == targets(a, 30) == targets(b, 30)
    a.ask(2)  # two pending proposals shift the index by two
    assert targets(a, 10) == targets(b, 12)[2:]
    # a different history changes the shared slots (0.02 is no longer at the teacher)
    c = strategy((0.05, 0.02, 0.1), [*TOLD, (cfg("skip", "t", "t", "t"), 0.01)])
    assert Counter(targets(c, 60))[0.02] < Counter(targets(strategy((0.05, 0.02, 0.1), [*TOLD, (cfg("skip", "t", "t", "t"), 0.5)]), 60))[0.02]


@pytest.mark.parametrize("name", ["ecbo", "evolution"])
def test_a_single_epsilon_is_always_the_target_and_costs_nothing_more(name):
    calls = []

    def counted(c):
        calls.append(c)
        return cost(c)

    s = make_strategy(name, Problem(SPACE, cost=counted, epsilons=(0.05,)), seed=0)
    s.tell([Observation(c, q, cost(c)) for c, q in TOLD])
    calls.clear()  # ecbo tabulates the cost when it is built
    assert set(targets(s, 50)) == {0.05} and calls == []  # no gains computed
    assert s.sweep_gains() == {0.05: 0.0}


def test_a_resumed_sweep_proposes_what_the_original_would():
    history = [Observation(c, q, cost(c)) for c, q in TOLD]
    a = strategy((0.05, 0.02, 0.1), name="evolution")
    a.tell(history)
    first = a.ask(3)
    b = strategy((0.05, 0.02, 0.1), name="evolution")
    b.tell(history)
    b.load_state_dict(strategy((0.05, 0.02, 0.1), TOLD, name="evolution").state_dict())
    assert b.ask(3) == first


def test_the_default_sweep_takes_the_epsilons_in_turn_even_at_the_teacher():
    s = strategy((0.05, 0.02, 0.1), TOLD, sweep="cycle")
    assert Problem(SPACE, cost=cost, epsilons=(0.05, 0.1)).sweep == "cycle"
    start = len(TOLD)
    assert targets(s, 6) == [(0.05, 0.02, 0.1)[(start + j) % 3] for j in range(6)]


def test_an_unknown_sweep_is_refused():
    from tocsr_nas.strategies.base import StrategyError

    with pytest.raises(StrategyError, match="sweep must be one of"):
        Problem(SPACE, cost=cost, epsilons=(0.05,), sweep="greedy")
