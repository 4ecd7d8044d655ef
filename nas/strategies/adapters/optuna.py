"""Optuna's samplers as strategies (optional: registered only when ``optuna`` imports).

``optuna-tpe`` (``TPESampler``), ``optuna-nsga2`` (``NSGAIISampler``) and ``optuna-gp``
(``GPSampler``), constrained: one in-memory study minimises the known cost; every trial carries
the constraint ``quality - e <= 0`` (``e`` the primary epsilon; a failed evaluation gets
``10 |e|``), set with ``Trial.set_constraint`` (optuna >= 5) or read by ``constraints_func``
(older optuna, where that is the API). Trials go through
``study.ask(fixed_distributions)`` / ``study.tell``; configurations the study did not suggest (the
teacher, which every strategy proposes first, and random fallbacks) are added with
``study.add_trial`` - the same head start ``enqueue_trial`` would give. The machinery for
skipping repeats and replaying the call log to restore a state is
:class:`~tocsr_nas.strategies.adapters.tuner.TunerAdapter`.

Importing this module sets Optuna's logging verbosity to WARNING (one INFO line per trial
otherwise).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, create_trial

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import Observation, register_strategy
from tocsr_nas.strategies.adapters.tuner import MAX_VIOLATION, PopulationOptions, TunerAdapter, TunerOptions

__all__ = ["OptunaGP", "OptunaNSGA2", "OptunaTPE"]

optuna.logging.set_verbosity(optuna.logging.WARNING)

_CONSTRAINT = "tocsr_constraint"
#: optuna >= 5 reads constraints set on the trial (``Trial.set_constraint``); older versions need
#: ``constraints_func``. Both store them under the system attribute "constraints" (key "0").
_NEW_API = hasattr(optuna.trial.Trial, "set_constraint")


def _constraints(trial: FrozenTrial) -> Sequence[float]:
    return (trial.user_attrs.get(_CONSTRAINT, MAX_VIOLATION),)


def _constraint_kwargs() -> dict[str, Any]:
    return {} if _NEW_API else {"constraints_func": _constraints}


class _OptunaAdapter(TunerAdapter):
    Options = TunerOptions

    def _sampler(self) -> optuna.samplers.BaseSampler:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tuner_build(self) -> None:
        self._distributions = {b.path: CategoricalDistribution(b.names) for b in self.space.blocks}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(direction="minimize", sampler=self._sampler())
        self._trials: dict[int, optuna.trial.Trial] = {}

    def _value(self, obs: Observation) -> Any:
        e = self.problem.epsilons[0]
        violation = obs.quality - e if math.isfinite(obs.quality) else MAX_VIOLATION * max(abs(e), 1e-12)
        return [float(obs.cost), float(violation)]

    def _penalty(self, config: Configuration) -> Any:
        return [float(self.problem.cost(config)), MAX_VIOLATION * max(abs(self.problem.epsilons[0]), 1e-12)]

    def _tuner_suggest(self, index: int) -> tuple[int, Mapping[str, Any]] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self.study.ask(self._distributions)
        self._trials[trial.number] = trial
        return trial.number, trial.params

    def _tuner_report(self, ticket: int, config: Configuration, value: Any) -> None:
        trial = self._trials.pop(ticket)
        trial.set_user_attr(_CONSTRAINT, value[1])
        if _NEW_API:
            trial.set_constraint("0", value[1])
        self.study.tell(trial, value[0])

    def _tuner_import(self, config: Configuration, value: Any) -> None:
        self.study.add_trial(
            create_trial(
                params=dict(config), distributions=self._distributions, value=value[0],
                user_attrs={_CONSTRAINT: value[1]}, system_attrs={"constraints": [value[1]]},
            )
        )


@register_strategy("optuna-tpe")
class OptunaTPE(_OptunaAdapter):
    """Optuna's ``TPESampler(seed=...)`` with the quality constraint."""

    def _sampler(self):
        return optuna.samplers.TPESampler(seed=self.seed, **_constraint_kwargs())


@dataclass(frozen=True)
class _NSGA2Options(PopulationOptions):
    population_size: int = 50  # Optuna's default


@register_strategy("optuna-nsga2")
class OptunaNSGA2(_OptunaAdapter):
    """Optuna's ``NSGAIISampler(seed=..., population_size=...)`` with the quality constraint."""

    Options = _NSGA2Options

    def _sampler(self):
        return optuna.samplers.NSGAIISampler(
            seed=self.seed, population_size=self.options.population_size, **_constraint_kwargs()
        )


@register_strategy("optuna-gp")
class OptunaGP(_OptunaAdapter):
    """Optuna's ``GPSampler(seed=..., deterministic_objective=True)`` with the quality constraint.

    The objective (the known cost) is deterministic; the sampler still models it with a GP.
    """

    def _sampler(self):
        return optuna.samplers.GPSampler(seed=self.seed, deterministic_objective=True, **_constraint_kwargs())
