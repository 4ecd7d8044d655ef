"""tocsr-nas: task-optimal compact diffusion for image super-resolution.

The top-level package stays light: heavy modules (torch, diffusers, botorch) load on first use,
so ``import tocsr_nas.searchspace`` stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (imported lazily)
_LAZY = {
    "SearchSpace": "tocsr_nas.searchspace",
    "SpaceSpec": "tocsr_nas.searchspace",
    "Configuration": "tocsr_nas.searchspace",
    "Rule": "tocsr_nas.searchspace",
    "TocsrError": "tocsr_nas.errors",
    "search": "tocsr_nas.search",  # the package, which is callable: tocsr_nas.search(space, ...)
    "load_compact": "tocsr_nas.stages.export",
    "export_compact": "tocsr_nas.stages.export",
    "SearchResult": "tocsr_nas.search.results",
    "load_search": "tocsr_nas.search.results",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tocsr_nas' has no attribute {name!r}")
    if module == f"{__name__}.{name}":
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
