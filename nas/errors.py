"""Exceptions a user can cause; the CLI turns each into one line and exit code 2.

Every error derives from :class:`TocsrError`, which lives in the torch-free
:mod:`tocsr_nas.searchspace.errors`; each error class lives in the layer that raises it
(``SearchSpaceError`` in ``searchspace``, ``LibraryMismatchError`` in ``surrogates.errors``,
``JournalError`` in ``search.journal``...). This module holds the errors of the composing layer and
imports nothing heavy.
"""

from tocsr_nas.searchspace.errors import SearchSpaceError, TocsrError

__all__ = [
    "TocsrError",
    "SearchSpaceError",
    "UserInputError",
    "DamagedFileError",
    "require_at_least",
]


class UserInputError(TocsrError):
    """A bad path, argument or file given by the user."""


class DamagedFileError(TocsrError):
    """A file that exists but is not what its writer wrote: truncated, corrupt, not matching the size
    and sha256 its manifest records, or a manifest entry pointing outside its folder.

    Raised by the readers of :mod:`tocsr_nas._io` (``read_json``, ``load_safetensors``,
    ``load_torch_state``, ``verify_file``, ``inside``); the message names the file.
    """


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
