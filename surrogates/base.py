"""The base class of every surrogate block type.

A surrogate type is ONE class::

    from diffusers.configuration_utils import register_to_config
    from tocsr_nas.surrogates import SurrogateBlock, register_surrogate, resnet_dims

    @register_surrogate("half_resnet")
    class HalfResnet(SurrogateBlock):
        replaces = ("resnet",)                       # teacher kinds it can stand in for

        @register_to_config                          # the constructor is the config
        def __init__(self, *, in_channels: int, out_channels: int, temb_channels: int):
            super().__init__()
            ...

        @classmethod
        def from_teacher(cls, block, *, width: float = 0.5):   # keyword-only params = the YAML grid
            dims = resnet_dims(block)
            return cls(in_channels=dims.in_channels, ...)

        def forward(self, input_tensor, temb, *args, **kwargs):  # the teacher's call signature
            ...

What the base class adds:

* ``from_teacher`` of every subclass is wrapped so that a misspelt or missing parameter, or a
  teacher block of a kind the type does not replace, raises a
  :class:`~tocsr_nas.surrogates.errors.SurrogateParamError` /
  :class:`~tocsr_nas.surrogates.errors.IncompatibleBlockError` with the valid choices, instead of
  a bare ``TypeError`` deep inside.
* :meth:`SurrogateBlock.compatible` and :meth:`SurrogateBlock.param_defaults`.
* diffusers' ``ModelMixin``/``ConfigMixin``: ``block.config``, ``to_json_string()``,
  ``type(block).from_config(config)``, ``save_pretrained``/``from_pretrained`` (safetensors).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from diffusers import ConfigMixin, ModelMixin
from torch import nn

from tocsr_nas.surrogates.errors import IncompatibleBlockError, SurrogateParamError
from tocsr_nas.surrogates.kinds import ANY_KIND, block_kind

__all__ = ["SurrogateBlock", "check_number", "check_bool"]

_REQUIRED = inspect.Parameter.empty


class SurrogateBlock(ModelMixin, ConfigMixin):
    """A cheaper stand-in for one teacher block, with the teacher block's call signature.

    Subclasses set :attr:`replaces`, decorate ``__init__`` with ``@register_to_config`` and
    implement :meth:`from_teacher` and ``forward``. Register them with
    :func:`~tocsr_nas.surrogates.registry.register_surrogate`.

    Attributes:
        type_name: the registered name (the YAML ``type``); set by ``register_surrogate``.
        replaces: teacher kinds (see :func:`~tocsr_nas.surrogates.kinds.block_kind`) this type
            can stand in for; ``("*",)`` means any kind.
        example_params: parameter sets the conformance suite
            (:mod:`tocsr_nas.surrogates.testing`) builds this type with; include every required
            parameter.
    """

    config_name = "config.json"
    type_name: ClassVar[str | None] = None
    replaces: ClassVar[tuple[str, ...]] = ()
    example_params: ClassVar[tuple[Mapping[str, Any], ...]] = ({},)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("from_teacher")
        if isinstance(own, classmethod) and not getattr(own.__func__, "_tocsr_checked", False):
            cls.from_teacher = classmethod(_checked_from_teacher(own.__func__))

    @classmethod
    def compatible(cls, block: nn.Module) -> bool:
        """Whether this type can stand in for ``block``.

        Args:
            block: a teacher block.

        Returns:
            ``True`` when :attr:`replaces` holds ``"*"`` (any block: override this method to narrow
            it down) or ``block_kind(block)`` is in :attr:`replaces`.
        """
        if ANY_KIND in cls.replaces:
            return True
        kind = block_kind(block)
        return kind is not None and kind in cls.replaces

    @classmethod
    def from_teacher(cls, block: nn.Module, **params: Any) -> SurrogateBlock:
        """Build a surrogate for ``block``, reading its dimensions from the teacher block.

        Args:
            block: the teacher block to stand in for.
            **params: the type's keyword-only parameters (see :meth:`param_defaults`).

        Returns:
            The surrogate, possibly initialised from the teacher's weights.

        Raises:
            SurrogateParamError: an unknown, missing or invalid parameter.
            IncompatibleBlockError: ``block`` is of a kind this type does not replace.
        """
        raise NotImplementedError(f"{cls.__name__} does not implement from_teacher")

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """The parameters :meth:`from_teacher` accepts, with their defaults.

        Returns:
            ``{name: default}``; a required parameter maps to ``inspect.Parameter.empty``.

        Example:
            >>> from tocsr_nas.surrogates import get_surrogate
            >>> get_surrogate("conv_mixer").param_defaults()
            {'kernel_size': 3, 'expansion': 1.0}
        """
        sig = inspect.signature(cls.from_teacher)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    # diffusers' ModelMixin.device/dtype look at the first parameter and raise StopIteration for a
    # parameter-free block (``skip``), which breaks ``torch.jit.trace`` of any model containing one.
    @property
    def device(self) -> torch.device:
        """Device of the first parameter or buffer (CPU for a block without either)."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the first floating parameter or buffer (the default dtype without either)."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    def extra_repr(self) -> str:
        return f"type={self.type_name!r}"


def _checked_from_teacher(func: Any) -> Any:
    """Wrap a subclass's ``from_teacher`` with parameter and compatibility checks."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())[2:]  # after (cls, block)
    bad = [p.name for p in params if p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD)]
    if bad:
        raise TypeError(
            f"{func.__qualname__}: surrogate parameters must be keyword-only (put them after '*'): {bad}"
        )
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}

    @functools.wraps(func)
    def from_teacher(cls: type[SurrogateBlock], block: nn.Module, **kwargs: Any) -> SurrogateBlock:
        label = cls.type_name or cls.__name__
        unknown = sorted(set(kwargs) - set(names))
        if unknown and not open_ended:
            valid = ", ".join(f"{n}={d!r}" if d is not _REQUIRED else n for n, d in names.items()) or "none"
            raise SurrogateParamError(
                f"surrogate {label!r} has no parameter(s) {unknown}; valid parameters: {valid}"
            )
        missing = [n for n, d in names.items() if d is _REQUIRED and n not in kwargs]
        if missing:
            raise SurrogateParamError(f"surrogate {label!r} needs parameter(s) {missing}")
        if not cls.compatible(block):
            raise IncompatibleBlockError(
                f"surrogate {label!r} replaces {list(cls.replaces)} blocks, not "
                f"{type(block).__name__} (kind {block_kind(block)!r})"
            )
        return func(cls, block, **kwargs)

    from_teacher._tocsr_checked = True  # type: ignore[attr-defined]
    return from_teacher


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    odd: bool = False,
) -> float | int:
    """Validate one numeric surrogate parameter.

    Args:
        owner: the surrogate type name, for the message.
        name: the parameter name.
        value: the value given (YAML may give an ``int`` for a ``float``).
        integer: the value must be an integer.
        low: smallest allowed value.
        high: largest allowed value.
        low_open: ``low`` itself is not allowed.
        odd: the value must be odd.

    Returns:
        ``value`` as ``int`` (``integer=True``) or ``float``.

    Raises:
        SurrogateParamError: the value has the wrong type or is out of range.
    """
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or not math.isfinite(value):
        want = "an integer" if integer else "a number"
        raise SurrogateParamError(f"surrogate {owner!r}: {name} must be {want}, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise SurrogateParamError(
            f"surrogate {owner!r}: {name} must be {'>' if low_open else '>='} {low}, got {value!r}"
        )
    if high is not None and value > high:
        raise SurrogateParamError(f"surrogate {owner!r}: {name} must be <= {high}, got {value!r}")
    if odd and value % 2 != 1:
        raise SurrogateParamError(f"surrogate {owner!r}: {name} must be odd, got {value!r}")
    return int(value) if integer else float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """Validate one boolean surrogate parameter.

    Raises:
        SurrogateParamError: ``value`` is not a ``bool``.
    """
    if not isinstance(value, bool):
        raise SurrogateParamError(f"surrogate {owner!r}: {name} must be true or false, got {value!r}")
    return value
