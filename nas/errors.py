"""Exceptions a user can cause; the CLI turns each into one line and exit code 2."""

from tocsr_nas.searchspace.errors import SearchSpaceError, TocsrError
from tocsr_nas.surrogates.library import IncompleteLibraryError, LibraryMismatchError

__all__ = [
    "TocsrError",
    "SearchSpaceError",
    "UserInputError",
    "IncompatibleLibraryError",
    "LibraryMismatchError",
    "IncompleteLibraryError",
]


class UserInputError(TocsrError):
    """A bad path, argument or file given by the user."""


class IncompatibleLibraryError(LibraryMismatchError):
    """A surrogate library used with another teacher or search space than it was distilled for."""
