"""``tocsr_nas.search(...)``: the programmatic entry point for researchers with their own functions.

This module stays light (the loop, pandas and the strategies load on the first call), because
``import tocsr_nas`` binds :func:`search` eagerly: see :mod:`tocsr_nas.search`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tocsr_nas.locks import locks_folder

if TYPE_CHECKING:
    from tocsr_nas.search.results import SearchResult
    from tocsr_nas.searchspace import Configuration, SearchSpace

__all__ = ["search"]


@locks_folder("out_dir", "search")
def search(
    space: SearchSpace,
    *,
    quality: Callable[[Configuration], float],
    cost: Any,
    epsilon: float | Sequence[float],
    strategy: str | Callable[..., Any] = "ecbo",
    budget: int | None = None,
    time_budget: float | None = None,
    seed: int = 0,
    objective: str = "gmacs",
    max_gmacs: float | None = None,
    max_params: float | None = None,
    max_latency: float | None = None,
    batch_size: int = 1,
    sweep: str = "cycle",
    prior: Mapping[str, Mapping[str, float]] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    strategy_options: Mapping[str, Any] | None = None,
    evaluator: Any = None,
) -> SearchResult:
    """Minimise complexity subject to ``quality <= epsilon`` over a search space.

    Every evaluation is one call of ``quality``; complexity is known exactly from ``cost``.
    Feasibility (``quality <= epsilon``, per epsilon) is decided once per trial and stored.

    Args:
        space: the search space (a model space, or ``SearchSpace.from_choices(...)``).
        quality: ``quality(config) -> float``, lower is better (e.g. relative loss increase over
            the teacher); any callable.
        cost: a ``CostTable`` (``.gmacs(cfg)``, ``.params(cfg)``) or a callable returning a number
            (the objective) or a mapping with ``'gmacs'`` and/or ``'params'``.
        epsilon: the quality limit, or several (an epsilon sweep reusing every evaluation); each
            finite and > 0. The first is the primary one (``result.best``).
        strategy: a registered strategy name (``"ecbo"``, ``"random"``, ``"evolution"``, ...).
        budget: maximum number of evaluations.
        time_budget: maximum wall seconds (checked before each batch).
        seed: makes the trial sequence reproducible.
        objective: ``"gmacs"``, ``"params"`` or ``"latency"`` (``cost`` must have ``.latency(cfg)``,
            e.g. :class:`~tocsr_nas.evaluators.latency.TableCosts`).
        max_gmacs, max_params, max_latency: hard bounds (GMACs, parameters, predicted ms): nothing
            above them is ever evaluated.
        batch_size: proposals per round (q).
        sweep: how several epsilons share the proposals: ``"cycle"`` in turn, ``"gain"`` by what
            each stands to gain (:attr:`tocsr_nas.strategies.Problem.sweep`).
        prior: ``block -> candidate -> expected damage``, cheap prior knowledge for the strategy.
        out_dir: write the journal, ``trials.csv``, ``pareto.csv``, ``best.json`` and ``plots/`` here.
        resume: continue the search journalled in ``out_dir``.
        progress: show a progress bar with the best feasible objective so far.
        strategy_options: keyword options of the strategy.
        evaluator: evaluate each batch's proposals in parallel on this pool
            (:meth:`tocsr_nas.executors.Executor.evaluator_pool`, e.g. Ray actors); ``None``:
            ``quality`` in this process. The journal is written here either way.

    Returns:
        A :class:`~tocsr_nas.search.results.SearchResult` (``.trials``, ``.best``, ``.best_at(eps)``, ``.pareto``).

    Raises:
        TocsrError: invalid arguments (e.g. "epsilon out of range ..."), or resuming a different search.

    Example:
        >>> from tocsr_nas import search
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> space = SearchSpace.from_choices({"width": [64, 32, 16], "depth": [4, 2, 1]})
        >>> def gmacs(cfg):
        ...     v = space.values(cfg)
        ...     return v["width"] * v["depth"] / 256
        >>> def quality(cfg):  # damage grows as the model shrinks
        ...     return 0.04 * (1 - gmacs(cfg))
        >>> result = search(space, quality=quality, cost=gmacs, epsilon=[0.03, 0.05],
        ...                 strategy="random", budget=9, seed=0, progress=False)
        >>> len(result.trials), result.best_at(0.05).gmacs
        (9, 0.0625)
    """
    from tocsr_nas.search.loop import SearchLoop

    loop = SearchLoop(
        space,
        quality=quality,
        cost=cost,
        epsilons=epsilon,
        strategy=strategy,
        objective=objective,
        budget=budget,
        time_budget=time_budget,
        seed=seed,
        max_gmacs=max_gmacs,
        max_params=max_params,
        max_latency=max_latency,
        batch_size=batch_size,
        sweep=sweep,
        prior=prior,
        out_dir=out_dir,
        resume=resume,
        progress=progress,
        strategy_options=strategy_options,
        evaluator=evaluator,
    )
    return loop.run()
