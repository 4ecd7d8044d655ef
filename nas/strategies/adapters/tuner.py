"""Shared machinery of the adapters that drive third-party tuners (NNI, Optuna) through ask/tell.

Third-party tuners are single-objective and know nothing of epsilon or of our admissibility
rule, so an adapter:

* folds feasibility into one scalar to minimise (:meth:`TunerAdapter.scalar`):
  ``cost`` if ``quality <= e`` else ``cost_max * (1 + violation)`` with
  ``violation = min((quality - e) / |e|, 10)`` (10 for failed evaluations), ``e`` the primary
  epsilon ``problem.epsilons[0]`` and ``cost_max`` an upper bound of the cost over the space
  (teacher plus every block's dearest single swap), so every feasible configuration beats
  every infeasible one;
* skips what the tuner proposes twice or proposes outside ``admissible`` (reporting it back to the
  tuner at once, so that it learns), retrying ``max_retries`` times before falling back to a
  random unseen admissible configuration;
* keeps a log of every call made to the tuner and, to restore a state, rebuilds the tuner from
  its seed and replays the log. Tuners that draw from the global ``random``/``numpy.random``
  generators get private generator states swapped in around each call.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import Observation, Problem, Strategy, StrategyError

__all__ = ["PopulationOptions", "TunerAdapter", "TunerOptions"]

MAX_VIOLATION = 10.0


def _require_int(options: Any, name: str, minimum: int) -> None:
    value = getattr(options, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StrategyError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class TunerOptions:
    """Options of every tuner adapter: ``max_retries`` suggestions per proposal before a random fallback."""

    max_retries: int = 20

    def __post_init__(self) -> None:
        _require_int(self, "max_retries", 1)


@dataclass(frozen=True)
class PopulationOptions(TunerOptions):
    """Options of a population-based tuner: its ``population_size`` (at least 2)."""

    population_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_int(self, "population_size", 2)


class TunerAdapter(Strategy):
    """Base class: subclasses implement the ``_tuner_*`` hooks; the log replay lives here."""

    def __init__(self, problem: Problem, *, seed: int = 0, **options: Any) -> None:
        super().__init__(problem, seed=seed, **options)
        base = self.space.default_config()
        c0 = float(problem.cost(base))
        dearest = 0.0
        for block in self.space.blocks:
            dearest += max(max(float(problem.cost(base.with_choice(block.path, n))) - c0 for n in block.names), 0.0)
        self.cost_max = max(abs(c0) + dearest, 1e-12)
        self._events: list[list[Any]] = []
        self._reset_tuner()

    # -- the scalar -------------------------------------------------------------------------------
    def scalar(self, obs: Observation) -> float:
        """The value reported to the tuner (lower is better; see the module docstring)."""
        e = self.problem.epsilons[0]
        if obs.feasible(e):
            return float(obs.cost)
        if not math.isfinite(obs.quality):
            violation = MAX_VIOLATION
        else:
            violation = min((obs.quality - e) / max(abs(e), 1e-12), MAX_VIOLATION)
        return self.cost_max * (1.0 + violation)

    def _value(self, obs: Observation) -> Any:
        """What is reported to the tuner for ``obs`` (JSON-serialisable): :meth:`scalar` by default."""
        return self.scalar(obs)

    def _penalty(self, config: Configuration) -> Any:
        """What is reported for a suggestion that is skipped (inadmissible or pending twice)."""
        return self.cost_max * (1.0 + MAX_VIOLATION)

    # -- replayable tuner calls -------------------------------------------------------------------
    def _reset_tuner(self) -> None:
        self._py_state = random.Random(f"{self.name}|{self.seed}|py").getstate()
        self._np_state = np.random.RandomState(self.seed % 2**32).get_state()
        self._ticket_of: dict[Configuration, Any] = {}  # pending configuration -> the tuner's ticket
        self._n_tickets = 0
        with self._private_rng():
            self._tuner_build()

    @contextlib.contextmanager
    def _private_rng(self) -> Iterator[None]:
        saved_py, saved_np = random.getstate(), np.random.get_state()
        random.setstate(self._py_state)
        np.random.set_state(self._np_state)
        try:
            yield
        finally:
            self._py_state, self._np_state = random.getstate(), np.random.get_state()
            random.setstate(saved_py)
            np.random.set_state(saved_np)

    def _suggest(self) -> tuple[Any, Configuration] | None:
        """One suggestion from the tuner (logged); ``None`` when it has no more."""
        self._events.append(["suggest"])
        with self._private_rng():
            got = self._tuner_suggest(self._n_tickets)
        self._n_tickets += 1
        if got is None:
            return None
        ticket, params = got
        return ticket, self.space.decode_nni(params)

    def _report(self, ticket: Any, config: Configuration, value: float) -> None:
        self._events.append(["report", ticket, config.to_json(), value])
        with self._private_rng():
            self._tuner_report(ticket, config, value)

    def _import(self, config: Configuration, value: float) -> None:
        self._events.append(["import", config.to_json(), value])
        with self._private_rng():
            self._tuner_import(config, value)

    # -- Strategy hooks ---------------------------------------------------------------------------
    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        out: list[Configuration] = []
        for _ in range(n):
            chosen = None
            for _ in range(self.options.max_retries):
                got = self._suggest()
                if got is None:
                    break
                ticket, cfg = got
                if cfg in out or self.is_seen(cfg) or not self.problem.is_admissible(cfg):
                    told = self._told.get(cfg)
                    penalty = self._value(told) if told is not None else self._penalty(cfg)
                    self._report(ticket, cfg, penalty)  # teach the tuner at once, then retry
                    continue
                chosen = cfg
                self._ticket_of[cfg] = ticket
                break
            if chosen is None:  # the tuner keeps repeating itself: a random unseen admissible one
                fallback = self._random_unseen(rng, 1, exclude=out)
                if not fallback:
                    break
                chosen = fallback[0]
            out.append(chosen)
        return out

    def _observe(self, observations: Sequence[Observation]) -> None:
        for obs in observations:
            ticket = self._ticket_of.pop(obs.config, None)
            if ticket is not None:
                self._report(ticket, obs.config, self._value(obs))
            else:
                self._import(obs.config, self._value(obs))

    def _extra_state(self) -> dict[str, Any]:
        return {"events": self._events}

    def _load_extra_state(self, extra: Mapping[str, Any], n_told: int) -> None:
        """Rebuild the tuner and replay the saved log; then tell it what was told since."""
        events = extra.get("events", [])
        self._events = []
        self._reset_tuner()
        open_tickets: dict[Any, Configuration] = {}
        for ev in events:
            if ev[0] == "suggest":
                got = self._suggest()
                if got is not None:
                    open_tickets[got[0]] = got[1]
            elif ev[0] == "report":
                ticket, cfg = ev[1], Configuration.from_json(ev[2])
                if open_tickets.pop(ticket, None) != cfg:
                    raise RuntimeError(f"{self.name}: the tuner's replay diverged from the saved log")
                self._report(ticket, cfg, ev[3])
            elif ev[0] == "import":
                self._import(Configuration.from_json(ev[1]), ev[2])
        self._ticket_of = {cfg: ticket for ticket, cfg in open_tickets.items()}
        for obs in self.history[n_told:]:  # told after the state was saved
            self._observe([obs])
        self._ticket_of = {cfg: t for cfg, t in self._ticket_of.items() if cfg in self._pending}

    # -- to implement -----------------------------------------------------------------------------
    def _tuner_build(self) -> None:
        raise NotImplementedError

    def _tuner_suggest(self, index: int) -> tuple[int, Mapping[str, Any]] | None:
        """A ticket (an integer identifying the suggestion to the tuner) and NNI-format parameters."""
        raise NotImplementedError

    def _tuner_report(self, ticket: Any, config: Configuration, value: Any) -> None:
        raise NotImplementedError

    def _tuner_import(self, config: Configuration, value: Any) -> None:
        """Tell the tuner about a configuration it did not suggest (may be a no-op)."""
        raise NotImplementedError

