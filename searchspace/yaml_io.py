"""YAML reading and writing for search spaces (``yaml.safe_load`` only)."""

from __future__ import annotations

from typing import Any

import yaml

from tocsr_nas.searchspace.errors import SearchSpaceError

__all__ = ["load_yaml", "dump_yaml"]


def load_yaml(text: str, *, source: str = "<string>") -> Any:
    """Parse YAML safely; a syntax error becomes one :class:`SearchSpaceError` line with the position."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SearchSpaceError(f"malformed YAML in {source}{where}: {problem}") from None


def dump_yaml(data: Any) -> str:
    """Block-style YAML with keys in insertion order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
