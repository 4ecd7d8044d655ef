"""Search results: the trials table, the best feasible configuration per epsilon, the Pareto front,
and the output folder (``trials.csv``, ``pareto.csv``, ``best.json``, ``plots/*.png``).

Feasibility is never recomputed here: every answer reads the ``feasible@<eps>`` flags the search
loop stored on each trial.

Example:
    >>> import pandas as pd
    >>> trials = pd.DataFrame({
    ...     "trial": [0, 1, 2], "strategy": "random", "config": ['{"a":"x"}', '{"a":"y"}', '{"a":"z"}'],
    ...     "hash": ["h0", "h1", "h2"], "gmacs": [3.0, 1.0, 2.0], "params": [30.0, 10.0, 20.0],
    ...     "quality": [0.0, 0.2, 0.04], "feasible": [True, False, True],
    ...     "feasible@0.05": [True, False, True], "seconds": [0.1, 0.1, 0.1]})
    >>> result = SearchResult(trials, objective="gmacs", epsilons=[0.05], strategy="random", seed=0)
    >>> result.best.trial, result.best.gmacs
    (2, 2.0)
    >>> result.pareto["trial"].tolist()
    [1, 2, 0]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tocsr_nas._io import atomic_path, atomic_write_json, atomic_write_text
from tocsr_nas.errors import TocsrError
from tocsr_nas.search.journal import JOURNAL_NAME, eps_key, finished_rows, read_journal
from tocsr_nas.search.trials import (
    _STR_COLUMNS,
    OBJECTIVES,
    NoFeasibleTrialWarning,
    Trial,
    best_feasible,
    pareto_front,
    trials_frame,
)
from tocsr_nas.searchspace import Configuration

__all__ = [
    "NoFeasibleTrialWarning",
    "SearchResult",
    "Trial",
    "best_feasible",
    "load_search",
    "no_gain_line",
    "pareto_front",
    "OBJECTIVES",
]

logger = logging.getLogger(__name__)

def _json_num(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def no_gain_line(epsilon: float) -> str:
    """How every output says that an epsilon's best is the teacher or costs as much: no result."""
    return f"no configuration cheaper than the teacher within epsilon {epsilon:g}"


def _ratio(teacher: Any, value: Any) -> float | None:
    t, v = _json_num(teacher), _json_num(value)
    if t is None or v is None or v <= 0:
        return None
    return t / v


class SearchResult:
    """The outcome of a search.

    Args:
        trials: one row per evaluated configuration (columns ``trial, strategy, config, hash, gmacs,
            params, quality, feasible, feasible@<eps>..., seconds``).
        objective: ``"gmacs"`` or ``"params"``: what was minimised.
        epsilons: the quality limits; the first is the primary one (``feasible`` and :attr:`best`).
        strategy, seed: how the search ran.
        teacher: the teacher (default) configuration's figures: ``configuration``, ``gmacs``,
            ``params`` and, when it was evaluated, ``quality``.
        space_hash: the search space's hash.
        out_dir: where the search wrote its outputs, if anywhere.
    """

    def __init__(
        self,
        trials: pd.DataFrame,
        *,
        objective: str,
        epsilons: Sequence[float],
        strategy: str,
        seed: int | None,
        teacher: Mapping[str, Any] | None = None,
        space_hash: str | None = None,
        out_dir: str | None = None,
    ) -> None:
        if objective not in OBJECTIVES:
            raise TocsrError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        if not epsilons:
            raise TocsrError("a search result needs at least one epsilon")
        self.trials = trials.sort_values("trial").reset_index(drop=True)
        self.objective = objective
        self.epsilons = tuple(float(e) for e in epsilons)
        self.strategy = strategy
        self.seed = seed
        self.teacher = dict(teacher) if teacher else None
        if self.teacher and self.teacher.get("quality") is None and self.teacher.get("configuration") is not None:
            # the teacher's quality is known when it was one of the trials
            text = Configuration(self.teacher["configuration"]).to_json()
            hit = self.trials[self.trials["config"] == text]
            if not hit.empty:
                self.teacher["quality"] = float(hit["quality"].iloc[0])
        self.space_hash = space_hash
        self.out_dir = out_dir
        #: the primary best's assembled model timed end to end (ms), set by whoever measured it
        #: (``run_search`` with a latency table); ``best.json``'s ``latency_measured_ms``
        self.latency_measured_ms: float | None = None

    # -- answers ----------------------------------------------------------------------------------
    @property
    def primary_epsilon(self) -> float:
        return self.epsilons[0]

    @property
    def best(self) -> Trial | None:
        """The feasible trial of least objective at the primary epsilon, or ``None`` (with a warning)."""
        return self.best_at(self.primary_epsilon)

    def best_at(self, epsilon: float) -> Trial | None:
        """The feasible trial of least objective at ``epsilon``, or ``None`` (with a warning).

        At an epsilon of the sweep (:attr:`epsilons`) feasibility is the flag the search stored. Any
        other epsilon is answered from the sweep's trials: feasible means ``quality <= epsilon``
        (the quality column), and the returned trial has ``from_trials=True`` and its flag at
        ``epsilon`` in ``feasible``. Such an answer is only as good as the trials the search
        happened to evaluate: no proposal aimed at that epsilon.

        Raises:
            TocsrError: ``epsilon`` is not a finite number.
        """
        eps = self._searched_epsilon(epsilon)
        target = eps is not None
        if not target:
            try:
                eps = float(epsilon)
            except (TypeError, ValueError):
                raise TocsrError(f"epsilon must be a number, got {epsilon!r}") from None
            if not math.isfinite(eps):
                raise TocsrError(f"epsilon must be finite, got {epsilon!r}")
        row = best_feasible(self.trials, self.objective, eps)
        if row is None:
            warnings.warn(self._no_feasible_message(eps), NoFeasibleTrialWarning, stacklevel=2)
            return None
        trial = Trial.from_row(row, self.epsilons)
        if target:
            return trial
        return dataclasses.replace(trial, feasible={**trial.feasible, eps: True}, from_trials=True)

    @property
    def bests(self) -> dict[float, Trial | None]:
        """:meth:`best_at` for every epsilon of the sweep (no warnings)."""
        out = {}
        for e in self.epsilons:
            row = best_feasible(self.trials, self.objective, e)
            out[e] = None if row is None else Trial.from_row(row, self.epsilons)
        return out

    @property
    def pareto(self) -> pd.DataFrame:
        """Non-dominated trials over (objective, quality) among all evaluated ones, by objective."""
        return pareto_front(self.trials, self.objective)

    def _searched_epsilon(self, epsilon: float) -> float | None:
        """The epsilon of the sweep equal to ``epsilon`` (as stored), or ``None``."""
        try:
            value = float(epsilon)
        except (TypeError, ValueError):
            return None
        for e in self.epsilons:
            if math.isclose(e, value, rel_tol=1e-12, abs_tol=0.0):
                return e
        return None

    def _no_feasible_message(self, eps: float) -> str:
        n = len(self.trials)
        q = self.trials["quality"].astype(float)
        if n == 0:
            return "no trial was evaluated; give the search a budget of at least one evaluation"
        if not np.isfinite(q).any():
            return f"no trial is feasible at epsilon={eps:g}: none of the {n} trials returned a finite quality"
        i = int(np.nanargmin(q.to_numpy()))
        return (
            f"no trial is feasible at epsilon={eps:g}: the best quality among {n} trials is {q.iloc[i]:.4g} "
            f"(trial {int(self.trials['trial'].iloc[i])}); raise epsilon, extend the budget, or inspect result.pareto"
        )

    def beats_teacher(self, trial: Trial) -> bool | None:
        """Whether ``trial`` costs less than the teacher on the objective (``None``: teacher cost unknown).

        A best at some epsilon that does not (typically the teacher itself) is no result: the
        summaries and ``report.md`` say so (:func:`no_gain_line`) instead of showing ``1.00x``.
        """
        teacher = self.teacher_value()
        value = _json_num(trial.value(self.objective))
        if teacher is None or value is None:
            return None
        return value < teacher

    # -- figures ------------------------------------------------------------------------------
    def teacher_value(self, key: str | None = None) -> float | None:
        if not self.teacher:
            return None
        return _json_num(self.teacher.get(key or self.objective))

    def pareto_plot_data(self) -> Any:
        from tocsr_nas.search.plots import pareto_data

        return pareto_data(self.trials, objective=self.objective, epsilons=self.epsilons, teacher=self.teacher_value())

    def convergence_plot_data(self) -> Any:
        from tocsr_nas.search.plots import convergence_data

        return convergence_data(self.trials, objective=self.objective, epsilons=self.epsilons, teacher=self.teacher_value())

    def plot_pareto(self, ax: Any = None) -> Any:
        """Draw the Pareto plot on ``ax`` (a new Agg figure when ``None``); returns the ``Axes``."""
        from tocsr_nas.search.plots import plot_pareto

        return plot_pareto(self.pareto_plot_data(), ax)

    def plot_convergence(self, ax: Any = None) -> Any:
        """Draw the convergence plot on ``ax`` (a new Agg figure when ``None``); returns the ``Axes``."""
        from tocsr_nas.search.plots import plot_convergence

        return plot_convergence(self.convergence_plot_data(), ax)

    # -- best.json ------------------------------------------------------------------------------
    def _best_entry(self, trial: Trial | None, epsilon: float) -> dict[str, Any] | None:
        if trial is None:
            return None
        return {
            "epsilon": epsilon,
            "trial": trial.trial,
            "configuration": trial.config.to_dict(),
            "hash": trial.hash,
            "gmacs": _json_num(trial.gmacs),
            "params": _json_num(trial.params),
            "quality": _json_num(trial.quality),
            "beats_teacher": self.beats_teacher(trial),
            "reduction": {
                "gmacs": _ratio(self.teacher_value("gmacs"), trial.gmacs),
                "params": _ratio(self.teacher_value("params"), trial.params),
                **({"latency": _ratio(self.teacher_value("latency"), trial.latency)} if self._has_latency else {}),
            },
            **({"latency_predicted_ms": _json_num(trial.latency)} if self._has_latency else {}),
        }

    @property
    def _has_latency(self) -> bool:
        """Whether the trials carry predicted milliseconds (a search with a latency table)."""
        return "latency" in self.trials.columns

    def to_summary(self) -> dict[str, Any]:
        """The content of ``best.json``: the best configuration (primary epsilon), the teacher's figures,
        reduction ratios (teacher / best) and the best per epsilon of the sweep."""
        bests = self.bests
        primary = self._best_entry(bests[self.primary_epsilon], self.primary_epsilon)
        teacher = None
        if self.teacher:
            teacher = {
                "configuration": self.teacher.get("configuration"),
                "gmacs": _json_num(self.teacher.get("gmacs")),
                "params": _json_num(self.teacher.get("params")),
                "quality": _json_num(self.teacher.get("quality")),
                **({"latency": _json_num(self.teacher.get("latency"))} if "latency" in self.teacher else {}),
            }
        out: dict[str, Any] = {
            "objective": self.objective,
            "epsilon": self.primary_epsilon,
            "epsilons": list(self.epsilons),
            "strategy": self.strategy,
            "seed": self.seed,
            "space_hash": self.space_hash,
            "n_trials": int(len(self.trials)),
            "n_feasible": int(self.trials["feasible"].astype(bool).sum()) if len(self.trials) else 0,
            "found": primary is not None,
        }
        for key in ("trial", "configuration", "hash", "gmacs", "params", "quality", "reduction"):
            out[key] = None if primary is None else primary[key]
        if self._has_latency:
            out["latency_predicted_ms"] = None if primary is None else primary["latency_predicted_ms"]
            out["latency_measured_ms"] = _json_num(self.latency_measured_ms)
        out["teacher"] = teacher
        out["per_epsilon"] = {eps_key(e): self._best_entry(t, e) for e, t in bests.items()}
        return out

    # -- files ------------------------------------------------------------------------------
    def save(self, out_dir: str | os.PathLike[str]) -> None:
        """Write ``trials.csv``, ``pareto.csv``, ``best.json``, ``plots/pareto.png`` and ``plots/convergence.png``.

        Each file is written to a temporary name and renamed, so an interrupted save leaves the
        previous version of every file intact.
        """
        from tocsr_nas.search.plots import plot_convergence, plot_pareto, save_figure

        out = os.fspath(out_dir)
        os.makedirs(os.path.join(out, "plots"), exist_ok=True)
        atomic_write_text(os.path.join(out, "trials.csv"), self.trials.to_csv(index=False))
        atomic_write_text(os.path.join(out, "pareto.csv"), self.pareto.to_csv(index=False))
        atomic_write_json(os.path.join(out, "best.json"), self.to_summary(), sort_keys=False)
        for name, draw, data in (
            ("pareto.png", plot_pareto, self.pareto_plot_data()),
            ("convergence.png", plot_convergence, self.convergence_plot_data()),
        ):
            ax = draw(data)
            with atomic_path(os.path.join(out, "plots", name), suffix=".png") as tmp:
                save_figure(ax, tmp)
        self.out_dir = out
        logger.info("search outputs written to %s", out)

    def summary(self) -> str:
        """A few lines for people: trials, feasible counts and the best per epsilon."""
        lines = [f"{len(self.trials)} trials ({self.strategy}, seed {self.seed}), objective {self.objective}"]
        for e, t in self.bests.items():
            if t is None:
                lines.append(f"  epsilon {e:g}: nothing feasible")
            elif self.beats_teacher(t) is False:
                lines.append(f"  epsilon {e:g}: {no_gain_line(e)} (trial {t.trial})")
            else:
                ratio = _ratio(self.teacher_value(), t.value(self.objective))
                extra = f", {ratio:.2f}x below the teacher" if ratio else ""
                lines.append(
                    f"  epsilon {e:g}: trial {t.trial} {self.objective}={t.value(self.objective):.4g} "
                    f"quality={t.quality:.4g}{extra}"
                )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SearchResult({len(self.trials)} trials, objective={self.objective!r}, epsilons={list(self.epsilons)})"


def load_search(out_dir: str | os.PathLike[str]) -> SearchResult:
    """Re-create a :class:`SearchResult` from a search's output folder.

    Reads ``trials.csv`` + ``best.json`` when both exist, else the journal (``journal.jsonl``), so a
    search killed before it wrote its tables can still be inspected.

    Raises:
        TocsrError: the folder holds neither.
    """
    out = os.fspath(out_dir)
    trials_csv, best_json, journal = (os.path.join(out, n) for n in ("trials.csv", "best.json", JOURNAL_NAME))
    if os.path.isfile(trials_csv) and os.path.isfile(best_json):
        try:
            with open(best_json, encoding="utf-8") as fh:
                meta = json.load(fh)
            trials = pd.read_csv(trials_csv, dtype=_STR_COLUMNS)
        except (OSError, ValueError) as exc:
            raise TocsrError(f"cannot read the search outputs in {out}: {exc}") from None
        for col in trials.columns:
            if col == "feasible" or col.startswith("feasible@"):
                trials[col] = trials[col].astype(bool)
        result = SearchResult(
            trials,
            objective=meta["objective"],
            epsilons=meta["epsilons"],
            strategy=meta.get("strategy", ""),
            seed=meta.get("seed"),
            teacher=meta.get("teacher"),
            space_hash=meta.get("space_hash"),
            out_dir=out,
        )
        result.latency_measured_ms = meta.get("latency_measured_ms")
        return result
    if os.path.isfile(journal):
        contents = read_journal(journal)
        h = contents.header
        eps = [float(e) for e in h["epsilons"]]
        return SearchResult(
            trials_frame(finished_rows(contents, h.get("strategy", ""), eps), eps),
            objective=h["objective"],
            epsilons=eps,
            strategy=h.get("strategy", ""),
            seed=h.get("seed"),
            teacher=h.get("teacher"),
            space_hash=h.get("space_hash"),
            out_dir=out,
        )
    raise TocsrError(f"{out} holds no search output (expected trials.csv + best.json, or {JOURNAL_NAME})")
