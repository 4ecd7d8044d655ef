"""The registry of surrogate block types: the alphabet a search space is written in.

Types register themselves by decorator; the YAML ``type`` of a candidate is the registered name::

    @register_surrogate("my_block")
    class MyBlock(SurrogateBlock):
        ...

    get_surrogate("my_block")            # -> MyBlock
    build_surrogate("my_block", teacher_block, width=0.5)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock
from tocsr_nas.surrogates.errors import DuplicateSurrogateError, UnknownSurrogateError
from tocsr_nas.surrogates.kinds import ANY_KIND, KINDS

__all__ = [
    "register_surrogate",
    "unregister_surrogate",
    "get_surrogate",
    "available_surrogates",
    "surrogates_for",
    "build_surrogate",
    "surrogate_from_config",
]

_REGISTRY: dict[str, type[SurrogateBlock]] = {}

#: Reserved: ``teacher`` means "keep the original block" and is not a class.
_RESERVED = frozenset({"teacher"})

_HOW_TO_REGISTER = (
    "register a new type with @register_surrogate('<name>') on a SurrogateBlock subclass "
    "(see tocsr_nas.surrogates.base)"
)

S = TypeVar("S", bound=type[SurrogateBlock])


def register_surrogate(name: str) -> Callable[[S], S]:
    """Class decorator that registers a surrogate block type under ``name``.

    Sets ``cls.type_name = name``.

    Args:
        name: the type's name, as written in a search space (``type: name``).

    Returns:
        The decorator; it returns the class unchanged (apart from ``type_name``).

    Raises:
        DuplicateSurrogateError: ``name`` is taken (or is the reserved ``teacher``).
        TypeError: the class is not a ``SurrogateBlock`` or replaces an unknown kind.

    Example:
        >>> from tocsr_nas.surrogates import SurrogateBlock
        >>> @register_surrogate("doc_example")
        ... class DocExample(SurrogateBlock):
        ...     replaces = ("downsample",)
        >>> get_surrogate("doc_example").type_name
        'doc_example'
        >>> unregister_surrogate("doc_example")
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ValueError(f"a surrogate name is a non-empty identifier-like string, got {name!r}")

    def decorate(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, SurrogateBlock)):
            raise TypeError(f"@register_surrogate({name!r}) decorates SurrogateBlock subclasses, not {cls!r}")
        if name in _RESERVED:
            raise DuplicateSurrogateError(f"{name!r} is reserved: it means 'keep the teacher block'")
        if name in _REGISTRY:
            raise DuplicateSurrogateError(
                f"surrogate type {name!r} is already registered (by {_REGISTRY[name].__qualname__}); "
                "pick another name or unregister_surrogate() the old one first"
            )
        bad = [k for k in cls.replaces if k != ANY_KIND and k not in KINDS]
        if not cls.replaces or bad:
            raise TypeError(
                f"{cls.__qualname__}.replaces must list kinds from {list(KINDS)} or '*', got {cls.replaces!r}"
            )
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister_surrogate(name: str) -> None:
    """Remove a registered type (tests, notebooks that redefine a class).

    Raises:
        UnknownSurrogateError: ``name`` is not registered.
    """
    get_surrogate(name)
    del _REGISTRY[name]


def get_surrogate(name: str) -> type[SurrogateBlock]:
    """The surrogate class registered under ``name``.

    Raises:
        UnknownSurrogateError: no such type; the message lists the valid names.

    Example:
        >>> get_surrogate("skip").replaces
        ('*',)
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(available_surrogates()) or "none"
        raise UnknownSurrogateError(
            f"unknown surrogate type {name!r}; valid types: teacher, {valid}; {_HOW_TO_REGISTER}"
        ) from None


def available_surrogates() -> list[str]:
    """Names of every registered type, sorted (``teacher`` is not a type and is not listed)."""
    return sorted(_REGISTRY)


def surrogates_for(kind: str) -> list[str]:
    """Names of the registered types that can replace a block of ``kind``, sorted.

    Args:
        kind: a teacher block kind (``"resnet"``, ``"transformer"``, ``"downsample"``, ``"upsample"``).

    Raises:
        ValueError: ``kind`` is not a known kind.

    Example:
        >>> surrogates_for("downsample")
        ['pool_down', 'skip']
    """
    if kind not in KINDS:
        raise ValueError(f"unknown block kind {kind!r}; kinds: {list(KINDS)}")
    return sorted(n for n, c in _REGISTRY.items() if kind in c.replaces or ANY_KIND in c.replaces)


def build_surrogate(name: str, block: nn.Module, **params: Any) -> SurrogateBlock:
    """Build the surrogate ``name`` for a teacher block.

    Args:
        name: registered type name.
        block: the teacher block it stands in for.
        **params: the type's parameters.

    Returns:
        ``get_surrogate(name).from_teacher(block, **params)``.

    Raises:
        UnknownSurrogateError: unknown ``name``.
        SurrogateParamError: unknown, missing or invalid parameters.
        IncompatibleBlockError: the type cannot replace this block.
    """
    return get_surrogate(name).from_teacher(block, **params)


def surrogate_from_config(config: Mapping[str, Any], type_name: str | None = None) -> SurrogateBlock:
    """Rebuild a surrogate block (random weights) from its saved config.

    Args:
        config: ``block.config``, or the parsed ``config.json`` / ``to_json_string()``.
        type_name: the registered type; without it the config's ``_class_name`` (present in the
            JSON form, not in ``block.config``) picks the class.

    Raises:
        UnknownSurrogateError: unknown ``type_name``, or no registered type has the class name.
    """
    if type_name is not None:
        return get_surrogate(type_name).from_config(dict(config))
    class_name = config.get("_class_name")
    for cls in _REGISTRY.values():
        if cls.__name__ == class_name:
            return cls.from_config(dict(config))
    raise UnknownSurrogateError(
        f"no registered surrogate type has class {class_name!r} (pass type_name= for a config without "
        f"'_class_name'); registered classes: {sorted(c.__name__ for c in _REGISTRY.values())}; {_HOW_TO_REGISTER}"
    )
