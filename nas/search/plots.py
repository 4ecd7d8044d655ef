"""Search plots, with data split from drawing.

``pareto_data`` / ``convergence_data`` turn a trials table into plain data objects (numbers only,
testable without a figure); ``plot_pareto`` / ``plot_convergence`` draw one on a matplotlib
``Axes`` and return it. Nothing here calls ``pyplot`` or changes global styles: figures are
``matplotlib.figure.Figure`` objects rendered by the Agg canvas.

Example:
    >>> import pandas as pd
    >>> trials = pd.DataFrame({"trial": [0, 1, 2], "gmacs": [3.0, 1.0, 2.0], "quality": [0.0, 0.2, 0.04],
    ...                        "feasible@0.05": [True, False, True]})
    >>> data = convergence_data(trials, objective="gmacs", epsilons=[0.05])
    >>> data.best[0.05]
    [3.0, 3.0, 2.0]
    >>> ax = plot_convergence(data)
    >>> ax.get_xlabel()
    'evaluations'
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tocsr_nas.search.journal import eps_key
from tocsr_nas.search.trials import best_feasible, pareto_front

__all__ = [
    "ParetoPlotData",
    "ConvergenceData",
    "pareto_data",
    "convergence_data",
    "plot_pareto",
    "plot_convergence",
    "new_axes",
    "save_figure",
]

_UNITS = {"gmacs": "GMACs", "params": "parameters", "latency": "ms (predicted)"}


def _feasible_col(epsilon: float) -> str:

    return f"feasible@{eps_key(epsilon)}"


@dataclass
class ParetoPlotData:
    """Points of an (objective, quality) scatter.

    Attributes:
        objective: ``"gmacs"`` or ``"params"`` (the x axis).
        x, quality: one entry per evaluated trial with finite values.
        feasible: the stored flag at the primary epsilon, per point.
        front_x, front_quality: the non-dominated points, sorted by ``x``.
        epsilons: horizontal lines (quality limits).
        best: per epsilon, the (x, quality) of the best feasible trial, or ``None``.
    """

    objective: str
    x: list[float]
    quality: list[float]
    feasible: list[bool]
    front_x: list[float]
    front_quality: list[float]
    epsilons: list[float]
    best: dict[float, tuple[float, float] | None] = field(default_factory=dict)
    teacher_x: float | None = None


@dataclass
class ConvergenceData:
    """Best feasible objective after each evaluation, per epsilon (``nan`` until one is feasible)."""

    objective: str
    evaluations: list[int]
    best: dict[float, list[float]]
    teacher: float | None = None


def pareto_data(
    trials: pd.DataFrame,
    *,
    objective: str,
    epsilons: Sequence[float],
    front: pd.DataFrame | None = None,
    teacher: float | None = None,
) -> ParetoPlotData:
    """Collect the points of the Pareto plot from a trials table (flags are read, not recomputed)."""

    ok = trials[np.isfinite(trials[objective].astype(float)) & np.isfinite(trials["quality"].astype(float))]
    front = pareto_front(trials, objective) if front is None else front
    feas_col = _feasible_col(epsilons[0]) if epsilons else "feasible"
    best: dict[float, tuple[float, float] | None] = {}
    for e in epsilons:
        row = best_feasible(trials, objective, e)
        best[e] = None if row is None else (float(row[objective]), float(row["quality"]))
    return ParetoPlotData(
        objective=objective,
        x=ok[objective].astype(float).tolist(),
        quality=ok["quality"].astype(float).tolist(),
        feasible=ok[feas_col].astype(bool).tolist() if feas_col in ok else [False] * len(ok),
        front_x=front[objective].astype(float).tolist(),
        front_quality=front["quality"].astype(float).tolist(),
        epsilons=[float(e) for e in epsilons],
        best=best,
        teacher_x=teacher,
    )


def convergence_data(
    trials: pd.DataFrame, *, objective: str, epsilons: Sequence[float], teacher: float | None = None
) -> ConvergenceData:
    """Running minimum of the objective over feasible trials, in trial order, per epsilon."""
    ordered = trials.sort_values("trial")
    values = ordered[objective].astype(float).to_numpy()
    best: dict[float, list[float]] = {}
    for e in epsilons:
        flags = ordered[_feasible_col(e)].astype(bool).to_numpy()
        running, curve = math.inf, []
        for v, f in zip(values, flags):
            if f and math.isfinite(v):
                running = min(running, float(v))
            curve.append(float(running) if math.isfinite(running) else float("nan"))
        best[float(e)] = curve
    return ConvergenceData(objective, list(range(1, len(ordered) + 1)), best, teacher)


def new_axes(figsize: tuple[float, float] = (6.0, 4.5)) -> Any:
    """A fresh ``Axes`` on its own Agg-rendered ``Figure`` (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)  # fixed margins: cheap, no layout engine
    return fig.add_subplot()


def save_figure(ax: Any, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Write the figure that holds ``ax`` to ``path`` (PNG)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ax.figure.savefig(path, dpi=dpi)


def plot_pareto(data: ParetoPlotData, ax: Any = None) -> Any:
    """Objective vs quality: feasible (filled) and infeasible (crosses) trials, the front, epsilon lines.

    Args:
        data: from :func:`pareto_data`.
        ax: the ``Axes`` to draw on; a new Agg figure when ``None``.

    Returns:
        The ``Axes``.
    """
    ax = new_axes() if ax is None else ax
    unit = _UNITS.get(data.objective, data.objective)
    x, q, f = np.asarray(data.x), np.asarray(data.quality), np.asarray(data.feasible, dtype=bool)
    if len(x):
        at = f" (epsilon = {data.epsilons[0]:g})" if data.epsilons else ""
        ax.scatter(x[f], q[f], s=22, color="tab:blue", label="feasible" + at, zorder=3)
        ax.scatter(x[~f], q[~f], s=22, marker="x", color="tab:gray", label="infeasible" + at, zorder=2)
    if data.front_x:
        ax.step(data.front_x, data.front_quality, where="post", color="tab:orange", lw=1.5, label="Pareto front", zorder=4)
    for i, e in enumerate(data.epsilons):
        ax.axhline(e, color="tab:red", ls=":", lw=1, alpha=0.8, label="epsilon" if i == 0 else None)
        b = data.best.get(e)
        if b is not None:
            ax.scatter([b[0]], [b[1]], s=90, facecolors="none", edgecolors="tab:red", zorder=5,
                       label="best feasible" if i == 0 else None)
    if data.teacher_x is not None and math.isfinite(data.teacher_x):
        ax.axvline(data.teacher_x, color="black", ls="--", lw=1, label="teacher")
    ax.set_xlabel(unit)
    ax.set_ylabel("quality loss (lower is better)")
    ax.set_title("trials and Pareto front")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax


def plot_convergence(data: ConvergenceData, ax: Any = None) -> Any:
    """Best feasible objective against the number of evaluations, one line per epsilon.

    Args:
        data: from :func:`convergence_data`.
        ax: the ``Axes`` to draw on; a new Agg figure when ``None``.

    Returns:
        The ``Axes``.
    """
    ax = new_axes() if ax is None else ax
    for e, curve in data.best.items():
        ax.step(data.evaluations, curve, where="post", label=f"epsilon = {e:g}")
    if data.teacher is not None and math.isfinite(data.teacher):
        ax.axhline(data.teacher, color="black", ls="--", lw=1, label="teacher")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best feasible {_UNITS.get(data.objective, data.objective)}")
    ax.set_title("convergence")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax
