"""Check that a surrogate can stand in for its teacher block: same call, same output structure and shape.

Used when a search space is built over a model (every candidate is checked once, on small
random inputs) and by the conformance suite in :mod:`tocsr_nas.surrogates.testing`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tocsr_nas.surrogates.errors import IncompatibleBlockError, SurrogateShapeError
from tocsr_nas.surrogates.kinds import block_kind, example_inputs

__all__ = ["output_structure", "verify_surrogate"]


def output_structure(output: Any) -> tuple[Any, ...]:
    """A comparable description of what a block returned: container type and tensor shape.

    Returns:
        ``("Tensor", shape)``, ``("tuple", length, shape of [0])`` or ``(class name, shape of .sample)``.
    """
    if isinstance(output, torch.Tensor):
        return ("Tensor", tuple(output.shape))
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return ("tuple", len(output), tuple(output[0].shape))
    if hasattr(output, "sample") and isinstance(output.sample, torch.Tensor):
        return (type(output).__name__, tuple(output.sample.shape))
    return (type(output).__name__,)


def _calls(teacher: nn.Module, height: int, width: int) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """The calls a surrogate must answer like its teacher: (label, args, kwargs)."""
    gen = torch.Generator().manual_seed(0)
    args, kwargs = example_inputs(teacher, batch=1, height=height, width=width, generator=gen)
    kind = block_kind(teacher)
    calls = [("default call", args, kwargs)]
    if kind == "transformer":
        calls.append(("return_dict=False", args, {**kwargs, "return_dict": False}))
    if kind == "upsample":
        calls.append(("output_size", args, {**kwargs, "output_size": (2 * height - 1, 2 * width + 1)}))
    return calls


@torch.no_grad()
def verify_surrogate(surrogate: nn.Module, teacher: nn.Module, *, height: int = 7, width: int = 6) -> None:
    """Raise unless ``surrogate`` answers every call of ``teacher`` with the same structure and shape.

    The calls: the teacher's default call on random ``(1, C, height, width)`` inputs (with ``temb``
    or ``encoder_hidden_states`` as the block needs), plus ``return_dict=False`` for transformer
    blocks and an explicit ``output_size`` for up-samplers. Odd default sizes exercise rounding.

    Args:
        surrogate: the candidate block.
        teacher: the block it stands in for.
        height: input height.
        width: input width.

    Raises:
        IncompatibleBlockError: the teacher is of no known kind.
        SurrogateShapeError: a call fails or returns another structure or shape; the message
            names the surrogate, the call and both results.
    """
    if block_kind(teacher) is None:
        raise IncompatibleBlockError(f"{type(teacher).__name__} is not a block of a known kind")
    label = getattr(surrogate, "type_name", None) or type(surrogate).__name__
    for call, args, kwargs in _calls(teacher, height, width):
        expected = output_structure(teacher(*args, **kwargs))
        try:
            got = output_structure(surrogate(*args, **kwargs))
        except Exception as exc:  # the surrogate's own failure, reported in one line
            raise SurrogateShapeError(
                f"surrogate {label!r} fails on the {type(teacher).__name__} {call} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        if got != expected:
            raise SurrogateShapeError(
                f"surrogate {label!r} returns {got} for the {type(teacher).__name__} {call}, "
                f"where the teacher returns {expected}"
            )
