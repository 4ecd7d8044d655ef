"""Per-block cost table: the complexity of any configuration by lookup, exactly.

A configuration replaces some blocks of a model by candidates and keeps the rest. Its
complexity is additive over blocks:

    cost(cfg) = base + sum_{b in blocks} cell(b, cfg[b])

    base      = whole_model - sum_{b in blocks} cell(b, "teacher")

where ``cell(b, c)`` is the fvcore count of candidate ``c`` traced alone on block ``b``'s real
inputs (captured from one forward pass of the model) and ``base`` is everything outside the
searchable blocks (stem, time embedding, skip concatenations, the output head). Because a
candidate keeps its block's call signature and output shape, the ops outside the blocks do not
change, so ``cost(cfg)`` equals a whole-model trace of the assembled model exactly (MACs and
parameters are integers). Both MAC figures are stored: with attention counted (``macs``) and
fvcore's default (``macs_no_attention``), from one trace each.

The table is built once per (teacher, search space, resolution): one trace of the whole model
(which also yields every teacher block's share), then one trace per distinct candidate
signature (module class and configuration, parameter shapes, input shapes and dtypes, see
:mod:`~tocsr_nas.evaluators.signatures`), which matters in UNets where many blocks repeat. The
repeats are skipped inside the whole-model trace too: a teacher block identical to one that
already ran returns a zero-MAC stand-in and takes that block's share
(:mod:`~tocsr_nas.evaluators.twin_blocks`). Saving and loading use JSON; the caller passes
fingerprints as ``metadata`` and checks them on load.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils import _pytree as pytree

from tocsr_nas._io import atomic_write_text, one_line
from tocsr_nas.evaluators.complexity import Complexity, count_macs, count_params, trace_macs
from tocsr_nas.evaluators.signatures import call_signature as _io_signature
from tocsr_nas.evaluators.signatures import module_signature as _module_signature
from tocsr_nas.evaluators.twin_blocks import TwinBlocks
from tocsr_nas.searchspace.candidates import TEACHER  # the one definition, re-exported here
from tocsr_nas.searchspace.errors import TocsrError

__all__ = ["BlockCost", "CostTable", "CostTableError", "TEACHER"]

logger = logging.getLogger(__name__)

_FORMAT = "tocsr-nas/cost-table"
_VERSION = 1


class CostTableError(TocsrError):
    """An invalid build request, an unknown block or candidate, or an unusable table file."""


class BlockIOLike(Protocol):
    """Anything with the captured call arguments of a block (e.g. ``surrogates.BlockIO``)."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class BlockCost:
    """The cost of one (block, candidate) cell, or of the non-searchable remainder.

    Attributes:
        macs: MACs with ``scaled_dot_product_attention`` counted.
        macs_no_attention: fvcore's default MACs (attention matmuls not counted).
        params: parameters.
    """

    macs: int
    macs_no_attention: int
    params: int

    def complexity(self, count_attention: bool = True) -> Complexity:
        """The :class:`Complexity` in the chosen counting mode."""
        return Complexity(
            macs=self.macs if count_attention else self.macs_no_attention, params=self.params
        )

    def __add__(self, other: BlockCost) -> BlockCost:
        return BlockCost(
            self.macs + other.macs,
            self.macs_no_attention + other.macs_no_attention,
            self.params + other.params,
        )

    def __sub__(self, other: BlockCost) -> BlockCost:
        return BlockCost(
            self.macs - other.macs,
            self.macs_no_attention - other.macs_no_attention,
            self.params - other.params,
        )

    def to_dict(self) -> dict[str, int]:
        return {"macs": self.macs, "macs_no_attention": self.macs_no_attention, "params": self.params}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockCost:
        return cls(int(data["macs"]), int(data["macs_no_attention"]), int(data["params"]))


def _trace(module: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> BlockCost:
    macs, attention = count_macs(module, tuple(args), dict(kwargs or {}))
    return BlockCost(macs=macs, macs_no_attention=macs - attention, params=count_params(module))


@dataclass
class _Call:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _CallRecorder:
    """Counts (and optionally records) the calls of the blocks during the whole-model trace.

    A block must run exactly once per forward pass: its share of the whole-model trace is then
    one call, like a candidate traced alone.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], *, record: bool) -> None:
        self.model, self.paths, self.record = model, list(paths), record
        self.counts: dict[str, int] = {p: 0 for p in self.paths}
        self.calls: dict[str, _Call] = {}
        self.handles: list[Any] = []

    def _hook(self, path: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.counts[path] += 1
            if self.record and path not in self.calls:
                keep = lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else x  # noqa: E731
                self.calls[path] = _Call(pytree.tree_map(keep, tuple(args)), pytree.tree_map(keep, dict(kwargs)))

        return hook

    def __enter__(self) -> _CallRecorder:
        for path in self.paths:
            module = self.model.get_submodule(path)
            self.handles.append(module.register_forward_pre_hook(self._hook(path), with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def check(self) -> None:
        wrong = {p: n for p, n in self.counts.items() if n != 1}
        if wrong:
            listed = ", ".join(f"{p!r} ran {n} times" for p, n in wrong.items())
            raise CostTableError(
                f"every block must run exactly once per forward pass for an exact cost table: {listed}"
            )


def _candidate_type(name: str) -> str:
    return name.split("(", 1)[0]


class CostTable:
    """MACs and parameters of every (block, candidate) at one resolution, plus the remainder.

    Build it with :meth:`CostTable.build`; look configurations up with :meth:`cost`.

    Args:
        cells: ``{block path: {candidate name: BlockCost}}``; every block has ``"teacher"``.
        base: the cost of everything outside the blocks.
        count_attention: the default counting mode of :meth:`cost` and friends.
        resolution: the image resolution (pixels) the table was traced at, if known.
        metadata: JSON-serialisable fingerprints given by the caller (teacher, space, ...).

    Example:
        >>> table = CostTable({"a": {"teacher": BlockCost(10, 8, 3), "skip": BlockCost(0, 0, 0)}},
        ...                   base=BlockCost(5, 5, 1))
        >>> table.cost({"a": "skip"}), table.teacher().macs
        (Complexity(macs=5, params=1), 15)
    """

    def __init__(
        self,
        cells: Mapping[str, Mapping[str, BlockCost]],
        base: BlockCost,
        *,
        count_attention: bool = True,
        resolution: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.cells: dict[str, dict[str, BlockCost]] = {p: dict(c) for p, c in cells.items()}
        for path, row in self.cells.items():
            if TEACHER not in row:
                raise CostTableError(f"cost table block {path!r} has no {TEACHER!r} cell")
        self.base = base
        self.count_attention = bool(count_attention)
        self.resolution = resolution
        self.metadata: dict[str, Any] = dict(metadata or {})
        #: number of fvcore traces the build ran (0 for a loaded table)
        self.traces = 0
        #: seconds the build took (0.0 for a loaded table)
        self.build_seconds = 0.0

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        model: nn.Module,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        choices: Mapping[str, Sequence[str]],
        instantiate: Callable[[str, str, nn.Module], nn.Module],
        block_io: Mapping[str, BlockIOLike] | None = None,
        *,
        count_attention: bool = True,
        progress: bool = False,
        resolution: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        dedupe_blocks: bool = True,
    ) -> CostTable:
        """Traces the whole model once and every distinct (candidate module, inputs) pair once.

        The teacher blocks' costs come from the whole-model trace itself (fvcore attributes each
        op to the module whose call ran it); every other candidate is traced alone on its block's
        captured inputs. Two candidates with the same class, configuration (or repr), parameter
        shapes and input shapes cost the same and are traced once, whatever their names.

        The same holds for the teacher blocks: during the whole-model trace, a block whose
        (module, call) signature already ran returns a zero-MAC stand-in of its output's shapes
        (:class:`~tocsr_nas.evaluators.twin_blocks.TwinBlocks`) and takes its twin's share, and
        the whole-model total is corrected by the same amount. The table is identical either way
        (``dedupe_blocks=False`` runs every block); in SD2.1's UNet it halves the trace's work.

        Args:
            model: the teacher model, e.g. a diffusers ``UNet2DConditionModel``.
            args: positional arguments of one model call at the table's resolution.
            kwargs: keyword arguments of that call.
            choices: ``{block path: candidate names}``; ``"teacher"`` is always included.
                Block paths must not be nested in one another.
            instantiate: ``(path, candidate name, teacher block) -> module`` building a
                candidate with the block's call signature and output shape.
            block_io: ``{block path: captured call}`` (objects with ``.args`` and ``.kwargs``,
                e.g. from ``tocsr_nas.surrogates.capture_block_io`` on the same call). ``None``
                (the default, and the fastest) records them during the whole-model trace.
            count_attention: default counting mode of the returned table (both are stored).
            progress: show a tqdm progress bar.
            resolution: the image resolution in pixels, stored with the table.
            metadata: fingerprints stored with the table (checked by :meth:`load`).
            dedupe_blocks: run only the first of identical teacher blocks in the whole-model
                trace (the default). Recorded inputs of later blocks then carry stand-in values;
                only their shapes matter for counting.

        Returns:
            The table; ``table.traces`` tells how many fvcore traces were run.

        Raises:
            CostTableError: an unknown or nested block path, or a block without captured inputs.
            UnsupportedOpError: a traced module ran an op that cannot be counted.
        """
        start = time.perf_counter()
        paths = list(choices)
        for path in paths:
            try:
                model.get_submodule(path)
            except AttributeError:
                raise CostTableError(f"no block at path {path!r} in {type(model).__name__}") from None
            if block_io is not None and path not in block_io:
                raise CostTableError(f"no captured inputs for block {path!r}; capture every block")
        for outer in paths:
            for inner in paths:
                if inner != outer and (outer == "" or inner.startswith(outer + ".")):
                    raise CostTableError(
                        f"block paths are nested ({inner!r} inside {outer!r}); "
                        "a cost table needs disjoint blocks"
                    )

        total = 1 + sum(len(set(choices[p]) - {TEACHER}) for p in paths)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="cost table", unit="trace")
        # (module class + config/repr + parameter shapes, input shapes/dtypes) -> cost
        cache: dict[tuple[str, str], BlockCost] = {}
        traces = 0
        try:
            # One trace of the whole model gives the model's total and, through fvcore's module
            # scopes, every teacher block's share (the ops run inside that block's call).
            with _CallRecorder(model, paths, record=block_io is None) as recorder:
                if dedupe_blocks:
                    with TwinBlocks(model, paths) as twins:
                        counted = trace_macs(model, args, kwargs, submodules=paths)
                    twin_of = twins.twin_of
                else:
                    counted = trace_macs(model, args, kwargs, submodules=paths)
                    twin_of = {}
            recorder.check()
            if block_io is None:
                block_io = recorder.calls
            traces += 1
            if bar is not None:
                bar.update()
            # A twin ran a zero-MAC stand-in: it takes its first twin's share, and so does the
            # whole model.   whole = traced + sum_twins (share(first) - traced share(twin))
            shares = {path: counted[twin_of.get(path, path)] for path in paths}
            macs, attention = counted[""]
            for path in twin_of:
                macs += shares[path][0] - counted[path][0]
                attention += shares[path][1] - counted[path][1]
            whole = BlockCost(macs, macs - attention, count_params(model))
            cells: dict[str, dict[str, BlockCost]] = {}
            for path in paths:
                block = model.get_submodule(path)
                macs, attention = shares[path]
                row = {TEACHER: BlockCost(macs, macs - attention, count_params(block))}
                io = block_io[path]
                io_sig = _io_signature(io.args, io.kwargs)
                for name in dict.fromkeys(choices[path]):
                    if name == TEACHER:
                        continue
                    module = instantiate(path, name, block)
                    key = (_module_signature(module), io_sig)
                    if key not in cache:
                        try:
                            cache[key] = _trace(module, io.args, io.kwargs)
                        except (ValueError, RuntimeError) as exc:  # e.g. a norm over one value per group
                            shape = "x".join(str(n) for n in io.args[0].shape) if io.args and hasattr(io.args[0], "shape") else "?"
                            raise CostTableError(
                                f"candidate {name!r} of block {path} cannot run on its input of shape {shape} "
                                f"({one_line(exc)}); choose a larger resolution"
                            ) from None
                        traces += 1
                        if bar is not None:
                            bar.update()
                    elif bar is not None:
                        bar.total -= 1
                        bar.refresh()
                    row[name] = cache[key]
                    del module
                cells[path] = row
        finally:
            if bar is not None:
                bar.close()

        teacher_sum = BlockCost(0, 0, 0)
        for row in cells.values():
            teacher_sum = teacher_sum + row[TEACHER]
        base = whole - teacher_sum
        if min(base.macs, base.macs_no_attention, base.params) < 0:
            raise CostTableError(
                "the blocks cost more than the whole model: are some blocks shared or called "
                "more than once per forward pass?"
            )
        table = cls(
            cells,
            base,
            count_attention=count_attention,
            resolution=resolution,
            metadata=metadata,
        )
        table.traces = traces
        table.build_seconds = time.perf_counter() - start
        logger.info(
            "cost table: %d blocks (%d run as stand-ins for identical ones), %d cells, %d traces in %.1f s",
            len(cells),
            len(twin_of),
            sum(len(r) for r in cells.values()),
            traces,
            table.build_seconds,
        )
        return table

    # ------------------------------------------------------------------ lookups

    @property
    def paths(self) -> list[str]:
        """The block paths, in build order."""
        return list(self.cells)

    def candidates(self, path: str) -> list[str]:
        """The candidate names of a block (``"teacher"`` first)."""
        return list(self._row(path))

    def _row(self, path: str) -> dict[str, BlockCost]:
        try:
            return self.cells[path]
        except KeyError:
            raise CostTableError(
                f"block {path!r} is not in the cost table; known blocks: {', '.join(self.cells)}"
            ) from None

    def cell(self, path: str, candidate: str) -> BlockCost:
        """The cost of one candidate at one block."""
        row = self._row(path)
        try:
            return row[candidate]
        except KeyError:
            raise CostTableError(
                f"candidate {candidate!r} is not in the cost table for block {path!r}; "
                f"known candidates: {', '.join(row)}"
            ) from None

    def _mode(self, count_attention: bool | None) -> bool:
        return self.count_attention if count_attention is None else bool(count_attention)

    def cost(self, config: Mapping[str, str], *, count_attention: bool | None = None) -> Complexity:
        """Complexity of the model with ``config`` applied (missing blocks keep the teacher).

        Args:
            config: ``{block path: candidate name}``, e.g. a ``Configuration``.
            count_attention: override the table's counting mode.

        Returns:
            ``base + sum of the chosen cells``: equal to a whole-model trace of the assembled model.

        Raises:
            CostTableError: an unknown block path or candidate name.
        """
        for path in config:
            self._row(path)
        total = self.base
        for path in self.cells:
            total = total + self.cell(path, config.get(path, TEACHER))
        return total.complexity(self._mode(count_attention))

    def gmacs(self, config: Mapping[str, str], *, count_attention: bool | None = None) -> float:
        """GMACs of ``config`` (see :meth:`cost`)."""
        return self.cost(config, count_attention=count_attention).gmacs

    def params(self, config: Mapping[str, str]) -> int:
        """Parameters of ``config`` (see :meth:`cost`)."""
        return self.cost(config).params

    def teacher(self, *, count_attention: bool | None = None) -> Complexity:
        """Complexity of the unmodified model (its whole-model trace)."""
        return self.cost({}, count_attention=count_attention)

    def min_cost(
        self,
        objective: str = "gmacs",
        *,
        exclude: Sequence[str] = (),
        count_attention: bool | None = None,
    ) -> tuple[dict[str, str], Complexity]:
        """The cheapest configuration by one objective (exact: the cost is additive per block).

        Args:
            objective: ``"gmacs"`` (or ``"macs"``) or ``"params"``; ties go to the lower other one.
            exclude: candidate names or types to leave out, e.g. ``("skip",)`` for the cheapest
                model that keeps every block.
            count_attention: override the table's counting mode.

        Returns:
            ``(configuration, complexity)``; blocks keeping the teacher are included.

        Raises:
            CostTableError: an unknown objective, or a block whose candidates are all excluded.
        """
        if objective not in ("gmacs", "macs", "params"):
            raise CostTableError(f"unknown objective {objective!r}; use 'gmacs' or 'params'")
        mode = self._mode(count_attention)
        excluded = set(exclude)

        def key(item: tuple[str, BlockCost]) -> tuple[int, int]:
            c = item[1].complexity(mode)
            return (c.params, c.macs) if objective == "params" else (c.macs, c.params)

        config: dict[str, str] = {}
        for path, row in self.cells.items():
            allowed = [
                (n, c) for n, c in row.items() if n not in excluded and _candidate_type(n) not in excluded
            ]
            if not allowed:
                raise CostTableError(f"every candidate of block {path!r} is excluded")
            config[path] = min(allowed, key=key)[0]
        return config, self.cost(config, count_attention=mode)

    def block_table(self, *, count_attention: bool | None = None) -> Any:
        """One row per (block, candidate): ``path, candidate, gmacs, params, macs, macs_no_attention``.

        Returns:
            A ``pandas.DataFrame``; ``gmacs`` follows the counting mode.
        """
        import pandas as pd

        mode = self._mode(count_attention)
        rows = [
            {
                "path": path,
                "candidate": name,
                "gmacs": cell.complexity(mode).gmacs,
                "params": cell.params,
                "macs": cell.macs,
                "macs_no_attention": cell.macs_no_attention,
            }
            for path, row in self.cells.items()
            for name, cell in row.items()
        ]
        return pd.DataFrame(rows, columns=["path", "candidate", "gmacs", "params", "macs", "macs_no_attention"])

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "resolution": self.resolution,
            "count_attention": self.count_attention,
            "metadata": self.metadata,
            "base": self.base.to_dict(),
            "blocks": [
                {"path": path, "candidates": {n: c.to_dict() for n, c in row.items()}}
                for path, row in self.cells.items()
            ],
        }

    def to_json(self) -> str:
        """The table as a JSON string (block order kept)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostTable:
        """Rebuilds a table from :meth:`to_dict`'s form."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise CostTableError("not a tocsr-nas cost table")
        if data.get("version") != _VERSION:
            raise CostTableError(
                f"cost table version {data.get('version')!r} is not supported (expected {_VERSION}); rebuild it"
            )
        try:
            cells = {
                block["path"]: {n: BlockCost.from_dict(c) for n, c in block["candidates"].items()}
                for block in data["blocks"]
            }
            return cls(
                cells,
                BlockCost.from_dict(data["base"]),
                count_attention=bool(data["count_attention"]),
                resolution=data.get("resolution"),
                metadata=data.get("metadata") or {},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CostTableError(f"malformed cost table: {exc!r}") from None

    @classmethod
    def from_json(cls, text: str) -> CostTable:
        """Rebuilds a table from :meth:`to_json`'s output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CostTableError(f"cost table is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the table as JSON atomically (``tocsr_nas._io``: a temporary file, then ``os.replace``)."""
        target = Path(path)
        atomic_write_text(target, self.to_json())
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expect: Mapping[str, Any] | None = None,
    ) -> CostTable:
        """Reads a table written by :meth:`save`.

        Args:
            path: the JSON file.
            expect: metadata entries (and/or ``"resolution"``) the table must carry, e.g. the
                fingerprints of the current teacher and space; a mismatch is an error so a
                stale cache is never used silently.

        Raises:
            CostTableError: a missing or malformed file, or a metadata mismatch.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CostTableError(f"cannot read cost table {os.fspath(path)!r}: {exc.strerror}") from None
        table = cls.from_json(text)
        for key, wanted in dict(expect or {}).items():
            found = table.resolution if key == "resolution" else table.metadata.get(key)
            if found != wanted:
                raise CostTableError(
                    f"cost table {os.fspath(path)!r} was built for {key}={found!r}, not {wanted!r}; "
                    "rebuild it"
                )
        return table

    def __repr__(self) -> str:
        teacher = self.teacher()
        return (
            f"CostTable({len(self.cells)} blocks, teacher {teacher.gmacs:.2f} GMACs, "
            f"{teacher.mparams:.2f}M params, resolution={self.resolution})"
        )
