"""The search: the ask/tell loop, its journal, the trials table, results, plots and the set-up.

============================  ============================================================
module                        what it holds
============================  ============================================================
:mod:`~.api`                  :func:`search`, the one-call entry point (``tocsr_nas.search``)
:mod:`~.setup`                :func:`prepare_search`: teacher + library -> space, costs, quality;
                              :func:`run_search`: the search stage (``tocsr-nas search``)
:mod:`~.loop`                 :class:`SearchLoop`: budget, feasibility, journal, resume
:mod:`~.journal`              the append-only journal that makes ``--resume`` lose nothing
:mod:`~.trials`               the trials table: Pareto front, best feasible row
:mod:`~.results`              :class:`SearchResult`, :func:`load_search`, the output folder
:mod:`~.plots`                Pareto and convergence plots (data first, then matplotlib)
============================  ============================================================

``tocsr_nas.search`` is this package, and calling it runs :func:`~tocsr_nas.search.api.search`:
``tocsr_nas.search(space, quality=..., cost=..., epsilon=...)`` and ``from tocsr_nas import search``
keep working, while ``import tocsr_nas.search.loop`` and the names below import as usual. The
package's own import is light: the heavy modules load on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from tocsr_nas.search.api import search

__all__ = ["search", "SearchLoop", "SearchResult", "load_search", "PreparedSearch", "prepare_search", "run_search"]

_LAZY = {
    "SearchLoop": "tocsr_nas.search.loop",
    "SearchResult": "tocsr_nas.search.results",
    "load_search": "tocsr_nas.search.results",
    "PreparedSearch": "tocsr_nas.search.setup",
    "prepare_search": "tocsr_nas.search.setup",
    "run_search": "tocsr_nas.search.setup",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tocsr_nas.search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class _CallablePackage(types.ModuleType):
    """The package's module type: ``tocsr_nas.search(...)`` is :func:`search` (module ``__class__``
    assignment is supported Python since 3.5); ``__wrapped__`` gives ``inspect.signature`` and
    ``help`` the function's signature."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return search(*args, **kwargs)


_module = sys.modules[__name__]
_module.__class__ = _CallablePackage
_module.__wrapped__ = search
