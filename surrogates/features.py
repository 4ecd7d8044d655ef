"""A cache of captured block features on disk, so that distillation jobs never rerun the teacher.

Blockwise distillation trains every (block, candidate) pair on the same teacher features: the
exact call arguments a block received inside the teacher's forward pass and what it returned.
The teacher runs ONCE; :class:`FeatureCache` stores, per block and split (``"train"`` /
``"val"``), every captured call stacked along the batch dimension in one safetensors file::

    <root>/<safe block path>.<split>.safetensors
        tensors:  "arg.0", "arg.1", "kwarg.encoder_hidden_states", ..., "output"
        metadata: {"structure": JSON of the call (which argument is which tensor or constant),
                   "count": number of samples, "block": the dotted path, "split": ...}

A distillation worker opens only the file of its block (:meth:`FeatureCache.read`) and draws
mini-batches with :meth:`BlockFeatures.batch`.

**Batched vs shared tensors.** A tensor argument whose first dimension is the batch size of the
capture (hidden states ``(B, C, H, W)``, ``temb`` ``(B, T)``, ``encoder_hidden_states``
``(B, L, D)``) is concatenated over captures and indexed by sample; any other tensor must be equal
in every capture and is stored once. Non-tensor arguments (``None``, ``False``, ints, strings) are
JSON constants and must be equal in every capture.

Example:
    >>> import tempfile
    >>> from tocsr_nas.surrogates.capture import capture_block_io
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> ios = [capture_block_io(net, ["0"], (torch.randn(4, 2),)) for _ in range(2)]
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> cache.write("0", "train", [io["0"] for io in ios])
    >>> feats = cache.read("0", "train")
    >>> len(feats), feats.target.shape
    (8, torch.Size([8, 3]))
    >>> args, kwargs, target = feats.batch(torch.tensor([0, 5]))
    >>> torch.equal(net[0](*args, **kwargs), target)
    True
"""

from __future__ import annotations

import json
import os
import re
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from tocsr_nas._io import load_safetensors, save_safetensors
from tocsr_nas.surrogates.capture import BlockIO, iter_capture
from tocsr_nas.surrogates.errors import SurrogateError
from tocsr_nas.surrogates.kinds import block_output

__all__ = [
    "FeatureCache",
    "BlockFeatures",
    "FeatureCacheError",
    "capture_features",
    "safe_name",
]

SPLITS = ("train", "val")


class FeatureCacheError(SurrogateError):
    """A feature file is missing or was captured from calls of different structure."""


def safe_name(name: str) -> str:
    """A file-system-safe name for a block path or candidate name (stable, collision-free).

    Names made only of ``[A-Za-z0-9._=-]`` are kept; otherwise every run of other characters
    becomes ``_`` and 8 hex digits of the name's SHA-1 are appended.

    Example:
        >>> safe_name("down_blocks.0.resnets.0")
        'down_blocks.0.resnets.0'
        >>> safe_name("bottleneck_resnet(ratio=0.25)")
        'bottleneck_resnet_ratio=0.25-72cbd046'
    """
    if re.fullmatch(r"[A-Za-z0-9._=-]+", name) and not name.startswith("."):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("_.") or "x"
    return f"{cleaned}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


@dataclass
class BlockFeatures:
    """Every captured call of one block, stacked over samples.

    Attributes:
        block: the block's dotted path.
        args: positional arguments; batched tensors are ``(N, ...)``.
        kwargs: keyword arguments; batched tensors are ``(N, ...)``.
        batched: for each tensor key (``"arg.i"`` / ``"kwarg.name"``), whether it is indexed by sample.
        target: the teacher block's output tensor, ``(N, ...)``.
    """

    block: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    batched: dict[str, bool]
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor]:
        """The call arguments and target of the samples ``index``.

        Args:
            index: sample indices ``(b,)`` (long).

        Returns:
            ``(args, kwargs, target)``: ``block(*args, **kwargs)`` is the teacher's call on those
            samples and ``target`` ``(b, ...)`` its output.
        """

        def pick(key: str, value: Any) -> Any:
            if isinstance(value, torch.Tensor) and self.batched[key]:
                return value[index]
            return value

        args = tuple(pick(f"arg.{i}", v) for i, v in enumerate(self.args))
        kwargs = {k: pick(f"kwarg.{k}", v) for k, v in self.kwargs.items()}
        return args, kwargs, self.target[index]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> BlockFeatures:
        """A copy with every tensor on ``device`` (and every floating tensor in ``dtype``, if given).

        Training moves a block's features to its device once, not per batch.
        """

        def move(value: Any) -> Any:
            if not isinstance(value, torch.Tensor):
                return value
            cast = dtype if dtype is not None and value.is_floating_point() else None
            return value.to(device=device, dtype=cast)

        return BlockFeatures(
            self.block,
            tuple(move(v) for v in self.args),
            {k: move(v) for k, v in self.kwargs.items()},
            dict(self.batched),
            move(self.target),
        )

    def call(self, module: nn.Module, index: torch.Tensor) -> torch.Tensor:
        """``module`` on the samples ``index``; returns its output tensor (whatever structure it returns)."""
        args, kwargs, _ = self.batch(index)
        return block_output(module(*args, **kwargs))


class FeatureCache:
    """Captured block features on disk, one safetensors file per (block, split).

    Args:
        root: the cache folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def file(self, block: str, split: str) -> Path:
        """The file of one block and split."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
        return self.root / f"{safe_name(block)}.{split}.safetensors"

    def has(self, block: str, split: str) -> bool:
        return self.file(block, split).is_file()

    def write(self, block: str, split: str, records: Sequence[BlockIO]) -> None:
        """Stack the captured calls of one block and write them atomically.

        Args:
            block: the block's dotted path.
            split: ``"train"`` or ``"val"``.
            records: one :class:`BlockIO` per captured forward pass (with outputs).

        Raises:
            FeatureCacheError: no records, a missing output, or calls of different structure.
        """
        if not records:
            raise FeatureCacheError(f"no captured calls for block {block!r}")
        structures, tensor_lists = [], []
        for io in records:
            if io.output is None:
                raise FeatureCacheError(f"block {block!r} was captured without its output")
            target = block_output(io.output)
            n = int(target.shape[0])
            structure, tensors = _flatten(block, io, n)
            structures.append(structure)
            tensor_lists.append((tensors, target))
        first = structures[0]
        for s in structures[1:]:
            if s != first:
                raise FeatureCacheError(
                    f"block {block!r} was called with differently structured arguments in different "
                    f"captures: {first} vs {s}"
                )
        stacked: dict[str, torch.Tensor] = {}
        for key, spec in first["tensors"].items():
            parts = [t[key] for t, _ in tensor_lists]
            if spec["batched"]:
                stacked[key] = torch.cat(parts)
            else:
                if any(not torch.equal(parts[0], p) for p in parts[1:]):
                    raise FeatureCacheError(
                        f"block {block!r}: argument {key} is not batch-first and differs between captures"
                    )
                stacked[key] = parts[0]
        stacked["output"] = torch.cat([tgt for _, tgt in tensor_lists])
        meta = {
            "block": block,
            "split": split,
            "count": str(int(stacked["output"].shape[0])),
            "structure": json.dumps(first, sort_keys=True),
        }
        save_safetensors(self.file(block, split), stacked, meta)

    def read(self, block: str, split: str) -> BlockFeatures:
        """Load the features of one block and split.

        Raises:
            FeatureCacheError: the file does not exist.
            DamagedFileError: the file is truncated or corrupt.
        """
        path = self.file(block, split)
        if not path.is_file():
            raise FeatureCacheError(f"no {split} features for block {block!r} in {self.root}; capture them first")
        tensors, meta = load_safetensors(path, metadata=True)
        structure = json.loads(meta["structure"])

        def unflatten(entry: dict[str, Any]) -> Any:
            return tensors[entry["tensor"]] if "tensor" in entry else entry["value"]

        args = tuple(unflatten(e) for e in structure["args"])
        kwargs = {k: unflatten(e) for k, e in structure["kwargs"].items()}
        batched = {k: bool(s["batched"]) for k, s in structure["tensors"].items()}
        return BlockFeatures(block, args, kwargs, batched, tensors["output"])

    def count(self, block: str, split: str) -> int:
        """Number of samples stored for ``block`` / ``split`` (0 when absent)."""
        path = self.file(block, split)
        if not path.is_file():
            return 0
        with safe_open(str(path), framework="pt") as fh:
            return int(fh.metadata()["count"])


def _flatten(block: str, io: BlockIO, n: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON structure of one call and its tensors by key."""
    tensors: dict[str, torch.Tensor] = {}
    specs: dict[str, dict[str, Any]] = {}

    def entry(key: str, value: Any) -> dict[str, Any]:
        if isinstance(value, torch.Tensor):
            batched = value.dim() > 0 and int(value.shape[0]) == n
            tensors[key] = value.detach().to("cpu")
            specs[key] = {"batched": batched, "shape": list(value.shape[1:] if batched else value.shape), "dtype": str(value.dtype)}
            return {"tensor": key}
        try:
            json.dumps(value)
        except TypeError:
            raise FeatureCacheError(
                f"block {block!r}: argument {key} of type {type(value).__name__} can neither be stored "
                "as a tensor nor as a JSON constant"
            ) from None
        return {"value": value}

    args = [entry(f"arg.{i}", v) for i, v in enumerate(io.args)]
    kwargs = {k: entry(f"kwarg.{k}", v) for k, v in io.kwargs.items()}
    return {"args": args, "kwargs": kwargs, "tensors": specs}, tensors


def capture_features(
    model: nn.Module,
    paths: Sequence[str],
    batches: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
    cache: FeatureCache,
    split: str,
) -> int:
    """Run ``model`` over ``batches`` once, capturing every block at ``paths``, and store the features.

    Args:
        model: the teacher network (put it in eval mode first).
        paths: dotted paths of the blocks.
        batches: ``(args, kwargs)`` of each forward pass.
        cache: where to write.
        split: ``"train"`` or ``"val"``.

    Returns:
        The number of samples captured per block.

    Example:
        >>> import tempfile
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        >>> cache = FeatureCache(tempfile.mkdtemp())
        >>> capture_features(net, ["0", "1"], [((torch.randn(4, 2),), {})] * 3, cache, "val")
        12
        >>> cache.read("1", "val").args[0].shape
        torch.Size([12, 3])
    """
    records: dict[str, list[BlockIO]] = {p: [] for p in paths}
    for ios in iter_capture(model, list(paths), batches):
        for path, io in ios.items():
            records[path].append(io)
    for path in paths:
        cache.write(path, split, records.pop(path))
    return cache.count(paths[0], split) if paths else 0
