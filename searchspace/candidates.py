"""Candidates: what a block may become. A :class:`CandidateSpec` with a parameter grid expands into
several :class:`Candidate` s, each with a canonical name such as ``bottleneck_resnet(ratio=0.25)``."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tocsr_nas.searchspace.errors import SearchSpaceError

__all__ = ["TEACHER", "Candidate", "CandidateSpec", "parse_candidate_name"]

#: the candidate that keeps a block as it is; choice 0 of every block of a model space
TEACHER = "teacher"

_TYPE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_SCALARS = (str, int, float, bool)
_PARAM_KEY_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
_PARAM_SEP_RE = re.compile(r"\s*(,?)\s*")
_JSON = json.JSONDecoder()


def _check_params(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise SearchSpaceError(f"{where}: parameter names must be identifiers, got {key!r}")
        if value is not None and not isinstance(value, _SCALARS):
            raise SearchSpaceError(
                f"{where}: parameter {key!r} must be a number, string or boolean, got {type(value).__name__}"
            )
        out[key] = value
    return out


@dataclass(frozen=True)
class Candidate:
    """One concrete choice for a block: a surrogate type and its parameters.

    Args:
        type: the registered surrogate type (``teacher``, ``skip``, ``bottleneck_resnet``...). In
            model-free spaces it is simply the option's name.
        params: the type's keyword arguments.
        value: for model-free spaces built from NNI JSON, the option's original value.

    Example:
        >>> Candidate("bottleneck_resnet", {"ratio": 0.25}).name
        'bottleneck_resnet(ratio=0.25)'
    """

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    value: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(sorted(_check_params(self.params, f"candidate {self.type!r}").items())))

    @property
    def name(self) -> str:
        """Canonical name: ``type`` or ``type(k=v,...)`` with sorted keys and JSON values."""
        if not self.params:
            return self.type
        inner = ",".join(f"{k}={json.dumps(v)}" for k, v in self.params.items())
        return f"{self.type}({inner})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": dict(self.params)}

    def __hash__(self) -> int:
        return hash(self.name)


def parse_candidate_name(name: str) -> Candidate:
    """Inverse of :attr:`Candidate.name`.

    Example:
        >>> parse_candidate_name('light_transformer(cross_attention=false,ff_mult=2)').params
        {'cross_attention': False, 'ff_mult': 2}
    """
    match = re.fullmatch(r"([^()]+)(?:\((.*)\))?", name)
    if not match:
        raise SearchSpaceError(f"malformed candidate name {name!r}")
    type_, inner = match.group(1), match.group(2)
    params: dict[str, Any] = {}
    # ``key=<JSON value>`` items separated by commas; each value is read as JSON up to its end, so a
    # string value may hold commas, ``=`` or brackets
    pos, inner = 0, inner or ""
    while pos < len(inner):
        key = _PARAM_KEY_RE.match(inner, pos)
        malformed = f"malformed parameter at {inner[pos:]!r} in candidate name {name!r}"
        if key is None:
            raise SearchSpaceError(malformed)
        try:
            value, pos = _JSON.raw_decode(inner, key.end())
        except json.JSONDecodeError:
            raise SearchSpaceError(malformed) from None
        if key.group(1) in params:
            raise SearchSpaceError(f"parameter {key.group(1)!r} is given twice in candidate name {name!r}")
        params[key.group(1)] = value
        sep = _PARAM_SEP_RE.match(inner, pos)
        pos = sep.end()
        if (pos < len(inner)) != bool(sep.group(1)):  # a comma exactly between two items
            raise SearchSpaceError(f"malformed candidate name {name!r}: parameters are key=value separated by commas")
    return Candidate(type_, params)


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate entry of a rule, possibly with a parameter grid.

    Args:
        type: registered surrogate type.
        params: fixed keyword arguments.
        grid: ``{param: [values...]}``; the spec expands into the cartesian product.

    Example:
        >>> [c.name for c in CandidateSpec("bottleneck_resnet", grid={"ratio": [0.25, 0.5]}).expand()]
        ['bottleneck_resnet(ratio=0.25)', 'bottleneck_resnet(ratio=0.5)']
    """

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not _TYPE_RE.match(self.type):
            raise SearchSpaceError(f"candidate type must be a name like 'bottleneck_resnet', got {self.type!r}")
        object.__setattr__(self, "params", _check_params(self.params, f"candidate {self.type!r}"))
        grid = {}
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise SearchSpaceError(f"candidate {self.type!r}: grid {key!r} must be a non-empty list")
            if key in self.params:
                raise SearchSpaceError(f"candidate {self.type!r}: {key!r} is both a fixed param and a grid")
            for v in values:
                _check_params({key: v}, f"candidate {self.type!r}")
            grid[key] = list(values)
        object.__setattr__(self, "grid", grid)

    def expand(self) -> list[Candidate]:
        """The concrete candidates, grid keys in sorted order."""
        if not self.grid:
            return [Candidate(self.type, self.params)]
        keys = sorted(self.grid)
        return [
            Candidate(self.type, {**self.params, **dict(zip(keys, combo))})
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]

    @classmethod
    def coerce(cls, item: Any, where: str = "rule") -> "CandidateSpec":
        """Build from a YAML/Python entry: a type name, a dict ``{type, params?, grid?}`` or a spec."""
        if isinstance(item, CandidateSpec):
            return item
        if isinstance(item, str):
            cand = parse_candidate_name(item)
            return cls(cand.type, cand.params)
        if isinstance(item, Mapping):
            unknown = set(item) - {"type", "params", "grid"}
            if unknown:
                raise SearchSpaceError(
                    f"{where}: unknown key(s) {sorted(unknown)} in a candidate; use type, params, grid"
                )
            if "type" not in item:
                raise SearchSpaceError(f"{where}: a candidate needs a 'type'")
            return cls(item["type"], dict(item.get("params") or {}), dict(item.get("grid") or {}))
        raise SearchSpaceError(f"{where}: a candidate is a type name or a mapping, got {item!r}")

    def to_dict(self) -> dict[str, Any] | str:
        """The YAML form: a bare type name when there is nothing else."""
        if not self.params and not self.grid:
            return self.type
        out: dict[str, Any] = {"type": self.type}
        if self.params:
            out["params"] = dict(self.params)
        if self.grid:
            out["grid"] = {k: list(v) for k, v in self.grid.items()}
        return out
