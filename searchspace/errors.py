"""Errors of the search-space DSL. Every message names the rule and/or block path involved."""

from __future__ import annotations


class TocsrError(Exception):
    """Base class of every error a user of tocsr-nas can cause (the CLI prints one line)."""


class SearchSpaceError(TocsrError, ValueError):
    """An invalid search space, rule, candidate, constraint or configuration.

    Args:
        message: what is wrong and what to do about it.
        rule: the name of the rule involved, if any.
        path: the block path involved, if any.
    """

    def __init__(self, message: str, *, rule: str | None = None, path: str | None = None) -> None:
        self.rule = rule
        self.path = path
        where = []
        if rule is not None:
            where.append(f"rule {rule!r}")
        if path is not None:
            where.append(f"path: {path}")
        super().__init__(message + (f" ({', '.join(where)})" if where else ""))
