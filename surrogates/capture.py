"""Capture the exact inputs and outputs of blocks inside a model's forward pass.

Blockwise distillation trains each surrogate to map a teacher block's inputs to that block's
outputs, and cost tables trace each block on its real inputs. Both need, for a set of dotted
module paths, the call arguments a block received inside ``model(*args, **kwargs)`` and what it
returned. :func:`capture_block_io` runs one forward pass with hooks on those modules;
:func:`iter_capture` does the same over a stream of batches.

The forward pass stops as soon as every requested block is recorded (the rest of the model is
not needed). Captured tensors are detached references (no copy). A model that later modifies
one of them in place would corrupt the capture; this is detected through the tensors' version
counters and reported, and ``clone=True`` stores copies instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tocsr_nas.searchspace.errors import TocsrError

__all__ = ["BlockIO", "CaptureError", "capture_block_io", "iter_capture"]

logger = logging.getLogger(__name__)


class CaptureError(TocsrError):
    """A block cannot be captured (unknown path, never called, called twice, ...)."""


@dataclass
class BlockIO:
    """What one block received and returned during one forward pass.

    Attributes:
        args: positional call arguments, tensors detached.
        kwargs: keyword call arguments, tensors detached.
        output: the block's return value (tensors detached), ``None`` when outputs were not
            captured.

    Example:
        >>> io = BlockIO(args=(torch.zeros(1),), kwargs={}, output=torch.ones(1))
        >>> io.call(nn.Identity())
        tensor([0.])
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    output: Any = None

    def call(self, module: nn.Module) -> Any:
        """Calls ``module`` on the captured inputs: ``module(*self.args, **self.kwargs)``."""
        return module(*self.args, **self.kwargs)

    def to(self, device: torch.device | str) -> BlockIO:
        """A copy with every tensor moved to ``device``."""
        move = lambda x: x.to(device) if isinstance(x, torch.Tensor) else x  # noqa: E731
        return BlockIO(
            args=_map_tensors(move, self.args),
            kwargs=_map_tensors(move, self.kwargs),
            output=_map_tensors(move, self.output),
        )


def _map_tensors(fn: Any, value: Any) -> Any:
    """Applies ``fn`` to every tensor in ``value`` (tuples, lists, dicts, diffusers outputs)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_map_tensors(fn, v) for v in value)
    if isinstance(value, Mapping):
        # diffusers BaseOutput is an OrderedDict subclass whose fields are also attributes
        mapped = {k: _map_tensors(fn, v) for k, v in value.items()}
        try:
            return type(value)(**mapped)
        except TypeError:
            return mapped
    return value


def _resolve(model: nn.Module, paths: Sequence[str]) -> dict[str, nn.Module]:
    if isinstance(paths, str):
        paths = [paths]
    modules = {}
    for path in paths:
        try:
            modules[path] = model.get_submodule(path)
        except AttributeError:
            raise CaptureError(
                f"no module at path {path!r} in {type(model).__name__}; "
                "paths are dotted names as listed by model.named_modules()"
            ) from None
    return modules


class _AllCaptured(Exception):
    """Raised from a hook once every block is recorded: the rest of the forward is not needed."""


class _Recorder:
    """Forward (pre-)hooks that store one call per block; ``remove()`` detaches them all."""

    def __init__(self, modules: Mapping[str, nn.Module], *, outputs: bool, clone: bool) -> None:
        self.modules = dict(modules)
        self.outputs = outputs
        self.clone = clone
        self.handles: list[Any] = []
        self.records: dict[str, BlockIO] = {}
        self._path = ""
        # (path, tensor, version at capture): detached tensors share their source's version counter
        self.versions: list[tuple[str, torch.Tensor, int]] = []
        for path, module in self.modules.items():
            self.handles.append(
                module.register_forward_pre_hook(self._pre_hook(path), with_kwargs=True)
            )
            if outputs:
                self.handles.append(module.register_forward_hook(self._post_hook(path)))

    def _keep(self, tensor: torch.Tensor) -> torch.Tensor:
        kept = tensor.detach()
        if self.clone:
            return kept.clone()
        self.versions.append((self._path, kept, kept._version))
        return kept

    def _pre_hook(self, path: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if path in self.records:
                raise CaptureError(
                    f"block {path!r} was called more than once in one forward pass; "
                    "capture supports blocks that run once per forward"
                )
            self._path = path
            self.records[path] = BlockIO(
                args=tuple(_map_tensors(self._keep, tuple(args))),
                kwargs=dict(_map_tensors(self._keep, dict(kwargs))),
            )
            if not self.outputs and len(self.records) == len(self.modules):
                raise _AllCaptured

        return hook

    def _post_hook(self, path: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self._path = path
            self.records[path].output = _map_tensors(self._keep, output)
            self._outputs_seen += 1
            if self._outputs_seen == len(self.modules):
                raise _AllCaptured

        return hook

    def start(self) -> None:
        self.records = {}
        self.versions = []
        self._outputs_seen = 0

    def finish(self) -> dict[str, BlockIO]:
        missing = [p for p in self.modules if p not in self.records]
        if missing:
            raise CaptureError(
                f"block(s) {', '.join(map(repr, missing))} never ran during the forward pass"
            )
        for path, tensor, version in self.versions:
            if tensor._version != version:
                raise CaptureError(
                    f"a tensor captured at block {path!r} was modified in place later in the "
                    "forward pass; capture again with clone=True"
                )
        records = {path: self.records[path] for path in self.modules}  # caller's order
        self.records, self.versions = {}, []
        return records

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def capture_block_io(
    model: nn.Module,
    paths: Sequence[str],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    outputs: bool = True,
    clone: bool = False,
) -> dict[str, BlockIO]:
    """Runs ``model(*args, **kwargs)`` once and records the calls of the blocks at ``paths``.

    Args:
        model: the model, e.g. a diffusers ``UNet2DConditionModel``.
        paths: dotted module paths (as in ``model.named_modules()``), e.g.
            ``["down_blocks.0.resnets.0", "mid_block.attentions.0"]``.
        args: positional arguments of the model call.
        kwargs: keyword arguments of the model call.
        outputs: also record each block's output.
        clone: store copies of the tensors instead of detached references.

    Returns:
        ``{path: BlockIO}`` in the order of ``paths``; ``io.call(block)`` reproduces the block's
        output.

    Raises:
        CaptureError: a path names no module, a block never ran or ran twice, or (without
            ``clone``) a captured tensor was modified in place afterwards.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        >>> io = capture_block_io(net, ["0"], (torch.ones(1, 2),))["0"]
        >>> torch.equal(io.call(net[0]), io.output)
        True
    """
    return next(iter_capture(model, paths, [(tuple(args), dict(kwargs or {}))], outputs=outputs, clone=clone))


def iter_capture(
    model: nn.Module,
    paths: Sequence[str],
    batches: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
    *,
    outputs: bool = True,
    clone: bool = False,
) -> Iterator[dict[str, BlockIO]]:
    """Captures the blocks at ``paths`` over a stream of model calls, one dict per call.

    The hooks are installed once and removed when the generator finishes, fails or is closed.

    Args:
        model: the model.
        paths: dotted module paths of the blocks.
        batches: ``(args, kwargs)`` pairs, one per forward pass (e.g. noisy latents,
            timesteps and the context for each distillation batch).
        outputs: also record each block's output.
        clone: store copies of the tensors instead of detached references.

    Yields:
        ``{path: BlockIO}`` for each batch.

    Raises:
        CaptureError: as :func:`capture_block_io`.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        >>> calls = (((torch.randn(4, 2),), {}) for _ in range(3))
        >>> [io["1"].output.shape[0] for io in iter_capture(net, ["1"], calls)]
        [4, 4, 4]
    """
    modules = _resolve(model, paths)
    recorder = _Recorder(modules, outputs=outputs, clone=clone)
    try:
        for call_args, call_kwargs in batches:
            recorder.start()
            try:
                with torch.no_grad():
                    model(*call_args, **dict(call_kwargs or {}))
            except _AllCaptured:
                pass  # every block recorded: the rest of the forward pass is skipped
            yield recorder.finish()
    finally:
        recorder.remove()
