"""Rules: which blocks of a model are searchable, and what each may become."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tocsr_nas.searchspace.candidates import TEACHER, Candidate, CandidateSpec
from tocsr_nas.searchspace.errors import SearchSpaceError

__all__ = ["Rule"]

_RULE_KEYS = {"name", "match", "type", "candidates"}


@dataclass(frozen=True)
class Rule:
    """Select blocks by module path (glob) and, optionally, by class name; list their candidates.

    Patterns use :mod:`fnmatch` syntax on the dotted module path and must match the whole path
    (``*`` also crosses dots). When a rule matches a module and some of its descendants, only the
    outermost module is a block. ``teacher`` (keep the block) is always added as choice 0.

    Args:
        name: a label used in error messages and reports.
        pattern: glob on the dotted module path, e.g. ``"*.resnets.*"``.
        candidates: type names, mappings ``{type, params, grid}`` or :class:`CandidateSpec` s.
        module_type: a class name or a list of class names the module must have (e.g. ``ResnetBlock2D``).

    Example:
        >>> r = Rule("resnets", "*.resnets.*", ["skip", {"type": "bottleneck_resnet", "grid": {"ratio": [0.5]}}],
        ...          module_type="ResnetBlock2D")
        >>> [c.name for c in r.expand()]
        ['teacher', 'skip', 'bottleneck_resnet(ratio=0.5)']
        >>> r.matches("up_blocks.1.resnets.0", "ResnetBlock2D")
        True
    """

    name: str
    pattern: str
    candidates: tuple[CandidateSpec, ...]
    module_type: tuple[str, ...] | None = None

    def __init__(
        self,
        name: str,
        pattern: str,
        candidates: Sequence[Any],
        module_type: str | Sequence[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise SearchSpaceError(f"a rule needs a non-empty name, got {name!r}")
        if not isinstance(pattern, str) or not pattern:
            raise SearchSpaceError("a rule needs a non-empty 'match' pattern", rule=name)
        if isinstance(candidates, (str, Mapping)) or not isinstance(candidates, Sequence):
            raise SearchSpaceError("'candidates' must be a list", rule=name)
        specs = tuple(CandidateSpec.coerce(c, where=f"rule {name!r}") for c in candidates)
        if isinstance(module_type, str):
            module_type = (module_type,)
        elif module_type is not None:
            module_type = tuple(module_type)
            if not all(isinstance(t, str) for t in module_type):
                raise SearchSpaceError("'type' must be a class name or a list of class names", rule=name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "candidates", specs)
        object.__setattr__(self, "module_type", module_type)
        self.expand()  # validate duplicates early

    def matches(self, path: str, class_name: str | None = None) -> bool:
        """Whether the module at ``path`` (of class ``class_name``) is selected by this rule."""
        if not fnmatch.fnmatchcase(path, self.pattern):
            return False
        return self.module_type is None or class_name in self.module_type

    def expand(self, *, add_teacher: bool = True) -> list[Candidate]:
        """The concrete candidates: ``teacher`` first, then each spec's grid, duplicates rejected."""
        out: list[Candidate] = [Candidate(TEACHER)] if add_teacher else []
        seen = {c.name for c in out}
        for spec in self.candidates:
            for cand in spec.expand():
                if cand.name in seen:
                    if cand.name == TEACHER:
                        continue
                    raise SearchSpaceError(f"candidate {cand.name!r} is listed twice", rule=self.name)
                seen.add(cand.name)
                out.append(cand)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "match": self.pattern}
        if self.module_type is not None:
            out["type"] = self.module_type[0] if len(self.module_type) == 1 else list(self.module_type)
        out["candidates"] = [c.to_dict() for c in self.candidates]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], index: int = 0) -> "Rule":
        if not isinstance(data, Mapping):
            raise SearchSpaceError(f"rule #{index} must be a mapping with name, match, candidates")
        name = data.get("name", f"rule{index}")
        unknown = set(data) - _RULE_KEYS
        if unknown:
            raise SearchSpaceError(f"unknown key(s) {sorted(unknown)}; a rule has {sorted(_RULE_KEYS)}", rule=name)
        for key in ("match", "candidates"):
            if key not in data:
                raise SearchSpaceError(f"missing {key!r}", rule=name)
        return cls(name, data["match"], data["candidates"], data.get("type"))
