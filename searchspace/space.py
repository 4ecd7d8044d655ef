"""The search space: a :class:`SpaceSpec` (rules, written by people) resolves against a model's
modules into a :class:`SearchSpace` (blocks x choices, used by algorithms)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tocsr_nas.searchspace.candidates import TEACHER, Candidate
from tocsr_nas.searchspace.configuration import Configuration
from tocsr_nas.searchspace.constraints import Constraint, constraint_from_dict
from tocsr_nas.searchspace.errors import SearchSpaceError
from tocsr_nas.searchspace.rules import Rule

__all__ = ["Block", "SpaceSpec", "SearchSpace"]

_SPEC_KEYS = {"name", "rules", "constraints"}


@dataclass(frozen=True)
class Block:
    """One searchable block: its module path, class name, the rule that selected it and its choices."""

    path: str
    module_type: str | None
    rule: str | None
    choices: tuple[Candidate, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.choices]

    def index(self, name: str) -> int:
        for i, cand in enumerate(self.choices):
            if cand.name == name:
                return i
        raise SearchSpaceError(
            f"unknown candidate {name!r}; this block has {self.names}", rule=self.rule, path=self.path
        )


class SpaceSpec:
    """Rules and constraints, as written in Python or YAML.

    Example:
        >>> spec = SpaceSpec([Rule("res", "*.resnets.*", ["skip"], module_type="ResnetBlock2D")], name="demo")
        >>> space = spec.resolve([("down.resnets.0", "ResnetBlock2D"), ("down.resnets.0.conv1", "Conv2d")])
        >>> space.size, [b.path for b in space.blocks]
        (2, ['down.resnets.0'])
        >>> SpaceSpec.from_yaml(spec.to_yaml()) == spec
        True
    """

    def __init__(self, rules: Sequence[Rule | Mapping[str, Any]], constraints: Sequence[Any] = (), name: str = "space"):
        if isinstance(rules, (str, Mapping)) or not isinstance(rules, Sequence) or not rules:
            raise SearchSpaceError("a search space needs a non-empty list of rules")
        self.rules = tuple(r if isinstance(r, Rule) else Rule.from_dict(r, i) for i, r in enumerate(rules))
        names = [r.name for r in self.rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SearchSpaceError(f"rule names must be unique, repeated: {sorted(dup)}")
        self.constraints = tuple(constraint_from_dict(c) for c in constraints)
        self.name = str(name)

    # -- construction ---------------------------------------------------------------------------
    def resolve(
        self,
        modules: Iterable[tuple[str, str | None]],
        *,
        known_types: Collection[str] | None = None,
    ) -> "SearchSpace":
        """Select blocks among ``(path, class_name)`` pairs (in model order).

        Args:
            modules: every module of the model, e.g. ``[(n, type(m).__name__) for n, m in model.named_modules()]``.
            known_types: if given, every candidate type must be in it (``teacher`` always is).

        Raises:
            SearchSpaceError: a rule matches nothing, or names an unknown candidate type.
        """
        modules = list(modules)
        if known_types is not None:
            known = set(known_types) | {TEACHER}
            for rule in self.rules:
                for spec in rule.candidates:
                    if spec.type not in known:
                        raise SearchSpaceError(
                            f"unknown candidate type {spec.type!r}; registered types: {sorted(known)}", rule=rule.name
                        )
        selected: list[tuple[str, str | None, Rule]] = []
        hits = {r.name: 0 for r in self.rules}
        for path, cls_name in modules:
            if not path:
                continue
            if any(path.startswith(p + ".") for p, _, _ in selected):
                continue  # inside a block already selected: the outermost module wins
            for rule in self.rules:
                if rule.matches(path, cls_name):
                    selected.append((path, cls_name, rule))
                    hits[rule.name] += 1
                    break
        for rule in self.rules:
            if hits[rule.name] == 0:
                raise SearchSpaceError(
                    f"matches no module (pattern {rule.pattern!r}"
                    + (f", type {list(rule.module_type)}" if rule.module_type else "")
                    + "); check the path with `tocsr-nas space --json` or model.named_modules()",
                    rule=rule.name,
                )
        blocks = [Block(path, cls, rule.name, tuple(rule.expand())) for path, cls, rule in selected]
        return SearchSpace(blocks, self.constraints, name=self.name, spec=self)

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "rules": [r.to_dict() for r in self.rules]}
        if self.constraints:
            out["constraints"] = [c.to_dict() for c in self.constraints]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpaceSpec":
        if not isinstance(data, Mapping):
            raise SearchSpaceError("a search space file must hold a mapping with 'rules' (and optional 'name', 'constraints')")
        unknown = set(data) - _SPEC_KEYS
        if unknown:
            raise SearchSpaceError(f"unknown top-level key(s) {sorted(unknown)}; valid: {sorted(_SPEC_KEYS)}")
        if "rules" not in data:
            raise SearchSpaceError("a search space needs 'rules'")
        return cls(data["rules"], data.get("constraints") or (), name=data.get("name", "space"))

    def to_yaml(self) -> str:
        from tocsr_nas.searchspace.yaml_io import dump_yaml

        return dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> "SpaceSpec":
        from tocsr_nas.searchspace.yaml_io import load_yaml

        return cls.from_dict(load_yaml(text, source=source))

    @classmethod
    def load(cls, path: str) -> "SpaceSpec":
        """Read a YAML file; a missing or malformed file is a :class:`SearchSpaceError` naming it."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise SearchSpaceError(f"cannot read search space file {path}: {exc.strerror}") from None
        return cls.from_yaml(text, source=str(path))

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_yaml())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpaceSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SpaceSpec(name={self.name!r}, rules={[r.name for r in self.rules]}, constraints={len(self.constraints)})"


class SearchSpace:
    """Blocks and their choices, plus constraints: what strategies search over.

    Encodings: :meth:`encode` gives one choice index per block (in block order);
    :meth:`one_hot` concatenates one one-hot group per block (length :attr:`one_hot_dim`).

    Example:
        >>> space = SearchSpace.from_choices({"depth": ["2", "4"], "act": ["relu", "gelu", "silu"]})
        >>> space.size
        6
        >>> cfg = space.decode([1, 2])
        >>> cfg["act"], space.encode(cfg), space.one_hot(cfg)
        ('silu', [1, 2], [0.0, 1.0, 0.0, 0.0, 1.0])
        >>> SearchSpace.from_nni(space.to_nni()).size
        6
    """

    def __init__(
        self,
        blocks: Sequence[Block],
        constraints: Sequence[Constraint | Mapping[str, Any]] = (),
        *,
        name: str = "space",
        spec: SpaceSpec | None = None,
        merged: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        if not blocks:
            raise SearchSpaceError("a search space needs at least one block")
        paths = [b.path for b in blocks]
        if len(set(paths)) != len(paths):
            raise SearchSpaceError("block paths must be unique")
        for b in blocks:
            if not b.choices:
                raise SearchSpaceError("a block needs at least one choice", rule=b.rule, path=b.path)
        self.blocks: tuple[Block, ...] = tuple(blocks)
        self.constraints = tuple(constraint_from_dict(c) for c in constraints)
        self.name = name
        self.spec = spec
        self._by_path = {b.path: b for b in self.blocks}
        names = {b.path: b.names for b in self.blocks}
        #: ``{block path: {dropped candidate: kept candidate}}``: choices left out because they build
        #: the same architecture as an earlier choice of the block (see :meth:`merge`); empty if none
        self.merged: dict[str, dict[str, str]] = {}
        for path, drops in (merged or {}).items():
            if path not in names:
                raise SearchSpaceError("merge record names a block not in the space", path=path)
            for dropped, kept in drops.items():
                if dropped in names[path] or kept not in names[path]:
                    raise SearchSpaceError(f"bad merge record {dropped!r} -> {kept!r}; the block has {names[path]}", path=path)
            if drops:
                self.merged[path] = dict(drops)
        for c in self.constraints:
            c.check(names)

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_choices(
        cls, choices: Mapping[str, Sequence[Any]], constraints: Sequence[Any] = (), *, name: str = "space"
    ) -> "SearchSpace":
        """A model-free space from named categorical choices; the first option of each is the default.

        Options may be strings, numbers or booleans; each becomes a candidate named ``str(value)``
        (``json.dumps`` for non-strings) whose :attr:`Candidate.value` keeps the original.
        """
        blocks = []
        for key, options in choices.items():
            if isinstance(options, (str, Mapping)) or not isinstance(options, Sequence) or not options:
                raise SearchSpaceError("options must be a non-empty list", path=str(key))
            cands = []
            for opt in options:
                if isinstance(opt, (dict, list)):
                    raise SearchSpaceError("nested search spaces are not supported; options must be scalars", path=key)
                label = opt if isinstance(opt, str) else json.dumps(opt)
                cands.append(Candidate(label, {}, value=opt))
            if len({c.name for c in cands}) != len(cands):
                raise SearchSpaceError("duplicate options", path=key)
            blocks.append(Block(str(key), None, None, tuple(cands)))
        return cls(blocks, constraints, name=name)

    @classmethod
    def from_nni(cls, search_space: Mapping[str, Any], *, name: str = "nni") -> "SearchSpace":
        """Import NNI's search-space JSON (``{"key": {"_type": "choice", "_value": [...]}}``).

        ``choice`` maps to categorical options and ``randint`` (``[lower, upper)``) to integer options;
        continuous types (``uniform``, ``normal``...) and nested choices are rejected with a clear error.
        """
        from tocsr_nas.searchspace.nni_format import choices_from_nni

        return cls.from_choices(choices_from_nni(search_space), name=name)

    def merge(self, merged: Mapping[str, Mapping[str, str]]) -> "SearchSpace":
        """This space without the choices that duplicate another, recording which kept choice stands in.

        Args:
            merged: ``{block path: {dropped candidate: kept candidate}}``; a kept candidate must stay.

        Returns:
            A new space whose blocks lack the dropped choices and whose :attr:`merged` holds the
            record (added to this space's own); its :attr:`hash` differs exactly when something
            was dropped. :meth:`validate` reads a dropped name as the kept one.

        Example:
            >>> space = SearchSpace.from_choices({"a": ["x", "y", "z"], "b": ["u", "v"]})
            >>> merged = space.merge({"a": {"z": "x"}})
            >>> merged["a"].names, merged.merged, merged.size
            (['x', 'y'], {'a': {'z': 'x'}}, 4)
            >>> merged.validate({"a": "z"})["a"], space.merge({}).hash == space.hash
            ('x', True)
        """
        record = {path: dict(drops) for path, drops in self.merged.items()}
        for path, drops in merged.items():
            record.setdefault(path, {}).update(drops)
        blocks = []
        for b in self.blocks:
            drops = merged.get(b.path, {})
            blocks.append(Block(b.path, b.module_type, b.rule, tuple(c for c in b.choices if c.name not in drops)))
        return SearchSpace(blocks, self.constraints, name=self.name, spec=self.spec, merged=record)

    # -- basic facts ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self) -> Iterator[Block]:
        return iter(self.blocks)

    def __getitem__(self, path: str) -> Block:
        try:
            return self._by_path[path]
        except KeyError:
            raise SearchSpaceError("no such block in the space", path=path) from None

    def __contains__(self, path: object) -> bool:
        return path in self._by_path

    @property
    def paths(self) -> list[str]:
        return [b.path for b in self.blocks]

    @property
    def cardinalities(self) -> list[int]:
        return [len(b.choices) for b in self.blocks]

    @property
    def size(self) -> int:
        """Number of configurations, ignoring constraints."""
        return math.prod(self.cardinalities)

    @property
    def one_hot_dim(self) -> int:
        return sum(self.cardinalities)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit hash of the blocks, their choices and the constraints."""
        payload = {
            "blocks": [[b.path, b.module_type, b.names] for b in self.blocks],
            "constraints": [c.to_dict() for c in self.constraints],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]

    def default_config(self) -> Configuration:
        """Choice 0 everywhere: the teacher configuration of a model space."""
        return Configuration({b.path: b.choices[0].name for b in self.blocks})

    teacher_config = default_config

    # -- validation -------------------------------------------------------------------------------
    def validate(self, config: Mapping[str, str]) -> Configuration:
        """Check that ``config`` names every block with a valid choice; missing blocks take choice 0.

        A choice dropped by :meth:`merge` is read as the choice kept in its place.

        Raises:
            SearchSpaceError: unknown block or candidate, or a violated constraint.
        """
        unknown = set(config) - set(self._by_path)
        if unknown:
            raise SearchSpaceError(f"configuration names block(s) not in the space: {sorted(unknown)[:5]}")
        full = {}
        for b in self.blocks:
            name = config.get(b.path, b.choices[0].name)
            name = self.merged.get(b.path, {}).get(name, name)
            b.index(name)
            full[b.path] = name
        cfg = Configuration(full)
        for c in self.constraints:
            if not c.allows(cfg):
                raise SearchSpaceError(f"configuration violates constraint {c.to_dict()}")
        return cfg

    def is_valid(self, config: Mapping[str, str]) -> bool:
        """Whether every constraint allows ``config`` (choices are assumed valid)."""
        return all(c.allows(config) for c in self.constraints)

    # -- encodings --------------------------------------------------------------------------------
    def encode(self, config: Mapping[str, str]) -> list[int]:
        """One choice index per block, in block order."""
        return [b.index(config.get(b.path, b.choices[0].name)) for b in self.blocks]

    def decode(self, indices: Sequence[int]) -> Configuration:
        """Inverse of :meth:`encode`."""
        if len(indices) != len(self.blocks):
            raise SearchSpaceError(f"expected {len(self.blocks)} indices, got {len(indices)}")
        out = {}
        for b, i in zip(self.blocks, indices):
            i = int(i)
            if not 0 <= i < len(b.choices):
                raise SearchSpaceError(f"choice index {i} out of range 0..{len(b.choices) - 1}", path=b.path)
            out[b.path] = b.choices[i].name
        return Configuration(out)

    def one_hot(self, config: Mapping[str, str]) -> list[float]:
        """Concatenated one-hot groups (convert with ``torch.tensor(...)`` for botorch)."""
        vec = [0.0] * self.one_hot_dim
        offset = 0
        for b, i in zip(self.blocks, self.encode(config)):
            vec[offset + i] = 1.0
            offset += len(b.choices)
        return vec

    def values(self, config: Mapping[str, str]) -> dict[str, Any]:
        """Original option values of a model-free space (candidate names for model spaces)."""
        out = {}
        for b in self.blocks:
            cand = b.choices[b.index(config[b.path])]
            out[b.path] = cand.value if cand.value is not None else cand.name
        return out

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None, *, max_tries: int = 10_000) -> Configuration:
        """A uniformly random valid configuration (rejection sampling against the constraints)."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        for _ in range(max_tries):
            cfg = Configuration({b.path: rng.choice(b.choices).name for b in self.blocks})
            if self.is_valid(cfg):
                return cfg
        raise SearchSpaceError(f"no valid configuration found in {max_tries} random draws; are the constraints satisfiable?")

    def enumerate(self, *, limit: int = 1_000_000) -> Iterator[Configuration]:
        """Every valid configuration, in lexicographic index order (refuses spaces above ``limit``)."""
        if self.size > limit:
            raise SearchSpaceError(f"the space has {self.size:.3g} configurations, more than limit={limit}; sample instead")
        for combo in itertools.product(*(range(n) for n in self.cardinalities)):
            cfg = self.decode(combo)
            if self.is_valid(cfg):
                yield cfg

    def neighbours(self, config: Mapping[str, str]) -> list[Configuration]:
        """Valid configurations that differ from ``config`` in exactly one block."""
        base = dict(self.validate(config))
        out = []
        for b in self.blocks:
            for cand in b.choices:
                if cand.name != base[b.path]:
                    cfg = Configuration({**base, b.path: cand.name})
                    if self.is_valid(cfg):
                        out.append(cfg)
        return out

    # -- interop ----------------------------------------------------------------------------------
    def to_nni(self) -> dict[str, Any]:
        """NNI's search-space JSON: one ``choice`` per block, values are candidate names."""
        return {b.path: {"_type": "choice", "_value": b.names} for b in self.blocks}

    def decode_nni(self, parameters: Mapping[str, Any]) -> Configuration:
        """A configuration from the parameter dict an NNI tuner generated for :meth:`to_nni`."""
        cfg = {}
        for b in self.blocks:
            if b.path not in parameters:
                raise SearchSpaceError("NNI parameters lack this block", path=b.path)
            value = parameters[b.path]
            if isinstance(value, Mapping) and "_name" in value:  # nested-choice form
                value = value["_name"]
            name = value if isinstance(value, str) else json.dumps(value)
            cfg[b.path] = b.choices[b.index(name)].name
        return Configuration(cfg)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that :meth:`from_dict` restores.

        Blocks, choices and constraints, plus ``merged`` when :meth:`merge` dropped something.
        """
        return {
            "name": self.name,
            "blocks": [
                {"path": b.path, "module_type": b.module_type, "rule": b.rule, "choices": [c.to_dict() for c in b.choices]}
                for b in self.blocks
            ],
            "constraints": [c.to_dict() for c in self.constraints],
            **({"merged": self.merged} if self.merged else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchSpace":
        blocks = [
            Block(d["path"], d.get("module_type"), d.get("rule"), tuple(Candidate(c["type"], c.get("params") or {}) for c in d["choices"]))
            for d in data["blocks"]
        ]
        return cls(blocks, data.get("constraints") or (), name=data.get("name", "space"), merged=data.get("merged"))

    def summary(self) -> str:
        return f"SearchSpace({self.name!r}: {len(self.blocks)} blocks, {self.size:.3g} configurations)"

    __repr__ = summary
