"""Per-block latency table: the measured milliseconds of any configuration by lookup, approximately.

The latency counterpart of :class:`~tocsr_nas.evaluators.cost_table.CostTable`, read the same way:

    latency(cfg) = base + sum_{b in blocks} cell(b, cfg[b])

    base         = whole_model - sum_{b in blocks} cell(b, "teacher")

Each cell is timed *inside* the model: one forward pass records every block's inputs (a
candidate that cannot run on them is named), then the model runs with the candidates put in
place of the blocks (one "column" of candidates at a time: the teacher's blocks, then every
block's first other candidate, its second, ...), and forward hooks time each block's call. Each
figure is a median over ``repeats`` timed passes after ``warmup`` untimed ones, on one device and
dtype. Time is not exactly additive; timing the cells alone (version 1 of this table) made a block
find its inputs hot in cache and the teacher's blocks look cheaper than they are inside the model,
so ``base`` absorbed their in-model cost and configurations far from the teacher were predicted
16-33 % slow on the CPU (``docs/devices.md``). Inside the model a cell pays what the model pays,
up to its neighbours (a column's, not the configuration's). The search still records both the
table's prediction and the assembled model's measured time for the configuration it picks.

The table is keyed by the caller like the cost table (teacher architecture, space, candidates,
resolution) plus device, dtype, batch size and (on the CPU) threads.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tocsr_nas._io import atomic_write_text, one_line
from tocsr_nas.evaluators.cost_table import CostTableError, _CallRecorder
from tocsr_nas.searchspace.candidates import TEACHER

__all__ = ["LatencyTable", "TableCosts", "measure_ms", "synchronize", "timing_clock"]

logger = logging.getLogger(__name__)

_FORMAT = "tocsr-nas/latency-table"
_VERSION = 2  # 2: cells timed inside the model (1: alone)


def synchronize(device: torch.device | str) -> None:
    """Wait for ``device``'s queued kernels (CUDA, MPS); nothing on the CPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


@torch.inference_mode()
def measure_ms(fn: Callable[[], Any], *, device: torch.device | str = "cpu", warmup: int = 3, repeats: int = 10) -> float:
    """The median wall time of ``fn()`` in milliseconds.

    The clock is :func:`timing_clock`'s: CPU time on one CPU thread, else wall time.

    Args:
        fn: the call to time (its result is discarded).
        device: synchronised before and after each timed call.
        warmup: untimed calls first (allocator, caches, lazy kernels).
        repeats: timed calls; the median is returned (robust to a busy machine's outliers).

    Returns:
        Milliseconds (median).

    Example:
        >>> measure_ms(lambda: sum(range(100)), warmup=1, repeats=3) >= 0
        True
    """
    if repeats < 1 or warmup < 0:
        raise CostTableError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    clock = timing_clock(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        synchronize(device)
        times.append((clock() - start) * 1e3)
    return float(statistics.median(times))


def timing_clock(device: torch.device | str = "cpu") -> Callable[[], float]:
    """The clock :func:`measure_ms` reads: on the CPU with one torch thread, this process's CPU time
    (``time.process_time``: the time the model computed, not the time it waited for a busy
    machine's other processes); otherwise the wall clock (``time.perf_counter``), since CPU time
    adds up over threads and a GPU's work is not this process's CPU time.

    Example:
        >>> torch.set_num_threads(1); timing_clock("cpu") is time.process_time
        True
    """
    if torch.device(device).type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time
    return time.perf_counter


def _placed(module: nn.Module, device: torch.device | str, dtype: torch.dtype) -> nn.Module:
    """``module`` in eval mode on ``device`` in ``dtype`` (moved only when needed: diffusers warns on every ``to``)."""
    first = next(iter(module.parameters()), None)
    if first is not None and (first.device != torch.device(device) or first.dtype != dtype):
        module = module.to(device=device, dtype=dtype)
    return module.eval()


def _in_context_ms(
    model: nn.Module,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    swaps: Mapping[str, nn.Module],
    blocks: Mapping[str, nn.Module],
    device: torch.device | str,
    warmup: int,
    repeats: int,
) -> dict[str, float]:
    """The median milliseconds of each module of ``swaps`` (``{block path: module}``) *inside* the
    model: the modules are put in place of the blocks, ``warmup`` then ``repeats`` whole forward
    passes run, each swapped module's calls are timed by hooks (:func:`timing_clock`, the device
    synchronised), and ``blocks`` (the original modules) are put back."""
    clock = timing_clock(device)
    times: dict[str, list[float]] = {path: [] for path in swaps}
    started: dict[str, float] = {}
    handles = []

    def pre(path: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            synchronize(device)
            started[path] = clock()

        return hook

    def post(path: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            synchronize(device)
            times[path].append((clock() - started[path]) * 1e3)

        return hook

    try:
        for path, module in swaps.items():
            if module is not blocks[path]:
                model.set_submodule(path, module)
            handles += [module.register_forward_pre_hook(pre(path)), module.register_forward_hook(post(path))]
        with torch.inference_mode():
            for _ in range(warmup):
                model(*args, **kwargs)
            for path in times:
                times[path].clear()
            for _ in range(repeats):
                model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
        for path, module in swaps.items():
            if module is not blocks[path]:
                model.set_submodule(path, blocks[path])
    silent = [path for path, v in times.items() if len(v) != repeats]
    if silent:  # e.g. a block inside another block that was replaced
        raise CostTableError(f"block {silent[0]!r} did not run once per forward pass with its column's candidates in place")
    return {path: float(statistics.median(v)) for path, v in times.items()}


class LatencyTable:
    """Milliseconds of every (block, candidate) on one device, plus the remainder.

    Build it with :meth:`LatencyTable.build`; look configurations up with :meth:`latency`.

    Args:
        cells: ``{block path: {candidate name: ms}}``; every block has ``"teacher"``.
        base: the model's measured time minus its teacher blocks' (may be negative: blocks timed
            alone can cost more than inside the model).
        whole: the measured time of the unmodified model.
        resolution: the image resolution (pixels) the table was measured at, if known.
        metadata: JSON-serialisable keys given by the caller (teacher, space, device, dtype, batch ...).

    Example:
        >>> table = LatencyTable({"a": {"teacher": 2.0, "skip": 0.5}}, base=1.0, whole=3.0)
        >>> table.latency({"a": "skip"}), table.teacher()
        (1.5, 3.0)
    """

    def __init__(
        self,
        cells: Mapping[str, Mapping[str, float]],
        base: float,
        *,
        whole: float | None = None,
        resolution: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.cells: dict[str, dict[str, float]] = {p: {n: float(v) for n, v in c.items()} for p, c in cells.items()}
        for path, row in self.cells.items():
            if TEACHER not in row:
                raise CostTableError(f"latency table block {path!r} has no {TEACHER!r} cell")
        self.base = float(base)
        self.whole = float(whole) if whole is not None else self.base + sum(r[TEACHER] for r in self.cells.values())
        self.resolution = resolution
        self.metadata: dict[str, Any] = dict(metadata or {})
        #: timed calls the build ran (0 for a loaded table)
        self.measurements = 0
        self.build_seconds = 0.0

    # ------------------------------------------------------------------ build

    @classmethod
    def build(
        cls,
        model: nn.Module,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        choices: Mapping[str, Sequence[str]],
        instantiate: Callable[[str, str, nn.Module], nn.Module],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        warmup: int = 3,
        repeats: int = 10,
        resolution: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> LatencyTable:
        """Measure ``model`` once whole and every (block, candidate) inside it (the module docstring).

        Args:
            model: the model, already on ``device`` in ``dtype`` (put in eval mode).
            args, kwargs: one forward call's inputs, on ``device`` (the batch size is theirs).
            choices: ``{block path: candidate names}`` (``"teacher"`` is always measured).
            instantiate: ``(path, name, teacher block) -> module`` (moved to ``device``/``dtype`` here).
            device, dtype: where the candidates run.
            warmup, repeats: per measurement (:func:`measure_ms`).
            resolution: recorded.
            metadata: recorded (the caller's cache keys).
            progress: a tqdm bar over the measurements.

        Raises:
            CostTableError: a block called other than once per forward pass, or a candidate that
                fails on its block's inputs.

        ``measurements`` counts the whole model and the columns (each ``repeats`` timed passes).
        """
        start = time.perf_counter()
        kwargs = dict(kwargs or {})
        model = model.eval()
        paths = list(choices)
        with torch.inference_mode(), _CallRecorder(model, paths, record=True) as recorder:
            model(*args, **kwargs)
        recorder.check()
        measurements = 0

        def timed(fn: Callable[[], Any]) -> float:
            nonlocal measurements
            measurements += 1
            return measure_ms(fn, device=device, warmup=warmup, repeats=repeats)

        whole = timed(lambda: model(*args, **kwargs))
        blocks = {path: model.get_submodule(path) for path in paths}
        others = {path: [n for n in dict.fromkeys(choices[path]) if n != TEACHER] for path in paths}
        # column 0: the teacher; column k: every block's k-th other candidate (blocks with fewer keep the teacher)
        columns = [dict.fromkeys(paths, TEACHER)]
        columns += [{p: names[k] for p, names in others.items() if k < len(names)}
                    for k in range(max((len(n) for n in others.values()), default=0))]  # fmt: skip
        cells: dict[str, dict[str, float]] = {path: {} for path in paths}
        from tqdm.auto import tqdm

        bar = tqdm(total=len(columns), desc="latency table", unit="column", disable=not progress)
        try:
            for column in columns:
                swaps = {}
                for path, name in column.items():
                    if name == TEACHER:
                        swaps[path] = blocks[path]
                        continue
                    module = _placed(instantiate(path, name, blocks[path]), device, dtype)
                    if any(m is module for m in swaps.values()):  # a cached candidate shared by equal blocks:
                        module = copy.deepcopy(module)  # one instance per path, or its hooks would fire twice
                    call = recorder.calls[path]
                    try:  # alone first, so a candidate that cannot run is named
                        with torch.inference_mode():
                            module(*call.args, **call.kwargs)
                    except (ValueError, RuntimeError) as exc:
                        raise CostTableError(
                            f"candidate {name!r} of block {path} cannot run on its inputs ({one_line(exc)})"
                        ) from None
                    swaps[path] = module
                measurements += 1
                for path, ms in _in_context_ms(model, args, kwargs, swaps, blocks, device, warmup, repeats).items():
                    cells[path][column[path]] = ms
                bar.update()
        finally:
            bar.close()
        base = whole - sum(row[TEACHER] for row in cells.values())
        table = cls(cells, base, whole=whole, resolution=resolution, metadata=metadata)
        table.measurements = measurements
        table.build_seconds = time.perf_counter() - start
        logger.info(
            "latency table: %d blocks, %d cells, %d measurements in %.1f s; whole model %.3f ms, base %.3f ms",
            len(cells), sum(len(r) for r in cells.values()), measurements, table.build_seconds, whole, base,
        )  # fmt: skip
        return table

    # ------------------------------------------------------------------ lookups

    @property
    def paths(self) -> list[str]:
        """The block paths, in build order."""
        return list(self.cells)

    def cell(self, path: str, candidate: str) -> float:
        """The milliseconds of one candidate at one block.

        Raises:
            CostTableError: an unknown block or candidate.
        """
        try:
            row = self.cells[path]
        except KeyError:
            raise CostTableError(f"block {path!r} is not in the latency table") from None
        try:
            return row[candidate]
        except KeyError:
            raise CostTableError(
                f"candidate {candidate!r} is not in the latency table for block {path!r}; known: {', '.join(row)}"
            ) from None

    def latency(self, config: Mapping[str, str]) -> float:
        """Predicted milliseconds of the model with ``config`` applied (missing blocks keep the teacher).

        Returns:
            ``base + sum of the chosen cells`` (equals the measured whole model for the teacher).

        Raises:
            CostTableError: an unknown block path or candidate name.
        """
        for path in config:
            if path not in self.cells:
                raise CostTableError(f"block {path!r} is not in the latency table")
        return self.base + sum(self.cell(p, config.get(p, TEACHER)) for p in self.cells)

    def teacher(self) -> float:
        """The measured milliseconds of the unmodified model."""
        return self.latency({})

    def block_table(self) -> Any:
        """One row per (block, candidate): ``path, candidate, ms`` (a ``pandas.DataFrame``)."""
        import pandas as pd

        rows = [{"path": p, "candidate": n, "ms": v} for p, row in self.cells.items() for n, v in row.items()]
        return pd.DataFrame(rows, columns=["path", "candidate", "ms"])

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "resolution": self.resolution,
            "metadata": self.metadata,
            "base": self.base,
            "whole": self.whole,
            "blocks": [{"path": p, "candidates": row} for p, row in self.cells.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        """Rebuilds a table from :meth:`to_dict`'s form.

        Raises:
            CostTableError: not a latency table, another version, or malformed.
        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise CostTableError("not a tocsr-nas latency table")
        if data.get("version") != _VERSION:
            raise CostTableError(f"latency table version {data.get('version')!r} is not supported; rebuild it")
        try:
            cells = {b["path"]: dict(b["candidates"]) for b in data["blocks"]}
            return cls(cells, float(data["base"]), whole=float(data["whole"]), resolution=data.get("resolution"),
                       metadata=data.get("metadata") or {})  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise CostTableError(f"malformed latency table: {exc!r}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the table as JSON atomically."""
        target = Path(path)
        atomic_write_text(target, json.dumps(self.to_dict(), indent=1))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, expect: Mapping[str, Any] | None = None) -> LatencyTable:
        """Reads a table written by :meth:`save`.

        Args:
            path: the JSON file.
            expect: metadata entries (and/or ``"resolution"``) the table must carry; a mismatch
                is an error so a stale cache is never used silently.

        Raises:
            CostTableError: a missing or malformed file, or a metadata mismatch.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CostTableError(f"cannot read latency table {os.fspath(path)!r}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CostTableError(f"latency table is not valid JSON: {exc}") from None
        table = cls.from_dict(data)
        for key, wanted in dict(expect or {}).items():
            found = table.resolution if key == "resolution" else table.metadata.get(key)
            if found != wanted:
                raise CostTableError(
                    f"latency table {os.fspath(path)!r} was measured for {key}={found!r}, not {wanted!r}; rebuild it"
                )
        return table

    def __repr__(self) -> str:
        return f"LatencyTable({len(self.cells)} blocks, teacher {self.teacher():.3f} ms, resolution={self.resolution})"


class TableCosts:
    """A cost table and a latency table read together: what a search with ``objective="latency"`` takes as ``cost``.

    Args:
        costs: the :class:`~tocsr_nas.evaluators.cost_table.CostTable` (GMACs, parameters).
        latency: the :class:`LatencyTable` of the same space (predicted milliseconds).

    Example:
        >>> from tocsr_nas.evaluators.cost_table import BlockCost, CostTable
        >>> costs = CostTable({"a": {"teacher": BlockCost(10, 8, 3), "skip": BlockCost(0, 0, 0)}}, base=BlockCost(5, 5, 1))
        >>> both = TableCosts(costs, LatencyTable({"a": {"teacher": 2.0, "skip": 0.5}}, base=1.0))
        >>> both.params({"a": "skip"}), both.latency({"a": "skip"})
        (1, 1.5)
    """

    def __init__(self, costs: Any, latency: LatencyTable) -> None:
        missing = set(costs.paths) ^ set(latency.paths)
        if missing:
            raise CostTableError(f"the cost and latency tables cover different blocks: {sorted(missing)[:3]}")
        self.costs, self.latency_table = costs, latency

    def gmacs(self, config: Mapping[str, str]) -> float:
        """GMACs of ``config`` (the cost table)."""
        return self.costs.gmacs(config)

    def params(self, config: Mapping[str, str]) -> int:
        """Parameters of ``config`` (the cost table)."""
        return self.costs.params(config)

    def latency(self, config: Mapping[str, str]) -> float:
        """Predicted milliseconds of ``config`` (the latency table)."""
        return self.latency_table.latency(config)

    def __getattr__(self, name: str) -> Any:  # the rest of the cost table's API (teacher(), cost(), ...)
        if name in ("costs", "latency_table"):
            raise AttributeError(name)
        return getattr(self.costs, name)
