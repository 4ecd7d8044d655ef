"""How a sweep shares its proposals between epsilons (``Strategy.target_epsilon``, ``sweep_gains``)."""

import math
from collections import Counter

import pytest

from tocsr_nas.searchspace import SearchSpace
from tocsr_nas.strategies import Observation, Problem, make_strategy

PRICE = {"t": 4.0, "half": 2.0, "skip": 1.0}
SPACE = SearchSpace.from_choices({f"b{i}": list(PRICE) for i in range(4)})
TEACHER_COST = 16.0


def cost(config):
    return sum(PRICE[v] for v in config.values())


def cfg(*names):
    return SPACE.validate({f"b{i}": n for i, n in enumerate(names)})


def strategy(epsilons, told=(), name="random"):
    s = make_strategy(name, Problem(SPACE, cost=cost, epsilons=epsilons), seed=0)
    s.tell([Observation(c, q, cost(c)) for c, q in told])
    return s


def targets(s, n):
    return [s.target_epsilon(j) for j in range(n)]


# the teacher, one configuration feasible at 0.05 and 0.1 (cost 14), one only at 0.1 (cost 10); the cheapest configuration costs 4
TOLD = [(cfg("t", "t", "t", "t"), 0.0), (cfg("half", "t", "t", "t"), 0.03), (cfg("half", "half", "half", "t"), 0.08)]


def test_an_epsilon_still_at_the_teacher_gets_every_shared_proposal():
    s = strategy((0.05, 0.02, 0.1), TOLD)
    gains = s.sweep_gains()
    assert gains[0.02] == math.inf
    assert gains[0.05] == pytest.approx((14 - 10) / 14)
    assert gains[0.1] == pytest.approx(1 - 10 / 14)  # the largest: one more step of 14 -> 10
    counts = Counter(targets(s, 60))  # 10 cycles of 6: 3 floor slots, 3 shared
    assert counts == {0.02: 40, 0.05: 10, 0.1: 10}


def test_the_largest_epsilon_is_not_promised_below_the_space_s_cheapest_cost():
    s = strategy((0.05, 0.1), [*TOLD[:2], (cfg("skip", "skip", "half", "skip"), 0.08)])  # 14, then 5
    assert s.sweep_gains()[0.1] == pytest.approx((5 - 4) / 5)  # 5 * 5 / 14 < 4, the cheapest
    assert strategy((0.05, 0.1), TOLD[:1]).sweep_gains() == {0.05: math.inf, 0.1: math.inf}


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
    s = strategy((0.05,), TOLD, name=name)
    assert set(targets(s, 50)) == {0.05}
    s.ask(2)
    assert s.sweep_gains() == {0.05: pytest.approx((14 - 4) / 14)} and s._cheapest is not None  # computed only on request
    t = strategy((0.05,), TOLD, name=name)
    t.ask(2)
    assert t._cheapest is None  # proposing never computed it


def test_a_resumed_sweep_proposes_what_the_original_would():
    history = [Observation(c, q, cost(c)) for c, q in TOLD]
    a = strategy((0.05, 0.02, 0.1), name="evolution")
    a.tell(history)
    first = a.ask(3)
    b = strategy((0.05, 0.02, 0.1), name="evolution")
    b.tell(history)
    b.load_state_dict(strategy((0.05, 0.02, 0.1), TOLD, name="evolution").state_dict())
    assert b.ask(3) == first
