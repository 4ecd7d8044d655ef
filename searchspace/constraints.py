"""Constraints restrict which combinations of choices are allowed.

Each constraint type is one registered class with ``allows(config) -> bool``, a YAML/dict form
(``{"type": "max_count", ...}``) and a ``check(space)`` that validates it against a resolved space.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from tocsr_nas.searchspace.errors import SearchSpaceError

__all__ = ["Constraint", "MaxCount", "Forbid", "SameChoice", "register_constraint", "constraint_from_dict"]

_CONSTRAINTS: dict[str, type["Constraint"]] = {}


def register_constraint(cls: type["Constraint"]) -> type["Constraint"]:
    """Class decorator: make a constraint type available to YAML under ``cls.kind``."""
    if cls.kind in _CONSTRAINTS:
        raise ValueError(f"constraint type {cls.kind!r} is already registered")
    _CONSTRAINTS[cls.kind] = cls
    return cls


class Constraint:
    """Base class. Subclasses are frozen dataclasses with a class attribute ``kind``."""

    kind: ClassVar[str] = ""

    def allows(self, config: Mapping[str, str]) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, blocks: Mapping[str, list[str]]) -> None:
        """Validate against ``{path: [candidate names]}``; raise :class:`SearchSpaceError` if it can never apply."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **asdict(self)}  # type: ignore[call-overload]

    def _paths(self, blocks: Mapping[str, Any], pattern: str) -> list[str]:
        paths = [p for p in blocks if fnmatch.fnmatchcase(p, pattern)]
        if not paths:
            raise SearchSpaceError(f"constraint {self.kind!r}: block pattern {pattern!r} matches no block")
        return paths


@register_constraint
@dataclass(frozen=True)
class MaxCount(Constraint):
    """At most ``count`` of the blocks matching ``blocks`` choose a candidate matching ``candidate`` (globs).

    Example:
        >>> MaxCount(candidate="skip", count=1).allows({"a": "skip", "b": "skip"})
        False
    """

    kind: ClassVar[str] = "max_count"
    candidate: str
    count: int
    blocks: str = "*"

    def allows(self, config: Mapping[str, str]) -> bool:
        n = sum(
            1
            for path, choice in config.items()
            if fnmatch.fnmatchcase(path, self.blocks) and fnmatch.fnmatchcase(choice, self.candidate)
        )
        return n <= self.count

    def check(self, blocks: Mapping[str, list[str]]) -> None:
        if not isinstance(self.count, int) or self.count < 0:
            raise SearchSpaceError(f"constraint max_count: count must be a non-negative integer, got {self.count!r}")
        self._paths(blocks, self.blocks)


@register_constraint
@dataclass(frozen=True)
class Forbid(Constraint):
    """Forbid configurations in which every ``{block glob: candidate glob}`` condition of ``when`` holds.

    Example:
        >>> Forbid(when={"mid_block.*": "skip"}).allows({"mid_block.resnets.0": "skip"})
        False
    """

    kind: ClassVar[str] = "forbid"
    when: Mapping[str, str] = field(default_factory=dict)

    def allows(self, config: Mapping[str, str]) -> bool:
        for block_glob, cand_glob in self.when.items():
            hit = any(
                fnmatch.fnmatchcase(path, block_glob) and fnmatch.fnmatchcase(choice, cand_glob)
                for path, choice in config.items()
            )
            if not hit:
                return True
        return False

    def check(self, blocks: Mapping[str, list[str]]) -> None:
        if not self.when:
            raise SearchSpaceError("constraint forbid: 'when' must list at least one {block: candidate}")
        for pattern in self.when:
            self._paths(blocks, pattern)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "when": dict(self.when)}


@register_constraint
@dataclass(frozen=True)
class SameChoice(Constraint):
    """All blocks matching ``blocks`` make the same choice (ties blocks together).

    Example:
        >>> SameChoice(blocks="up_blocks.*").allows({"up_blocks.0": "skip", "up_blocks.1": "teacher"})
        False
    """

    kind: ClassVar[str] = "same_choice"
    blocks: str

    def allows(self, config: Mapping[str, str]) -> bool:
        chosen = {c for p, c in config.items() if fnmatch.fnmatchcase(p, self.blocks)}
        return len(chosen) <= 1

    def check(self, blocks: Mapping[str, list[str]]) -> None:
        paths = self._paths(blocks, self.blocks)
        common = set.intersection(*(set(blocks[p]) for p in paths))
        if not common:
            raise SearchSpaceError(f"constraint same_choice: blocks {self.blocks!r} share no candidate")


def constraint_from_dict(data: Mapping[str, Any]) -> Constraint:
    """Build a constraint from its YAML form; unknown types or keys are errors."""
    if isinstance(data, Constraint):
        return data
    if not isinstance(data, Mapping) or "type" not in data:
        raise SearchSpaceError(f"a constraint is a mapping with a 'type' (one of {sorted(_CONSTRAINTS)}), got {data!r}")
    kind = data["type"]
    cls = _CONSTRAINTS.get(kind)
    if cls is None:
        raise SearchSpaceError(f"unknown constraint type {kind!r}; valid: {sorted(_CONSTRAINTS)}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {k: v for k, v in data.items() if k != "type"}
    unknown = set(kwargs) - names
    if unknown:
        raise SearchSpaceError(f"constraint {kind!r}: unknown key(s) {sorted(unknown)}; valid: {sorted(names)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SearchSpaceError(f"constraint {kind!r}: {exc}") from None
