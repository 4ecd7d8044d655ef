"""The strategy conformance kit: small synthetic landscapes, the checks, and a runner.

Every registered strategy passes these checks (``tests/nas/strategies/test_conformance.py``
runs them all); a researcher's new strategy gets them by import, without pytest::

    import my_strategies  # noqa: F401  (registers "cheapest-of-k")
    from tocsr_nas.strategies.testing import run_conformance
    run_conformance("cheapest-of-k")  # AssertionError naming the failed check, or None

The checks (each takes ``(name, options)`` and raises ``AssertionError`` saying what differs;
:data:`CHECKS` maps their names to them, :func:`conformance_checks` lists the names):

* :func:`check_teacher_first`: the first proposal is the teacher, a batch is distinct.
* :func:`check_admissible_no_repeats`: nothing inadmissible, invalid or repeated is proposed.
* :func:`check_same_seed_same_trials`: the same seed gives the same trials.
* :func:`check_state_round_trip`: the state round-trips through JSON into a fresh instance.
* :func:`check_rejects_foreign_history`: ``load_state_dict`` refuses a state of another history.
* :func:`check_failed_evaluations`: failed (``inf`` / ``nan``) evaluations are survived.
* :func:`check_exhausts_tiny_space`: a tiny space is visited completely, then ``ask`` is empty.
* :func:`check_unknown_option`: an unknown option is a :class:`StrategyError`.
* :func:`check_epsilon_sweep`: a sweep of two epsilons proposes distinct configurations.

The landscapes: ``chain(blocks, options, seed)``: additive cost; quality = per-block damage +
neighbour-pair terms, with teacher (option 0) = no damage. ``small()`` is the 8 x 3 landscape of
the checks, with one interaction (blocks 2 and 3 together hurt more than apart).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from tocsr_nas.searchspace import Configuration, MaxCount, SearchSpace
from tocsr_nas.strategies import Observation, Problem, Strategy, StrategyError, make_strategy

__all__ = [
    "Landscape",
    "chain",
    "small",
    "small_constrained",
    "FAST_OPTIONS",
    "build",
    "drive",
    "one_torch_thread",
    "check_teacher_first",
    "check_admissible_no_repeats",
    "check_same_seed_same_trials",
    "check_state_round_trip",
    "check_rejects_foreign_history",
    "check_failed_evaluations",
    "check_exhausts_tiny_space",
    "check_unknown_option",
    "check_epsilon_sweep",
    "CHECKS",
    "conformance_checks",
    "run_conformance",
]


class Landscape:
    def __init__(self, cost: np.ndarray, damage: np.ndarray, pairs: np.ndarray, epsilon: float, constraints=()) -> None:
        self.cost_table, self.damage, self.pairs, self.epsilon = cost, damage, pairs, epsilon  # (B, K), (B, K), (B-1,)
        B, K = cost.shape
        names = ["teacher"] + [f"c{k}" for k in range(1, K)]
        self.space = SearchSpace.from_choices({f"b{b}": names for b in range(B)}, constraints, name="landscape")

    def idx(self, cfg: Configuration) -> np.ndarray:
        return np.array(self.space.encode(cfg))

    def cost(self, cfg: Configuration) -> float:
        i = self.idx(cfg)
        return float(self.cost_table[np.arange(len(i)), i].sum())

    def quality(self, cfg: Configuration) -> float:
        i = self.idx(cfg)
        d = self.damage[np.arange(len(i)), i]
        s = np.sqrt(d)
        return float(d.sum() + (self.pairs * s[:-1] * s[1:]).sum())

    def problem(self, *, max_cost: float | None = None, prior: bool = False, epsilons=None) -> Problem:
        admissible = (lambda c: self.cost(c) <= max_cost) if max_cost is not None else (lambda c: True)
        table = None
        if prior:
            table = {b.path: {n: float(self.damage[i, k]) for k, n in enumerate(b.names)} for i, b in enumerate(self.space.blocks)}
        return Problem(self.space, cost=self.cost, epsilons=tuple(epsilons or (self.epsilon,)), admissible=admissible, prior=table)

    def observe(self, cfg: Configuration) -> Observation:
        return Observation(cfg, self.quality(cfg), self.cost(cfg))

    def optimum(self, max_cost: float = math.inf) -> float:
        return min(
            self.cost(c) for c in self.space.enumerate() if self.quality(c) <= self.epsilon and self.cost(c) <= max_cost
        )


def chain(blocks: int, options: int, seed: int, *, fraction: float = 0.15, constraints=()) -> Landscape:
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 0.5, size=blocks)
    frac = np.sort(rng.uniform(0.0, 1.0, size=(blocks, options - 1)), axis=1)[:, ::-1]
    frac[:, -1] *= 0.1  # the cheapest option is nearly free
    frac = np.concatenate([np.ones((blocks, 1)), frac], axis=1)  # (B, K), decreasing
    cost = w[:, None] * frac
    sens = rng.lognormal(0.0, 1.0, size=blocks)
    damage = sens[:, None] * (1.0 - frac) ** rng.uniform(0.6, 2.0, size=(blocks, 1)) * rng.lognormal(0, 0.25, size=(blocks, options))
    damage[:, 0] = 0.0
    epsilon = 0.05
    damage *= epsilon / (fraction * damage[:, -1].sum())
    pairs = rng.normal(0.4, 0.3, size=blocks - 1)
    return Landscape(cost, damage, pairs, epsilon, constraints)


def small(constraints=()) -> Landscape:
    """8 blocks x 3 options, one strong interaction between blocks 2 and 3."""
    cost = np.array([[4.0, 2.0, 0.5], [3.0, 1.5, 0.3], [5.0, 2.0, 0.2], [5.0, 2.5, 0.2],
                     [2.0, 1.0, 0.1], [3.0, 1.0, 0.5], [4.0, 3.0, 1.0], [1.0, 0.5, 0.0]])
    damage = np.array([[0, 0.004, 0.02], [0, 0.002, 0.008], [0, 0.006, 0.015], [0, 0.006, 0.015],
                       [0, 0.001, 0.03], [0, 0.003, 0.006], [0, 0.001, 0.003], [0, 0.01, 0.05]])
    pairs = np.zeros(7)
    pairs[2] = 2.0  # blocks 2 and 3 interact
    return Landscape(cost, damage, pairs, 0.03, constraints)


def small_constrained() -> Landscape:
    """``small()`` with a space constraint: at most two blocks at their cheapest option."""
    return small(constraints=[MaxCount(candidate="c2", count=2)])


# ---------------------------------------------------------------------- the conformance checks
#: Options that keep the built-in strategies fast on the tiny landscapes (``build``'s default).
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "ecbo": {"pool_random": 200, "pool_local": 100, "posterior_tables": 4, "local_steps": 3, "n_local_starts": 4},
    # Ax's BoTorch step takes seconds to minutes on a loaded CPU: the checks run its Sobol phase
    # (tests/nas/strategies/test_ax.py drives a few BoTorch steps)
    "ax": {"initialization_budget": 40},
}


def build(name: str, problem: Problem, seed: int = 0, options: Mapping[str, Any] | None = None) -> Strategy:
    """``make_strategy(name, problem, seed=seed, **options)``; options default to :data:`FAST_OPTIONS`."""
    options = FAST_OPTIONS.get(name, {}) if options is None else options
    return make_strategy(name, problem, seed=seed, **options)


def drive(strategy: Strategy, land: Landscape, steps: int, batch: int = 1, fail_every: int = 0) -> list[Configuration]:
    """Ask/tell ``steps`` evaluations in batches; every ``fail_every``-th evaluation fails (``inf``).

    Returns:
        The proposed configurations in order (fewer than ``steps`` if the strategy ran out).
    """
    trials: list[Configuration] = []
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


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread inside the block, if torch is importable.

    GP-based strategies (ecbo, optuna-gp) work on tiny matrices here: one thread avoids
    oversubscribing a shared CPU (tens of times faster there).
    """
    try:
        import torch
    except ImportError:  # a torch-free strategy needs nothing
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_teacher_first(name: str, options: Mapping[str, Any] | None = None) -> None:
    """The first proposal is ``space.default_config()``; a batch of two is two distinct configurations."""
    land = small()
    first = build(name, land.problem(), options=options).ask(2)
    assert first and first[0] == land.space.default_config(), f"first proposal is not the teacher: {first[:1]}"
    assert len(first) == 2 and first[0] != first[1], f"ask(2) gave {len(first)} or repeated configurations"


def check_admissible_no_repeats(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Under a cost bound (the teacher inadmissible) and a space constraint: 14 distinct, valid, admissible trials."""
    land = small_constrained()
    bound = 0.7 * land.cost(land.space.default_config())  # the teacher itself is inadmissible
    trials = drive(build(name, land.problem(max_cost=bound), seed=3, options=options), land, 14, batch=2)
    assert len(trials) == 14, f"stopped after {len(trials)} of 14 trials"
    assert len(set(trials)) == len(trials), "a configuration was proposed twice"
    for cfg in trials:
        assert land.cost(cfg) <= bound, f"inadmissible proposal (cost above the bound): {cfg.to_json()}"
        assert land.space.is_valid(cfg), f"proposal breaks a space constraint: {cfg.to_json()}"
    assert land.space.default_config() not in trials, "the inadmissible teacher was proposed"


def check_same_seed_same_trials(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Two instances with the same seed propose the same trials."""
    land = small()
    a = drive(build(name, land.problem(), seed=7, options=options), land, 10, batch=2)
    b = drive(build(name, land.problem(), seed=7, options=options), land, 10, batch=2)
    assert a == b, "the same seed gave different trials"


def check_state_round_trip(name: str, options: Mapping[str, Any] | None = None) -> None:
    """``state_dict`` -> JSON -> a fresh instance told the same history: same pending, same next proposals."""
    land = small()
    original = build(name, land.problem(), seed=5, options=options)
    drive(original, land, 6, batch=2)
    pending = original.ask(2)  # asked, not told: part of the state
    state = json.loads(json.dumps(original.state_dict()))

    fresh = build(name, land.problem(), seed=5, options=options)
    fresh.tell(list(original.history))
    fresh.load_state_dict(state)
    assert fresh.pending == pending, "the pending proposals did not survive the round trip"
    assert fresh.ask(3) == original.ask(3), "the restored instance proposes something else"
    # and the two stay in step after telling the same results
    for s in (original, fresh):
        s.tell([land.observe(c) for c in s.pending])
    assert fresh.ask(2) == original.ask(2), "the restored instance drifted after the same tells"


def check_rejects_foreign_history(name: str, options: Mapping[str, Any] | None = None) -> None:
    """``load_state_dict`` on an instance that was told nothing raises a StrategyError about ``tell``."""
    land = small()
    original = build(name, land.problem(), seed=5, options=options)
    drive(original, land, 4)
    state = original.state_dict()
    other = build(name, land.problem(), seed=5, options=options)
    try:
        other.load_state_dict(state)  # nothing told: the history does not match
    except StrategyError as exc:
        assert "tell" in str(exc), f"the error does not say to tell the history first: {exc}"
    else:
        raise AssertionError("load_state_dict accepted the state of a history this instance was never told")


def check_failed_evaluations(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Every third evaluation fails (``inf``), then one ``nan``: still distinct trials and a next proposal."""
    land = small()
    strategy = build(name, land.problem(), seed=1, options=options)
    trials = drive(strategy, land, 10, fail_every=3)
    assert len(set(trials)) == len(trials) == 10, f"{len(set(trials))} distinct of {len(trials)} trials (want 10)"
    strategy.tell([Observation(c, float("nan"), land.cost(c)) for c in strategy.ask(1)])
    assert len(strategy.ask(1)) == 1, "no proposal after a nan evaluation"


def check_exhausts_tiny_space(name: str, options: Mapping[str, Any] | None = None) -> None:
    """With nothing ever feasible, a 2 x 3 space is visited completely, then ``ask`` returns ``[]``."""
    space = SearchSpace.from_choices({"a": ["t", "x"], "b": ["t", "x", "y"]})
    problem = Problem(space, cost=lambda c: 1.0 + (c["a"] == "t") + (c["b"] == "t"), epsilons=(-1.0,))
    strategy = build(name, problem, options=options)  # nothing is ever feasible: even exhaustive visits everything
    seen: list[Configuration] = []
    for _ in range(10):
        batch = strategy.ask(2)
        if not batch:
            break
        seen += batch
        strategy.tell([Observation(c, 1.0, problem.cost(c)) for c in batch])
    assert sorted(c.to_json() for c in seen) == sorted(c.to_json() for c in space.enumerate()), (
        f"visited {len(seen)} configurations, not the space's {sum(1 for _ in space.enumerate())} once each"
    )
    assert strategy.ask(1) == [], "ask proposed something after the space was exhausted"


def check_unknown_option(name: str, options: Mapping[str, Any] | None = None) -> None:
    """``make_strategy(name, ..., no_such_option=1)`` raises a StrategyError saying ``unknown option``."""
    try:
        make_strategy(name, small().problem(), no_such_option=1)
    except StrategyError as exc:
        assert "unknown option" in str(exc), f"the error does not say 'unknown option': {exc}"
    else:
        raise AssertionError("an unknown option was accepted")


def check_epsilon_sweep(name: str, options: Mapping[str, Any] | None = None) -> None:
    """A problem with two epsilons: 8 distinct trials."""
    land = small()
    trials = drive(build(name, land.problem(epsilons=(0.01, 0.03)), seed=2, options=options), land, 8, batch=2)
    assert len(set(trials)) == 8, f"{len(set(trials))} distinct trials of 8 under an epsilon sweep"


#: Check name -> check; every check takes ``(strategy name, options or None)``.
CHECKS: dict[str, Callable[[str, Mapping[str, Any] | None], None]] = {
    "teacher_first": check_teacher_first,
    "admissible_no_repeats": check_admissible_no_repeats,
    "same_seed_same_trials": check_same_seed_same_trials,
    "state_round_trip": check_state_round_trip,
    "rejects_foreign_history": check_rejects_foreign_history,
    "failed_evaluations": check_failed_evaluations,
    "exhausts_tiny_space": check_exhausts_tiny_space,
    "unknown_option": check_unknown_option,
    "epsilon_sweep": check_epsilon_sweep,
}


def conformance_checks() -> list[str]:
    """The names of the checks, in the order :func:`run_conformance` runs them.

    >>> conformance_checks()[:2]
    ['teacher_first', 'admissible_no_repeats']
    """
    return list(CHECKS)


def run_conformance(name: str, options: Mapping[str, Any] | None = None, *, checks: Iterable[str] | None = None) -> None:
    """Run every check (or those named in ``checks``) on the registered strategy ``name``, one torch thread.

    Args:
        name: a registered strategy name (import the module that registers it first).
        options: strategy options for every instance; ``None``: :data:`FAST_OPTIONS` for built-ins.
        checks: check names (see :func:`conformance_checks`); ``None``: all.

    Raises:
        AssertionError: the first failed check, named in the message (the original error chained).
        KeyError: an unknown check name.
    """
    names = conformance_checks() if checks is None else list(checks)
    unknown = [c for c in names if c not in CHECKS]
    if unknown:
        raise KeyError(f"unknown conformance check(s) {unknown}; known: {conformance_checks()}")
    with one_torch_thread():
        for check in names:
            try:
                CHECKS[check](name, options)
            except Exception as exc:  # an assertion, or the strategy raising where it should not
                raise AssertionError(f"strategy {name!r} fails conformance check {check!r}: {exc!r}") from exc
