"""NNI's HPO tuners (``nni.algorithms.hpo``) as strategies: ``nni-tpe``, ``nni-evolution``, ``nni-random``.

Each one is driven through :class:`~tocsr_nas.strategies.adapters.tuner.TunerAdapter`: the space
goes in as ``space.to_nni()``, suggestions come back through ``space.decode_nni``, results are
reported with ``receive_trial_result`` (then ``trial_end``) as one scalar to *minimise*
(``optimize_mode="minimize"``) that folds in feasibility at the primary epsilon.

Seeding: TPE and the random tuner take a ``seed``; NNI's evolution tuner draws from the global
``random`` module and an unseeded ``numpy.random.RandomState``, so the adapter replaces the latter
with a seeded one and swaps private states of the global generators in around every call.
Other tuners of ``nni.algorithms.hpo`` are not registered: hyperopt's (anneal) needs the
``hyperopt`` package, SMAC needs ``smac``, regularized evolution speaks only NAS ``layer_choice``
spaces, and the grid/batch tuners do not search.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import register_strategy
from tocsr_nas.strategies.adapters.tuner import PopulationOptions, TunerAdapter, TunerOptions

__all__ = ["NNIEvolution", "NNIRandom", "NNITPE"]

logging.getLogger("nni").setLevel(logging.WARNING)


class _NNIAdapter(TunerAdapter):
    Options = TunerOptions

    def _make(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _tuner_build(self) -> None:
        self.tuner = self._make()
        self.tuner.update_search_space(self.space.to_nni())

    def _tuner_suggest(self, index: int) -> tuple[int, Mapping[str, Any]] | None:
        import nni

        try:
            return index, self.tuner.generate_parameters(index)
        except nni.NoMoreTrialError:
            return None

    def _tuner_report(self, ticket: int, config: Configuration, value: float) -> None:
        self.tuner.receive_trial_result(ticket, dict(config), value)
        self.tuner.trial_end(ticket, True)

    def _tuner_import(self, config: Configuration, value: float) -> None:
        self.tuner.import_data([{"parameter": dict(config), "value": value}])


@register_strategy("nni-tpe")
class NNITPE(_NNIAdapter):
    """NNI's TPE tuner (``nni.algorithms.hpo.tpe_tuner.TpeTuner``), seeded.

    Options:
        max_retries: suggestions to try per proposal before a random fallback.
    """

    def _make(self):
        from nni.algorithms.hpo.tpe_tuner import TpeTuner

        return TpeTuner(optimize_mode="minimize", seed=self.seed)


@register_strategy("nni-random")
class NNIRandom(_NNIAdapter):
    """NNI's random tuner (``nni.algorithms.hpo.random_tuner.RandomTuner``), seeded."""

    def _make(self):
        from nni.algorithms.hpo.random_tuner import RandomTuner

        return RandomTuner(seed=self.seed)


@register_strategy("nni-evolution")
class NNIEvolution(_NNIAdapter):
    """NNI's evolution tuner (``nni.algorithms.hpo.evolution_tuner.EvolutionTuner``).

    Options:
        max_retries: suggestions to try per proposal before a random fallback.
        population_size: NNI's population size (its first ``population_size`` suggestions are random).
    """

    Options = PopulationOptions  # NNI tuner default: 32

    def _tuner_build(self) -> None:
        from nni.algorithms.hpo.evolution_tuner import EvolutionTuner

        self.tuner = EvolutionTuner(optimize_mode="minimize", population_size=self.options.population_size)
        self.tuner.update_search_space(self.space.to_nni())
        # update_search_space drew the initial population from an unseeded RandomState: redraw it seeded
        self.tuner.random_state = np.random.RandomState(self.seed % 2**32)
        self.tuner.population = []
        for _ in range(self.options.population_size):
            self.tuner._random_generate_individual()

    def _tuner_import(self, config: Configuration, value: float) -> None:
        pass  # NNI's evolution tuner ignores imported data
