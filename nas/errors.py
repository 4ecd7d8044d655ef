"""Exceptions a user can cause; the CLI turns each into one line and exit code 2.

Every error derives from :class:`TocsrError`, which lives in the torch-free
:mod:`tocsr_nas.searchspace.errors`; each error class lives in the layer that raises it
(``SearchSpaceError`` in ``searchspace``, ``LibraryMismatchError`` in ``surrogates.errors``,
``JournalError`` in ``search.journal``...). This module holds the errors of the composing layer and
imports nothing heavy.
"""

import math
import numbers

from tocsr_nas.searchspace.errors import SearchSpaceError, TocsrError

__all__ = [
    "TocsrError",
    "SearchSpaceError",
    "UserInputError",
    "DamagedFileError",
    "option_name",
    "require_at_least",
    "require_in_range",
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
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise UserInputError(f"{option_name(name)} must be an integer, got {value!r}")
        if value < minimum:
            raise UserInputError(f"{option_name(name)} must be >= {minimum}, got {value}")


def option_name(field: str) -> str:
    """The command-line option of a settings field: ``batch_size`` -> ``--batch-size``."""
    return f"--{field.replace('_', '-')}"


def require_in_range(
    config: object,
    *names: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    options: dict[str, str] | None = None,
) -> None:
    """Check that each named field of a settings object is a finite number within ``[low, high]``.

    NaN and the infinities are always refused (a NaN passes every ``<`` check, so ``value < 0`` alone
    lets it through). The message names the field as its command-line option.

    Args:
        config: the settings object (a dataclass, a namespace...).
        *names: the fields to check.
        low: the smallest allowed value (``None``: no lower bound).
        high: the largest allowed value (``None``: no upper bound).
        low_open: exclude ``low`` itself (``(low, ...``).
        high_open: exclude ``high`` itself (``..., high)``).
        optional: let ``None`` through (a field whose ``None`` means "automatic").
        options: the option of a field whose name differs from it, e.g. ``{"unet_lr": "--lr"}``.

    Raises:
        UserInputError: the first bad field, named as its option, with the allowed range.

    Example:
        >>> from types import SimpleNamespace
        >>> require_in_range(SimpleNamespace(w_pixel=float("nan")), "w_pixel", low=0)
        Traceback (most recent call last):
        ...
        tocsr_nas.errors.UserInputError: --w-pixel must be a finite number >= 0, got nan
    """
    options = options or {}
    if low is not None and high is not None:
        allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        allowed = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        allowed = f"{'<' if high_open else '<='} {high:g}"
    else:
        allowed = ""
    for name in names:
        value = getattr(config, name)
        if value is None and optional:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            option = options.get(name, option_name(name))
            raise UserInputError(f"{option} must be a finite number {allowed}".rstrip() + f", got {value!r}")
