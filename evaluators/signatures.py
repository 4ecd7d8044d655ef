"""Signatures that decide when two module calls cost the same MACs, so one trace serves both.

fvcore counts MACs from the ops a call runs and the shapes of their operands. Two calls run
the same ops on the same shapes when

* the modules are the same architecture: same class, same configuration (diffusers
  ``ConfigMixin``) or ``repr``, same parameter and buffer shapes and dtypes, and the same
  plain attributes (flags such as ``Upsample2D.interpolate`` or the attention processor's
  class, which ``repr`` does not show), on every submodule; and
* the calls are the same: the same argument structure, with tensors described by shape and
  dtype and every other value by its ``repr``.

A cost table traces one call per distinct ``(module signature, call signature)`` pair and
copies the figures to the others. Counting never reads tensor *values* (only shapes), which is
what makes this exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

__all__ = ["call_signature", "module_signature"]

_PLAIN = (bool, int, float, str, type(None))


def _plain_attributes(module: nn.Module) -> list[tuple[str, str]]:
    """Public non-module attributes: plain values by ``repr``, anything else by its type only."""
    described = []
    for key, value in sorted(vars(module).items()):
        if key.startswith("_"):
            continue
        if isinstance(value, _PLAIN) or (
            isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value)
        ):
            described.append((key, repr(value)))
        else:  # e.g. an attention processor or a functools.partial: its kind, never an address
            described.append((key, f"<{type(value).__module__}.{type(value).__qualname__}>"))
    return described


def module_signature(module: nn.Module) -> str:
    """A hash of what fixes a module's MACs on given inputs (everything but weight values).

    Args:
        module: any ``nn.Module``.

    Returns:
        64 hex digits: class, configuration (diffusers ``ConfigMixin``) or ``repr``, parameter
        and buffer shapes and dtypes, and the plain attributes of every submodule.

    Example:
        >>> a, b = nn.Linear(4, 4), nn.Linear(4, 4)
        >>> module_signature(a) == module_signature(b) != module_signature(nn.Linear(4, 2))
        True
    """
    parts = [f"{type(module).__module__}.{type(module).__qualname__}"]
    config = getattr(module, "config", None)
    if isinstance(config, Mapping):
        parts.append(json.dumps(dict(config), sort_keys=True, default=repr))
    parts.append(repr(module))
    parts.append(repr([(n, tuple(p.shape), str(p.dtype)) for n, p in module.named_parameters()]))
    parts.append(repr([(n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers()]))
    parts.append(repr([(n, _plain_attributes(m)) for n, m in module.named_modules()]))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def call_signature(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The structure of a call with tensors replaced by their shape and dtype.

    Args:
        args: positional call arguments (tensors may be nested in tuples, lists and dicts).
        kwargs: keyword call arguments.

    Returns:
        A string equal for two calls exactly when they have the same structure, tensor shapes
        and dtypes, and non-tensor values (by ``repr``).

    Example:
        >>> call_signature((torch.zeros(2, 3),), {"scale": 1.0}) == call_signature(
        ...     (torch.ones(2, 3),), {"scale": 1.0})
        True
    """
    leaves, spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
    described = [
        ("tensor", tuple(x.shape), str(x.dtype)) if isinstance(x, torch.Tensor) else repr(x)
        for x in leaves
    ]
    return repr((str(spec), described))
