"""Run each distinct block once in a traced forward pass; its twins return zero-MAC stand-ins.

A UNet repeats itself: in SD2.1's, the 44 searchable blocks are only 25 distinct
(module signature, call signature) pairs (see :mod:`tocsr_nas.evaluators.signatures`); the
repeats carry about half of the model's MACs. A whole-model fvcore trace needs every block's
share, but two calls with the same signatures run the same ops on the same shapes, so a repeat
("twin") need not run at all:

    share(twin) = share(first block with its signatures)          (counting never reads values)
    whole       = traced whole + sum_{twins} (share(first) - traced share(twin))

While :class:`TwinBlocks` is active, each block's ``forward`` is routed through a dispatcher
(an instance attribute, so module hooks, fvcore's scope names and the call count stay those of
the block itself). The first call with a given signature pair runs the real block and records
the structure of its output; a later call returns a *stand-in*: the same structure (tensor,
tuple, diffusers ``BaseOutput``, ...) of tensors with the same shapes and dtypes, built only from
ops that cost no MACs (``zeros``, ``as_strided``, ``to``, ``cat``, ``slice``, ``view``), so
its traced share is 0 MACs. Each stand-in tensor is concatenated with one element of every tensor
input, so whatever fed the twin stays in the traced graph (the JIT tracer drops dead code)
exactly as when the real block consumes it.

Values downstream of a stand-in are zeros instead of features; MAC counts depend on shapes only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from tocsr_nas.evaluators.signatures import call_signature, module_signature

__all__ = ["TwinBlocks"]

logger = logging.getLogger(__name__)

_PLAIN = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class _TensorShape:
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


@dataclass(frozen=True)
class _OutputTemplate:
    """The structure of a block's output: a pytree spec and its leaves, tensors as shapes."""

    spec: Any
    leaves: tuple[Any, ...]

    @classmethod
    def of(cls, output: Any) -> _OutputTemplate | None:
        """The template of ``output``, or ``None`` when a leaf is neither a tensor nor plain."""
        leaves, spec = pytree.tree_flatten(output)
        described = []
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                described.append(_TensorShape(tuple(leaf.shape), leaf.dtype, leaf.device))
            elif isinstance(leaf, _PLAIN):
                described.append(leaf)
            else:  # an unknown container could hide tensors: never imitate it
                return None
        return cls(spec, tuple(described))

    def stand_in(self, inputs: Sequence[torch.Tensor]) -> Any:
        """An output of this structure built with zero-MAC ops that depends on ``inputs``."""
        anchors = [t.as_strided((1,), (1,)) for t in inputs if t.numel() > 0]  # (1,): first element
        leaves = []
        for leaf in self.leaves:
            if not isinstance(leaf, _TensorShape):
                leaves.append(leaf)
                continue
            numel = 1
            for size in leaf.shape:
                numel *= size
            zeros = torch.zeros(numel, dtype=leaf.dtype, device=leaf.device)  # (N,)
            tied = [a.to(dtype=leaf.dtype, device=leaf.device) for a in anchors]
            flat = torch.cat([zeros, *tied])[:numel]  # (N,): zeros, tied to every input
            leaves.append(flat.view(leaf.shape))
        return pytree.tree_unflatten(leaves, self.spec)


class TwinBlocks:
    """Context manager: inside it, only the first of identical block calls runs for real.

    Args:
        model: the model whose blocks are routed.
        paths: dotted paths of the blocks (disjoint: none inside another).

    Attributes:
        twin_of: after the forward pass, ``{path of a block that returned a stand-in: path of the
            block whose identical call ran}``.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
        >>> with torch.no_grad(), TwinBlocks(model, ["0", "1"]) as twins:
        ...     out = model(torch.ones(1, 4))
        >>> twins.twin_of, out.abs().sum().item()
        ({'1': '0'}, 0.0)
    """

    def __init__(self, model: nn.Module, paths: Sequence[str]) -> None:
        self.blocks = {path: model.get_submodule(path) for path in paths}
        self.signatures = {path: module_signature(block) for path, block in self.blocks.items()}
        self.twin_of: dict[str, str] = {}
        self._first: dict[tuple[str, str], str] = {}
        self._templates: dict[tuple[str, str], _OutputTemplate | None] = {}
        self._saved: dict[str, Any] = {}

    def _dispatch(self, path: str, forward: Callable[..., Any]) -> Callable[..., Any]:
        def routed(*args: Any, **kwargs: Any) -> Any:
            key = (self.signatures[path], call_signature(args, kwargs))
            first = self._first.setdefault(key, path)
            template = self._templates.get(key)
            if first == path or template is None:
                output = forward(*args, **kwargs)
                if first == path:
                    self._templates[key] = _OutputTemplate.of(output)
                return output
            self.twin_of[path] = first
            tensors = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
            return template.stand_in(tensors)

        return routed

    def __enter__(self) -> TwinBlocks:
        for path, block in self.blocks.items():
            # an instance attribute wins over the class's forward; remember any own one
            self._saved[path] = block.__dict__.get("forward")
            block.forward = self._dispatch(path, block.forward)
        return self

    def __exit__(self, *exc: Any) -> None:
        for path, block in self.blocks.items():
            own = self._saved.pop(path, None)
            if own is None:
                block.__dict__.pop("forward", None)
            else:
                block.forward = own
        if self.twin_of:
            logger.debug("%d of %d blocks ran as stand-ins for identical ones", len(self.twin_of), len(self.blocks))
