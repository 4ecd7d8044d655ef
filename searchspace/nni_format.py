"""NNI's search-space JSON format (https://nni.readthedocs.io, "Search Space")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tocsr_nas.searchspace.errors import SearchSpaceError

__all__ = ["choices_from_nni"]

_SUPPORTED = ("choice", "randint")


def choices_from_nni(search_space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Turn NNI's ``{"key": {"_type": ..., "_value": ...}}`` into ``{"key": [options...]}``.

    Raises:
        SearchSpaceError: for continuous types, nested choices or malformed entries (naming the key).
    """
    if not isinstance(search_space, Mapping) or not search_space:
        raise SearchSpaceError("an NNI search space is a non-empty JSON object")
    out: dict[str, list[Any]] = {}
    for key, spec in search_space.items():
        if not isinstance(spec, Mapping) or "_type" not in spec or "_value" not in spec:
            raise SearchSpaceError("each NNI entry needs '_type' and '_value'", path=key)
        kind, value = spec["_type"], spec["_value"]
        if kind == "choice":
            if not isinstance(value, list) or not value:
                raise SearchSpaceError("'choice' needs a non-empty list", path=key)
            if any(isinstance(v, (dict, list)) for v in value):
                raise SearchSpaceError("nested NNI choices are not supported; flatten the space", path=key)
            out[key] = list(value)
        elif kind == "randint":
            lower, upper = value
            out[key] = list(range(int(lower), int(upper)))
        else:
            raise SearchSpaceError(
                f"NNI type {kind!r} is not categorical; supported: {list(_SUPPORTED)} (discretise continuous values into a choice)",
                path=key,
            )
    return out
