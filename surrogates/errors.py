"""Errors of the surrogate package. Each derives from :class:`~tocsr_nas.searchspace.errors.TocsrError`,
so the CLI prints it as one line; each message says what to do next."""

from __future__ import annotations

from tocsr_nas.searchspace.errors import TocsrError

__all__ = [
    "SurrogateError",
    "UnknownSurrogateError",
    "DuplicateSurrogateError",
    "SurrogateParamError",
    "IncompatibleBlockError",
    "SurrogateShapeError",
    "LibraryMismatchError",
    "IncompleteLibraryError",
]


class SurrogateError(TocsrError):
    """Base class of the errors raised by :mod:`tocsr_nas.surrogates`."""


class UnknownSurrogateError(SurrogateError, LookupError):
    """A surrogate type name that is not in the registry."""


class DuplicateSurrogateError(SurrogateError, ValueError):
    """A second registration under a name that is already taken."""


class SurrogateParamError(SurrogateError, ValueError):
    """An unknown, missing or invalid parameter of a surrogate type."""


class IncompatibleBlockError(SurrogateError, TypeError):
    """A surrogate type asked to stand in for a teacher block it cannot replace."""


class SurrogateShapeError(SurrogateError, ValueError):
    """A surrogate whose output structure or shape differs from its teacher block's."""


class LibraryMismatchError(SurrogateError):
    """A surrogate library opened against another teacher or search space, or unreadable."""


class IncompleteLibraryError(LibraryMismatchError):
    """A surrogate library in which some (block, candidate) pairs are not distilled yet."""
