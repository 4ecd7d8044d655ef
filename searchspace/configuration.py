"""A configuration: one candidate name per block, with a canonical JSON form and a stable hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from tocsr_nas.searchspace.errors import SearchSpaceError

__all__ = ["Configuration"]


class Configuration(Mapping[str, str]):
    """An immutable mapping ``block path -> candidate name``.

    It is what the journal, the CSV files, the CLI and export all speak. Its canonical JSON form
    has sorted keys and no spaces, so equal configurations have equal JSON and equal hashes.

    Example:
        >>> cfg = Configuration({"mid_block.resnets.0": "skip", "down_blocks.0.resnets.0": "teacher"})
        >>> cfg.to_json()
        '{"down_blocks.0.resnets.0":"teacher","mid_block.resnets.0":"skip"}'
        >>> len(cfg.hash)
        12
    """

    __slots__ = ("_data", "_json")

    def __init__(self, data: Mapping[str, str] | None = None, /, **kwargs: str) -> None:
        merged = dict(data or {}, **kwargs)
        for key, value in merged.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise SearchSpaceError(
                    f"a configuration maps block paths to candidate names (strings), got {key!r}: {value!r}"
                )
        self._data = dict(sorted(merged.items()))
        self._json = json.dumps(self._data, separators=(",", ":"), sort_keys=True)

    # Mapping protocol
    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(self._json)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Configuration):
            return self._json == other._json
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Configuration({self._data!r})"

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace."""
        return self._json

    @classmethod
    def from_json(cls, text: str) -> "Configuration":
        """Parse the JSON form (any key order); a malformed string is a :class:`SearchSpaceError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SearchSpaceError(f"configuration is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SearchSpaceError("configuration JSON must be an object mapping block paths to candidates")
        return cls(data)

    @property
    def hash(self) -> str:
        """First 12 hex digits of the SHA-256 of :meth:`to_json`."""
        return hashlib.sha256(self._json.encode()).hexdigest()[:12]

    def replace(self, **changes: str) -> "Configuration":
        """A copy with some blocks changed (paths with dots: use :meth:`with_choice`)."""
        return Configuration({**self._data, **changes})

    def with_choice(self, path: str, candidate: str) -> "Configuration":
        """A copy in which block ``path`` uses ``candidate``."""
        return Configuration({**self._data, path: candidate})

    def changed(self, default: str = "teacher") -> dict[str, str]:
        """The blocks whose choice differs from ``default``."""
        return {k: v for k, v in self._data.items() if v != default}

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)
