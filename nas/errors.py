"""Exceptions a user can cause; the CLI turns each into one line and exit code 2."""

from tocsr_nas.searchspace.errors import SearchSpaceError, TocsrError

__all__ = ["TocsrError", "SearchSpaceError", "UserInputError", "IncompatibleLibraryError"]


class UserInputError(TocsrError):
    """A bad path, argument or file given by the user."""


class IncompatibleLibraryError(TocsrError):
    """A surrogate library opened against another teacher or search space."""
