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
    "require_at_least",
]


class UserInputError(TocsrError):
    """A bad path, argument or file given by the user."""


class IncompatibleLibraryError(LibraryMismatchError):
    """A surrogate library used with another teacher or search space than it was distilled for."""


def require_at_least(config: object, minimum: int, *names: str) -> None:
    """Check that each named field of a settings object is ``>= minimum``.

    The message names the field as its command-line option (``batch_size`` -> ``--batch-size``).

    Raises:
        UserInputError: the first field below ``minimum``.

    Example:
        >>> from types import SimpleNamespace
        >>> require_at_least(SimpleNamespace(steps=0), 1, "steps")
        Traceback (most recent call last):
        ...
        tocsr_nas.errors.UserInputError: --steps must be >= 1, got 0
    """
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise UserInputError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
