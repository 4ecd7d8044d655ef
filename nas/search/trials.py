"""The trials table and what is read off it: one :class:`Trial`, the Pareto front, the best feasible row.

Pure functions of a trials ``DataFrame`` (one row per evaluated configuration, with the
``feasible@<eps>`` flags the search loop stored); :mod:`tocsr_nas.search.results` and
:mod:`tocsr_nas.search.plots` both build on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tocsr_nas.search.journal import eps_key
from tocsr_nas.searchspace import Configuration

__all__ = ["NoFeasibleTrialWarning", "OBJECTIVES", "Trial", "best_feasible", "pareto_front", "trials_frame"]


OBJECTIVES = ("gmacs", "params", "latency")
#: the optional cost column: predicted milliseconds (a latency table), only in searches that have one
LATENCY = "latency"
_STR_COLUMNS = {"config": str, "hash": str, "strategy": str}


class NoFeasibleTrialWarning(UserWarning):
    """No evaluated trial meets an epsilon (``result.best`` is ``None``); filterable with ``warnings``."""


@dataclass(frozen=True)
class Trial:
    """One evaluated configuration, as stored by the search loop.

    Attributes:
        trial: the trial id (0, 1, ... in proposal order).
        config: the configuration.
        gmacs, params: its complexity (``nan`` when the cost function does not report it).
        latency: its predicted milliseconds from a latency table (``nan`` without one).
        quality: the quality loss (lower is better).
        feasible: the stored flag per epsilon (``quality <= epsilon``).
        from_trials: ``True`` when the trial was picked at an epsilon the search did not target
            (:meth:`SearchResult.best_at <tocsr_nas.search.results.SearchResult.best_at>`): its
            feasibility there is ``quality <= epsilon`` read from the sweep's trials, and no
            proposal of the search aimed at that epsilon.
    """

    trial: int
    config: Configuration
    hash: str
    gmacs: float
    params: float
    quality: float
    seconds: float
    feasible: Mapping[float, bool] = field(default_factory=dict)
    strategy: str = ""
    from_trials: bool = False
    latency: float = math.nan

    @classmethod
    def from_row(cls, row: Mapping[str, Any], epsilons: Sequence[float]) -> "Trial":
        return cls(
            trial=int(row["trial"]),
            config=Configuration.from_json(row["config"]),
            hash=str(row["hash"]),
            gmacs=float(row["gmacs"]),
            params=float(row["params"]),
            quality=float(row["quality"]),
            seconds=float(row["seconds"]),
            feasible={float(e): bool(row[f"feasible@{eps_key(e)}"]) for e in epsilons},
            strategy=str(row.get("strategy", "")),
            latency=float(row.get(LATENCY, math.nan)),
        )

    def value(self, objective: str) -> float:
        """The objective value (``"gmacs"``, ``"params"`` or ``"latency"``)."""
        return float(getattr(self, objective))


def pareto_front(trials: pd.DataFrame, objective: str) -> pd.DataFrame:
    """The non-dominated trials over (objective, quality), both minimised, sorted by objective.

    A trial is dominated when another is no worse on both and strictly better on one; exact ties
    are all kept. Trials with a non-finite objective or quality are left out.

    Derivation of the sweep: sort by (objective, quality). Walking right, a point can only be
    dominated by points already seen (they have no larger objective); it is dominated iff the least
    quality seen so far, ``q*``, is below its own, or equals it at a strictly smaller objective.
    """
    x = trials[objective].astype(float)
    q = trials["quality"].astype(float)
    ok = trials[np.isfinite(x) & np.isfinite(q)]
    ordered = ok.sort_values([objective, "quality", "trial"], kind="mergesort")
    keep, best_q, best_x = [], math.inf, math.nan
    for idx, xv, qv in zip(ordered.index, ordered[objective].astype(float), ordered["quality"].astype(float)):
        if qv < best_q:
            keep.append(idx)
            best_q, best_x = qv, xv
        elif qv == best_q and xv == best_x:
            keep.append(idx)
    return ordered.loc[keep].reset_index(drop=True)


def best_feasible(trials: pd.DataFrame, objective: str, epsilon: float) -> pd.Series | None:
    """The feasible trial of least objective at ``epsilon``; ties go to lower quality, then id.

    Feasibility is the stored flag ``feasible@<epsilon>`` when the search targeted ``epsilon``,
    otherwise ``quality <= epsilon`` read from the quality column (a failed trial never is).
    """
    col = f"feasible@{eps_key(epsilon)}"
    if col in trials:
        ok = trials[col].astype(bool)
    else:
        q = trials["quality"].astype(float)
        ok = np.isfinite(q) & (q <= float(epsilon))
    sel = trials[ok & np.isfinite(trials[objective].astype(float))]
    if sel.empty:
        return None
    return sel.sort_values([objective, "quality", "trial"], kind="mergesort").iloc[0]


def _empty_trials(epsilons: Sequence[float]) -> pd.DataFrame:
    cols = ["trial", "strategy", "config", "hash", "gmacs", "params", "quality", "feasible"]
    cols += [f"feasible@{eps_key(e)}" for e in epsilons] + ["seconds"]
    return pd.DataFrame({c: [] for c in cols})


def trials_frame(rows: Sequence[Mapping[str, Any]], epsilons: Sequence[float]) -> pd.DataFrame:
    """The trials table from rows (see :func:`tocsr_nas.search.journal.trial_row`); empty rows give the columns."""
    if not rows:
        return _empty_trials(epsilons)
    return pd.DataFrame(list(rows))
