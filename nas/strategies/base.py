"""The ask/tell interface every search strategy implements, and the registry that names them.

A strategy proposes configurations (:meth:`Strategy.ask`) and learns from their evaluations
(:meth:`Strategy.tell`); the search loop owns evaluation, storage, budget and resume.

The contract (every registered strategy passes ``tests/nas/strategies/test_conformance.py``):

* **Admissible.** Every proposal satisfies ``problem.admissible`` (hard cost bounds and the space's
  constraints); nothing else is ever proposed.
* **New and distinct.** One ``ask(n)`` returns up to ``n`` distinct configurations, none of them
  already told or asked-and-pending. Fewer than ``n`` (an empty list at the end) means the space
  is exhausted (or, for ``exhaustive``, solved).
* **Teacher first.** The first proposal of every strategy is ``space.default_config()`` (the
  teacher, normally feasible), unless it was told already or is not admissible.
* **Deterministic.** Same problem, same seed, same calls (asks and tells, with the same
  observations in the same order) -> the same proposals. Randomness comes from local
  ``random.Random`` / ``torch.Generator`` / ``numpy.random.Generator`` objects; the global RNGs
  are never drawn from (or, for third-party tuners that use them, saved and restored around each
  call).
* **Resumable.** ``state_dict()`` is JSON-serialisable. A fresh instance built with the same
  problem and seed, told the same observations in the same order, then given
  ``load_state_dict(saved)`` proposes exactly what the original instance would have proposed
  next. The native strategies (``ecbo``, ``random``, ``evolution``, ``exhaustive``) are pure
  functions of ``(seed, told history, pending set)``, so for them replaying the tells is enough
  and the state only restores the pending set; the NNI and Optuna adapters keep the log of their
  tuner's calls in the state and replay it.

Order of calls when resuming::

    strategy = make_strategy(name, problem, seed=seed, **options)
    strategy.tell(history)                  # every journal observation, in journal order
    strategy.load_state_dict(saved_state)   # optional for native strategies, needed for adapters
    strategy.ask(n)

``saved_state`` may be older than the history (taken before the last few tells); it must not be
newer. A new strategy is one class::

    @register_strategy("my-search")
    class MySearch(Strategy):
        @dataclass(frozen=True)
        class Options:
            population: int = 10

        def _propose(self, n, rng):
            ...  # return up to n configurations, admissible and not self.is_seen(...)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tocsr_nas.searchspace import Configuration, SearchSpace, TocsrError

__all__ = [
    "Observation",
    "Problem",
    "Strategy",
    "StrategyError",
    "check_sweep",
    "SWEEPS",
    "available_strategies",
    "get_strategy",
    "make_strategy",
    "register_strategy",
]

logger = logging.getLogger(__name__)

STATE_VERSION = 1
#: how a sweep shares its proposals among its epsilons (:attr:`Problem.sweep`)
SWEEPS = ("cycle", "gain")


def check_sweep(sweep: str) -> str:
    """Return ``sweep`` if it is one of :data:`SWEEPS`.

    Raises:
        StrategyError: any other value (the message lists the valid ones).
    """
    if sweep not in SWEEPS:
        raise StrategyError(f"sweep must be one of {list(SWEEPS)}, got {sweep!r}")
    return sweep
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # the shared slots of a sweep: u_g = frac(g * golden)


class StrategyError(TocsrError):
    """A misuse of a strategy: unknown name or option, bad value, inconsistent resume state."""


def _always(config: Configuration) -> bool:
    return True


@dataclass(frozen=True)
class Problem:
    """What a strategy searches: minimise a known cost subject to quality <= epsilon.

    Attributes:
        space: the search space (blocks x choices, constraints).
        cost: the KNOWN objective (GMACs or params), exact and cheap; lower is better.
        epsilons: quality thresholds; a configuration is feasible at ``e`` iff ``quality <= e``.
            One value normally; several in an epsilon sweep (strategies target all of them,
            the single-objective adapters target ``epsilons[0]``, the primary one).
        admissible: hard bounds (max GMACs/params) and the space's constraints; a strategy never
            proposes a configuration for which this is False.
        prior: optional cheap prior, ``block path -> candidate name -> expected quality damage``
            (nonnegative, larger = worse, teacher = 0), e.g. normalised distillation losses or
            single-block sensitivities. Missing entries count as unknown.
        sweep: how a sweep of several epsilons shares the proposals (:data:`SWEEPS`): ``"cycle"``
            (the default) targets them in turn; ``"gain"`` gives half of them to the epsilon that
            stands to gain most (:meth:`Strategy.sweep_gains`). Measured on the demo's library it
            did not beat ``"cycle"`` (``docs/BENCHMARKS.md``, section 4), hence the default.

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> space = SearchSpace.from_choices({"a": ["big", "small"], "b": ["big", "small"]})
        >>> table = {"big": 2.0, "small": 1.0}
        >>> problem = Problem(space, cost=lambda c: sum(table[v] for v in c.values()), epsilons=(0.05,))
        >>> problem.cost(space.default_config())
        4.0
    """

    space: SearchSpace
    cost: Callable[[Configuration], float]
    epsilons: tuple[float, ...]
    admissible: Callable[[Configuration], bool] = _always
    prior: Mapping[str, Mapping[str, float]] | None = None
    sweep: str = "cycle"

    def __post_init__(self) -> None:
        check_sweep(self.sweep)
        if not isinstance(self.space, SearchSpace):
            raise StrategyError(f"Problem.space must be a SearchSpace, got {type(self.space).__name__}")
        if not callable(self.cost) or not callable(self.admissible):
            raise StrategyError("Problem.cost and Problem.admissible must be callables taking a Configuration")
        eps = (self.epsilons,) if isinstance(self.epsilons, (int, float)) else tuple(self.epsilons)
        if not eps:
            raise StrategyError("Problem.epsilons needs at least one threshold")
        try:
            eps = tuple(float(e) for e in eps)
        except (TypeError, ValueError):
            raise StrategyError(f"Problem.epsilons must be numbers, got {self.epsilons!r}") from None
        if any(not math.isfinite(e) for e in eps):
            raise StrategyError(f"Problem.epsilons must be finite, got {eps}")
        object.__setattr__(self, "epsilons", eps)
        if self.prior is not None:
            for path, table in self.prior.items():
                if path not in self.space:
                    raise StrategyError(f"Problem.prior names block {path!r}, which is not in the space")
                block = self.space[path]
                for name, value in table.items():
                    if name not in block.names:
                        raise StrategyError(f"Problem.prior: unknown candidate {name!r} for block {path!r}")
                    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                        raise StrategyError(
                            f"Problem.prior[{path!r}][{name!r}] must be a finite nonnegative number, got {value!r}"
                        )

    def is_admissible(self, config: Configuration) -> bool:
        """Whether ``config`` satisfies the space's constraints and ``admissible``."""
        return self.space.is_valid(config) and bool(self.admissible(config))


@dataclass(frozen=True)
class Observation:
    """One evaluated configuration.

    Attributes:
        config: the configuration.
        quality: lower is better; ``inf``/``nan`` means a failed evaluation (infeasible).
        cost: ``problem.cost(config)``.
    """

    config: Configuration
    quality: float
    cost: float

    def feasible(self, epsilon: float) -> bool:
        """``quality <= epsilon`` (a failed evaluation is never feasible)."""
        return math.isfinite(self.quality) and self.quality <= epsilon


# -- registry ---------------------------------------------------------------------------------------
_REGISTRY: dict[str, type["Strategy"]] = {}
_HOW_TO_REGISTER = "define a Strategy subclass decorated with @tocsr_nas.strategies.register_strategy('name')"


def register_strategy(name: str) -> Callable[[type["Strategy"]], type["Strategy"]]:
    """Class decorator: make a :class:`Strategy` subclass available under ``name``.

    Raises:
        StrategyError: ``name`` is already registered.
    """
    if not isinstance(name, str) or not name:
        raise StrategyError("a strategy name is a non-empty string")

    def decorate(cls: type["Strategy"]) -> type["Strategy"]:
        if name in _REGISTRY:
            raise StrategyError(f"strategy {name!r} is already registered (by {_REGISTRY[name].__qualname__})")
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise StrategyError(f"@register_strategy({name!r}) needs a Strategy subclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_strategies() -> list[str]:
    """Registered strategy names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type["Strategy"]:
    """The strategy class registered under ``name``.

    Raises:
        StrategyError: unknown name (the message lists the valid ones and how to register one).
    """
    _load_builtin()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise StrategyError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(_REGISTRY))} (to add one, {_HOW_TO_REGISTER})"
        ) from None


def make_strategy(name: str, problem: Problem, *, seed: int = 0, **options: Any) -> "Strategy":
    """Build the strategy ``name`` for ``problem``; unknown or invalid options are :class:`StrategyError`.

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> space = SearchSpace.from_choices({"a": ["x", "y"], "b": ["x", "y"]})
        >>> s = make_strategy("random", Problem(space, cost=lambda c: 1.0, epsilons=(0.1,)), seed=1)
        >>> s.ask(1)[0] == space.default_config()
        True
    """
    return get_strategy(name)(problem, seed=seed, **options)


def _load_builtin() -> None:
    import tocsr_nas.strategies  # noqa: F401  (registers the built-in strategies)


# -- the interface ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoOptions:
    """A strategy without options."""


class Strategy(ABC):
    """Base class of search strategies: propose with :meth:`ask`, learn with :meth:`tell`.

    Subclasses implement :meth:`_propose` (and optionally :meth:`_observe`, :meth:`_extra_state`,
    :meth:`_load_extra_state`) and declare their options as a frozen dataclass ``Options``
    (validated in ``__post_init__``, raising :class:`StrategyError`).

    Args:
        problem: what to search.
        seed: the seed of every random choice the strategy makes.
        **options: keyword-only options, the fields of ``Options``; unknown ones are errors.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, problem: Problem, *, seed: int = 0, **options: Any) -> None:
        if not isinstance(problem, Problem):
            raise StrategyError(f"a strategy needs a Problem, got {type(problem).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise StrategyError(f"seed must be an integer, got {seed!r}")
        self.options = self.parse_options(**options)
        self.problem = problem
        self.space = problem.space
        self.seed = seed
        self.history: list[Observation] = []
        self._told: dict[Configuration, Observation] = {}
        self._pending: dict[Configuration, None] = {}
        self._n_asks = 0

    @classmethod
    def parse_options(cls, **options: Any) -> Any:
        """The strategy's ``Options`` from keyword options, checked without a problem.

        A command checks its ``--strategy-option`` values with this before it writes anything.

        Returns:
            An instance of ``cls.Options``.

        Raises:
            StrategyError: an unknown option (the message lists the valid ones) or an invalid value.
        """
        valid = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise StrategyError(f"strategy {cls.name!r}: unknown option(s) {unknown}; valid: {sorted(valid) or 'none'}")
        try:
            return cls.Options(**options)
        except TypeError as exc:
            raise StrategyError(f"strategy {cls.name!r}: {exc}") from None

    # -- public API -------------------------------------------------------------------------------
    def ask(self, n: int = 1, *, pending: Iterable[Configuration | Mapping[str, str]] = ()) -> list[Configuration]:
        """Propose up to ``n`` distinct, new, admissible configurations (empty list: done).

        Every proposal stays pending (:attr:`pending`, :meth:`is_seen`) until it is told, so the
        ``q`` proposals of a batch evaluated in parallel are distinct and none is proposed again
        while it is evaluated; ``ecbo`` also conditions its model on them (kriging believer).

        Args:
            n: how many proposals.
            pending: configurations being evaluated that this strategy did not propose (e.g. by
                another driver); they become pending too and are not proposed.

        Raises:
            StrategyError: ``n`` is not a positive integer, or a pending configuration is not of the space.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise StrategyError(f"ask(n) needs a positive integer n, got {n!r}")
        for cfg in pending:
            try:
                cfg = cfg if isinstance(cfg, Configuration) else self.space.validate(cfg)
            except TocsrError as exc:
                raise StrategyError(f"ask(pending=...): {exc}") from None
            if cfg not in self._told:
                self._pending[cfg] = None
        rng = self._rng("ask")
        out: list[Configuration] = []
        teacher = self.space.default_config()
        if not self.is_seen(teacher) and self.problem.is_admissible(teacher):
            out.append(teacher)
            self._pending[teacher] = None
        if len(out) < n:
            proposed = self._propose(n - len(out), rng)
            for cfg in proposed:
                if not isinstance(cfg, Configuration):
                    cfg = self.space.validate(cfg)
                if self.is_seen(cfg) or cfg in out:
                    raise RuntimeError(f"strategy {self.name!r} proposed a configuration twice: {cfg.to_json()}")
                if not self.problem.is_admissible(cfg):
                    raise RuntimeError(f"strategy {self.name!r} proposed an inadmissible configuration: {cfg.to_json()}")
                out.append(cfg)
                self._pending[cfg] = None
            if len(out) > n:
                raise RuntimeError(f"strategy {self.name!r} proposed {len(out)} configurations for ask({n})")
        self._n_asks += 1
        return out

    def tell(self, observations: Observation | Iterable[Observation]) -> None:
        """Learn from evaluated configurations (asked by this strategy or not).

        ``nan`` quality is stored as ``inf`` (a failed evaluation). A configuration told twice
        keeps its first observation.

        Raises:
            StrategyError: something that is not an :class:`Observation` of this space.
        """
        if isinstance(observations, Observation):
            observations = [observations]
        new: list[Observation] = []
        for obs in observations:
            if not isinstance(obs, Observation):
                raise StrategyError(f"tell() takes Observation objects, got {type(obs).__name__}")
            cfg = obs.config if isinstance(obs.config, Configuration) else Configuration(obs.config)
            quality = float(obs.quality)
            if math.isnan(quality):
                quality = math.inf
            obs = Observation(cfg, quality, float(obs.cost))
            if cfg in self._told:
                logger.warning("strategy %s: configuration %s told twice; keeping the first result", self.name, cfg.hash)
                continue
            self._pending.pop(cfg, None)
            self._told[cfg] = obs
            self.history.append(obs)
            new.append(obs)
        if new:
            self._observe(new)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; see the module docstring for how resuming works."""
        return {
            "strategy": self.name,
            "version": STATE_VERSION,
            "seed": self.seed,
            "space_hash": self.space.hash,
            "n_told": len(self.history),
            "history_digest": self._history_digest(len(self.history)),
            "n_asks": self._n_asks,
            "pending": [c.to_json() for c in self._pending],
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output after telling this instance the same history.

        Raises:
            StrategyError: the state belongs to another strategy, seed or space, or to a history
                that is not a prefix of the one told to this instance.
        """
        if not isinstance(state, Mapping) or "strategy" not in state:
            raise StrategyError("not a strategy state (expected the dict that state_dict() returned)")
        if state["strategy"] != self.name:
            raise StrategyError(f"the saved state is of strategy {state['strategy']!r}, not {self.name!r}")
        if state.get("version") != STATE_VERSION:
            raise StrategyError(f"strategy state version {state.get('version')!r} is not supported (expected {STATE_VERSION})")
        if state["seed"] != self.seed:
            raise StrategyError(f"the saved state used seed {state['seed']}, this strategy seed {self.seed}")
        if state["space_hash"] != self.space.hash:
            raise StrategyError("the saved state belongs to another search space (hash mismatch)")
        n_told = int(state["n_told"])
        if n_told > len(self.history) or state["history_digest"] != self._history_digest(n_told):
            raise StrategyError(
                f"the saved state follows {n_told} observations, but this instance was told {len(self.history)} "
                "that do not start with them; tell() the full history, in order, before load_state_dict()"
            )
        pending = [Configuration.from_json(text) for text in state["pending"]]
        self._pending = {c: None for c in pending if c not in self._told}
        self._n_asks = int(state["n_asks"])
        self._load_extra_state(state.get("extra") or {}, n_told)

    # -- helpers for subclasses -------------------------------------------------------------------
    def is_seen(self, config: Configuration) -> bool:
        """Told already, or asked and pending."""
        return config in self._told or config in self._pending

    @property
    def pending(self) -> list[Configuration]:
        return list(self._pending)

    def best_feasible(self, epsilon: float) -> Observation | None:
        """The cheapest told observation feasible at ``epsilon`` (first told wins ties)."""
        best = None
        for obs in self.history:
            if obs.feasible(epsilon) and (best is None or obs.cost < best.cost):
                best = obs
        return best

    def target_epsilon(self, offset: int = 0) -> float:
        """The epsilon a proposal targets: the only one, or in a sweep the next in turn
        (``problem.sweep == "cycle"``) or the one that stands to gain most (``"gain"``).

        With ``"gain"``, proposal ``k = told + pending + offset`` of a sweep of ``m`` epsilons falls in a cycle of
        ``2 m`` proposals. The first ``m`` of each cycle go to ``problem.epsilons`` in turn (a floor:
        every epsilon gets at least half its fair share, ``1 / (2 m)`` of the proposals); the other
        ``m`` are shared by :meth:`sweep_gains`: an epsilon with nothing cheaper than the teacher
        yet takes them all (several such epsilons take turns), otherwise each epsilon gets a share
        proportional to its estimated gain (drawn with a golden-ratio sequence over the shared
        slots, so no random number is used). The answer is a function of (told history, pending
        count, offset), as resuming requires; a single epsilon is always returned as is.

        Example:
            >>> from tocsr_nas.searchspace import SearchSpace
            >>> space = SearchSpace.from_choices({"a": ["big", "small"], "b": ["big", "small"]})
            >>> table = {"big": 2.0, "small": 1.0}
            >>> cost = lambda c: sum(table[v] for v in c.values())
            >>> s = make_strategy("random", Problem(space, cost=cost, epsilons=(0.02, 0.1), sweep="gain"))
            >>> s.tell([Observation(space.default_config(), 0.0, 4.0),
            ...         Observation(space.validate({"a": "small", "b": "big"}), 0.05, 3.0)])
            >>> s.sweep_gains()  # 0.02: still the teacher; 0.1: log(4 / 3) / log(0.1 / 0.02)
            {0.02: inf, 0.1: 0.17874692166080078}
            >>> [s.target_epsilon(j) for j in range(4)]  # proposals 2-5: two shared (0.02), a floor cycle
            [0.02, 0.02, 0.02, 0.1]
        """
        eps = self.problem.epsilons
        if len(eps) == 1:
            return eps[0]
        m = len(eps)
        if self.problem.sweep == "cycle":
            return eps[(len(self.history) + len(self._pending) + offset) % m]
        cycle, slot = divmod(len(self.history) + len(self._pending) + offset, 2 * m)
        if slot < m:
            return eps[slot]
        g = cycle * m + slot - m  # the index of this proposal among the shared ones
        gains = self.sweep_gains()
        starved = [e for e in eps if gains[e] == math.inf]
        if starved:
            return starved[g % len(starved)]
        total = sum(gains.values())
        if total <= 0:
            return eps[g % m]
        u, acc = (g * _GOLDEN) % 1.0, 0.0
        for e in eps:
            acc += gains[e] / total
            if u < acc:
                return e
        return max(eps, key=lambda e: gains[e])

    def sweep_gains(self) -> dict[float, float]:
        """What each epsilon of the sweep still stands to gain, from the told history.

        ``inf`` for an epsilon at which nothing cheaper than the teacher is feasible yet. Otherwise
        the steepness of the sweep's trade-off next to it: with ``b(e)`` the best feasible cost at
        ``e``, the gain of ``e`` is ``log(b(e) / b(e')) / log(e' / e)`` for the next larger epsilon
        ``e'`` (how much cheaper ``e'`` already is, per step of epsilon), and the largest epsilon
        takes the value of the pair below it (one more step of the same trade-off). On a trade-off
        that is a straight line in log-log every epsilon gains as much as the others (the sweep is
        shared evenly); an epsilon that lags behind the next larger one gains more. The fraction
        ``(b(e) - b(e')) / b(e)`` without the step favoured the smallest epsilon (it always lags:
        it is harder), and the space's cheapest cost is no reachable target for the largest
        (``docs/BENCHMARKS.md``, section 4).

        Returns:
            ``{epsilon: gain}`` for every epsilon of ``problem.epsilons`` (``0.0`` for a lone one).
        """
        teacher_cost = float(self.problem.cost(self.space.default_config()))
        best: dict[float, float] = {}
        for e in self.problem.epsilons:
            b = self.best_feasible(e)
            best[e] = teacher_cost if b is None else min(b.cost, teacher_cost)
        order = sorted(set(self.problem.epsilons))
        gains: dict[float, float] = {}
        for e in self.problem.epsilons:
            if best[e] >= teacher_cost:
                gains[e] = math.inf
                continue
            i = order.index(e)
            if i + 1 < len(order):
                lo, hi = e, order[i + 1]
            elif i > 0:
                lo, hi = order[i - 1], e
            else:
                gains[e] = 0.0
                continue
            step = math.log(hi / lo) if lo > 0 else hi - lo
            ok = best[hi] > 0 and best[lo] > 0
            gains[e] = max(0.0, math.log(best[lo] / best[hi]) / step) if ok else 0.0
        return gains

    def _rng(self, purpose: str) -> random.Random:
        """A local RNG that depends only on (strategy, seed, purpose, told count, pending count)."""
        key = f"{self.name}|{self.seed}|{purpose}|{len(self.history)}|{len(self._pending)}"
        return random.Random(hashlib.sha256(key.encode()).hexdigest())

    def _random_unseen(self, rng: random.Random, n: int, *, max_tries: int = 2000, exclude: Iterable[Configuration] = ()) -> list[Configuration]:
        """Up to ``n`` uniformly random admissible configurations, unseen and not in ``exclude``."""
        out: list[Configuration] = []
        taken = set(exclude)
        tries = 0
        while len(out) < n and tries < max_tries:
            tries += 1
            cfg = Configuration({b.path: rng.choice(b.choices).name for b in self.space.blocks})
            if cfg in taken or self.is_seen(cfg) or not self.problem.is_admissible(cfg):
                continue
            taken.add(cfg)
            out.append(cfg)
        if len(out) < n and self.space.size <= 200_000:
            # few admissible configurations left: find them by enumeration (deterministic order)
            for cfg in self.space.enumerate(limit=200_000):
                if len(out) >= n:
                    break
                if cfg not in taken and not self.is_seen(cfg) and self.problem.is_admissible(cfg):
                    taken.add(cfg)
                    out.append(cfg)
        return out

    def _history_digest(self, n: int) -> str:
        h = hashlib.sha256()
        for obs in self.history[:n]:
            h.update(obs.config.hash.encode())
        return h.hexdigest()[:16]

    # -- to implement -----------------------------------------------------------------------------
    @abstractmethod
    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        """Up to ``n`` distinct admissible configurations that are not :meth:`is_seen`.

        ``rng`` is a fresh local generator derived from (seed, history length, pending count);
        a native strategy that draws only from it is resumable by replaying tells.
        """

    def _observe(self, observations: Sequence[Observation]) -> None:
        """Hook: new observations were appended to :attr:`history`."""

    def _extra_state(self) -> dict[str, Any]:
        """Hook: JSON-serialisable state beyond (seed, history, pending)."""
        return {}

    def _load_extra_state(self, extra: Mapping[str, Any], n_told: int) -> None:
        """Hook: restore :meth:`_extra_state` saved after the first ``n_told`` observations."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, seed={self.seed}, told={len(self.history)}, pending={len(self._pending)})"
