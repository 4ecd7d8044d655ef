"""Ax (``ax-platform``) as a strategy: ``ax``, Bayesian optimisation with an outcome constraint.

Optional: registered only where the ``ax`` package is installed (``pip install
'tocsr-nas[bench]'``), found without importing it: importing Ax costs 10 s and more (it pulls in
BoTorch and SQLAlchemy), so Ax itself is imported when an ``ax`` strategy is built, and
:func:`require_ax` raises a :class:`~tocsr_nas.strategies.base.StrategyError` saying how to
install it where it is missing.

One in-memory ``ax.api.Client`` per strategy, seeded with ``random_seed=seed``: every block is
an unordered ``ChoiceParameterConfig``, the objective is ``-cost`` (minimise the known cost, which
Ax models like any other metric), the outcome constraint ``quality <= e`` (``e`` the primary
epsilon; a failed evaluation reports ``e + 10 |e|``). The generation strategy is Ax's ``fast``
method (Sobol initialisation, then BoTorch) with ``initialization_budget`` trials counting those
it did not suggest. Configurations Ax did not suggest (the teacher, which every strategy proposes
first, and random fallbacks) are attached with ``attach_trial`` and completed at once. Skipping
repeats and replaying the call log to restore a state is
:class:`~tocsr_nas.strategies.adapters.tuner.TunerAdapter`'s; Ax refits its model on every
suggestion, so ``max_retries`` defaults to 3 (then a random unseen configuration).

Ax's loggers are set to WARNING on import (one INFO line per trial otherwise).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.adapters.tuner import MAX_VIOLATION, TunerAdapter, TunerOptions, _require_int
from tocsr_nas.strategies.base import Observation, StrategyError, register_strategy

__all__ = ["AxOptions", "AxStrategy", "require_ax"]

INSTALL_HINT = "the 'ax' strategy needs ax-platform: pip install 'tocsr-nas[bench]' (or pip install ax-platform)"


def require_ax() -> None:
    """Import Ax, quieten its loggers.

    Raises:
        StrategyError: Ax is not installed (the message says how to install it).
    """
    try:
        import ax  # noqa: F401
        from ax.utils.common.logger import set_ax_logger_levels
    except ImportError as exc:
        raise StrategyError(INSTALL_HINT) from exc
    set_ax_logger_levels(logging.WARNING)


@dataclass(frozen=True)
class AxOptions(TunerOptions):
    """Options of the ``ax`` strategy.

    Attributes:
        max_retries: suggestions per proposal before a random unseen configuration (each refits Ax's model).
        initialization_budget: Sobol trials before BoTorch takes over (trials Ax did not suggest count).
    """

    max_retries: int = 3
    initialization_budget: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_int(self, "initialization_budget", 1)


@register_strategy("ax")
class AxStrategy(TunerAdapter):
    """Ax's ``Client`` (``fast`` generation strategy) minimising cost subject to ``quality <= epsilon``."""

    Options = AxOptions

    def _tuner_build(self) -> None:
        require_ax()
        from ax.api.client import Client
        from ax.api.configs import ChoiceParameterConfig

        # parameter names must not carry dots or spaces into Ax's expression parser: p0, p1, ...
        self._names = {b.path: f"p{i}" for i, b in enumerate(self.space.blocks)}
        self._fixed = {b.path: b.names[0] for b in self.space.blocks if len(b.names) == 1}
        self.client = Client(random_seed=self.seed)
        self.client.configure_experiment(
            parameters=[
                ChoiceParameterConfig(name=self._names[b.path], values=list(b.names), parameter_type="str", is_ordered=False)
                for b in self.space.blocks if b.path not in self._fixed
            ],
            name="tocsr-nas",
        )
        self.client.configure_optimization(objective="-cost", outcome_constraints=[f"quality <= {self.problem.epsilons[0]!r}"])
        self.client.configure_generation_strategy(
            method="fast", initialization_budget=self.options.initialization_budget,
            initialization_random_seed=self.seed, initialize_with_center=False,
        )

    def _params(self, config: Configuration) -> dict[str, str]:
        return {self._names[p]: v for p, v in config.items() if p not in self._fixed}

    def _value(self, obs: Observation) -> Any:
        e = self.problem.epsilons[0]
        quality = obs.quality if math.isfinite(obs.quality) else e + MAX_VIOLATION * max(abs(e), 1e-12)
        return [float(obs.cost), float(quality)]

    def _penalty(self, config: Configuration) -> Any:
        e = self.problem.epsilons[0]
        return [float(self.problem.cost(config)), e + MAX_VIOLATION * max(abs(e), 1e-12)]

    def _tuner_suggest(self, index: int) -> tuple[int, Mapping[str, Any]] | None:
        from ax.exceptions.core import SearchSpaceExhausted
        from ax.exceptions.generation_strategy import GenerationStrategyRepeatedPoints

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trials = self.client.get_next_trials(max_trials=1)
        except (SearchSpaceExhausted, GenerationStrategyRepeatedPoints):
            return None
        if not trials:
            return None
        (ticket, params), = trials.items()
        by_name = {v: k for k, v in self._names.items()}
        return ticket, {**self._fixed, **{by_name[k]: v for k, v in params.items()}}

    def _tuner_report(self, ticket: int, config: Configuration, value: Any) -> None:
        self.client.complete_trial(ticket, raw_data={"cost": value[0], "quality": value[1]})

    def _tuner_import(self, config: Configuration, value: Any) -> None:
        ticket = self.client.attach_trial(self._params(config))
        self.client.complete_trial(ticket, raw_data={"cost": value[0], "quality": value[1]})
