"""Cost tables for a teacher and a search space: built once per (architecture, space, resolution), cached.

The cache key is the teacher's *architecture* (UNet and null-context configs), not its weights:
MACs and parameter counts do not depend on weight values, so a randomly initialised
``sd21-vae16`` and a trained one share a table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from tocsr_nas.evaluators import CostTable
from tocsr_nas.evaluators.cost_table import CostTableError
from tocsr_nas.searchspace import TEACHER, SearchSpace
from tocsr_nas.stages.space import CandidateCache, architecture

log = logging.getLogger(__name__)

__all__ = ["architecture_hash", "candidates_hash", "cache_dir", "cost_table_for", "latency_table_for", "model_latency_ms"]


def architecture_hash(teacher, component=None) -> str:
    """12 hex digits identifying the searched network's architecture (the denoiser's: the UNet's and
    the null context's shape; see :mod:`tocsr_nas.teacher.components`)."""
    from tocsr_nas.teacher.components import get_component

    payload = get_component(component).architecture(teacher)
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def candidates_hash(teacher, space: SearchSpace, candidates: CandidateCache, component=None) -> str:
    """12 hex digits identifying what every candidate of ``space`` builds on ``teacher``'s UNet.

    Candidate *names* do not pin an architecture: a surrogate type may change how it resolves its
    parameters (as ``bottleneck_resnet`` did when its GroupNorm groups began to divide the width), so
    a cached table is keyed on each candidate's class and resolved config as well.
    """
    from tocsr_nas.teacher.components import get_component

    model = get_component(component).module(teacher)
    h = hashlib.sha256()
    for block in space.blocks:
        module = model.get_submodule(block.path)
        for candidate in block.choices:
            if candidate.type != TEACHER:
                h.update(f"{block.path}|{candidate.name}|{architecture(candidates(module, candidate))}\n".encode())
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    """``$TOCSR_NAS_CACHE`` or ``~/.cache/tocsr-nas``."""
    return Path(os.environ.get("TOCSR_NAS_CACHE", Path.home() / ".cache" / "tocsr-nas"))


def _table_keys(teacher, space: SearchSpace, candidates: CandidateCache, component=None) -> dict[str, str]:
    """What a cached table of ``space`` on ``teacher``'s ``component`` is keyed on (cost and latency tables alike)."""
    return {"architecture": architecture_hash(teacher, component), "space": space.hash,
            "candidates": candidates_hash(teacher, space, candidates, component)}  # fmt: skip


def _cache_file(cache: bool | Path, kind: str, meta: dict[str, str], suffix: str) -> Path | None:
    """``<cache>/<kind>-<architecture>-<space>-<candidates>-<suffix>.json``, or ``None`` without a cache."""
    if not cache:
        return None
    folder = cache_dir() if cache is True else Path(cache)
    return folder / f"{kind}-{meta['architecture']}-{meta['space']}-{meta['candidates']}-{suffix}.json"


def _load_cached(kind, path: Path | None, expect: dict, what: str):
    """The table of class ``kind`` cached at ``path`` when its keys are ``expect``, else ``None``."""
    if path is None or not path.is_file():
        return None
    try:
        return kind.load(path, expect=expect)
    except CostTableError as exc:
        log.warning("ignoring cached %s: %s", what, exc)
        return None


def _save_cached(table, path: Path | None, what: str) -> None:
    """Cache ``table`` at ``path`` (a read-only home must not break the command)."""
    if path is None:
        return
    try:
        table.save(path)
    except OSError as exc:
        log.warning("could not cache the %s at %s: %s", what, path, exc)


def _choices(space: SearchSpace, candidates: CandidateCache):
    """``{block path: candidate names}`` and ``(path, name, block) -> module`` building them through ``candidates``."""
    choices = {b.path: b.names for b in space.blocks}

    def instantiate(block_path: str, name: str, block):
        return candidates(block, space[block_path].choices[space[block_path].index(name)])

    return choices, instantiate


def cost_table_for(
    teacher,
    space: SearchSpace,
    resolution: int | None = None,
    *,
    cache: bool | Path = True,
    progress: bool = False,
    candidates: CandidateCache | None = None,
    component=None,
) -> CostTable:
    """The cost table of ``space`` on ``teacher``'s UNet at ``resolution`` px (batch 1).

    Args:
        teacher: a :class:`~tocsr_nas.teacher.Teacher`.
        space: the resolved search space (see :func:`~tocsr_nas.stages.space.build_space`).
        resolution: image side in pixels (default: the preset's resolution).
        cache: ``True`` for :func:`cache_dir`, a folder, or ``False`` to always rebuild.
        progress: show a progress bar while tracing.
        candidates: the :class:`~tocsr_nas.stages.space.CandidateCache` used to build the space, if any.
        component: the searched network (a :mod:`~tocsr_nas.teacher.components` name; default the denoiser).

    Returns:
        A :class:`~tocsr_nas.evaluators.CostTable` whose lookups equal whole-model fvcore traces.
    """
    from tocsr_nas.teacher.components import get_component

    comp = get_component(component)
    resolution = resolution or teacher.default_resolution
    candidates = candidates if candidates is not None else CandidateCache()
    meta = _table_keys(teacher, space, candidates, comp)
    path = _cache_file(cache, "costs", meta, f"{resolution}px")
    cached = _load_cached(CostTable, path, {**meta, "resolution": resolution}, "cost table")
    if cached is not None:
        return cached
    unet = comp.module(teacher).eval()
    args, kwargs = comp.example_inputs(teacher, resolution, batch=1)
    choices, instantiate = _choices(space, candidates)

    table = CostTable.build(
        unet, args, kwargs, choices, instantiate, None, progress=progress, resolution=resolution, metadata=meta
    )
    _save_cached(table, path, "cost table")
    return table


def latency_table_for(
    teacher,
    space: SearchSpace,
    resolution: int | None = None,
    *,
    device: str | None = "cpu",
    dtype: str | None = "float32",
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    cache: bool | Path = True,
    progress: bool = False,
    candidates: CandidateCache | None = None,
    component=None,
):
    """The latency table of ``space`` on ``teacher``'s UNet (or ``component``) at ``resolution`` px, measured on ``device``.

    Cached beside the cost tables, keyed like them (architecture, space, candidates, resolution)
    and on the device (its name, and the GPU's model), the dtype, the batch size and, on the CPU,
    torch's thread count (which changes every figure). The teacher is copied to the device: the
    caller's teacher is left where it is.

    Args:
        teacher: a :class:`~tocsr_nas.teacher.Teacher`.
        space: the resolved search space.
        resolution: image side in pixels (default: the preset's resolution).
        device, dtype: ``--device`` / ``--dtype`` values (:func:`tocsr_nas.devices.resolve`).
        batch: the batch size of the timed calls.
        warmup, repeats: per measurement (median of ``repeats``).
        cache: ``True`` for :func:`cache_dir`, a folder, or ``False`` to always measure.
        progress: a progress bar while measuring.
        candidates: the :class:`~tocsr_nas.stages.space.CandidateCache` used to build the space, if any.
        component: the searched network (:mod:`~tocsr_nas.teacher.components`; default: the denoiser).

    Returns:
        A :class:`~tocsr_nas.evaluators.LatencyTable`.

    Raises:
        DeviceError: an absent device.
    """
    import torch

    from tocsr_nas.devices import dtype_name, resolve
    from tocsr_nas.evaluators.latency import LatencyTable
    from tocsr_nas.teacher.components import get_component

    comp = get_component(component)
    placement = resolve(device, dtype)
    resolution = resolution or teacher.default_resolution
    candidates = candidates if candidates is not None else CandidateCache()
    where = str(placement.device)
    if placement.device.type == "cuda":
        where += f"({torch.cuda.get_device_name(placement.device)})"
    elif placement.device.type == "cpu":
        where += f"({torch.get_num_threads()}threads)"  # one thread: CPU time (evaluators.latency.timing_clock)
    meta = {**_table_keys(teacher, space, candidates, comp), "device": where, "dtype": dtype_name(placement.dtype),
            "batch": int(batch), "warmup": int(warmup), "repeats": int(repeats)}  # fmt: skip
    label = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:8]
    path = _cache_file(cache, "latency", meta, f"{resolution}px-{placement.label.replace(':', '')}-b{batch}-{label}")
    cached = _load_cached(LatencyTable, path, {**meta, "resolution": resolution}, "latency table")
    if cached is not None:
        return cached
    unet = _placed(comp.module(teacher), placement)
    args, kwargs = _placed_inputs(teacher, placement, batch, resolution, comp)
    choices, instantiate = _choices(space, candidates)

    table = LatencyTable.build(
        unet, args, kwargs, choices, instantiate, device=placement.device, dtype=placement.dtype, warmup=warmup,
        repeats=repeats, resolution=resolution, metadata=meta, progress=progress,
    )  # fmt: skip
    _save_cached(table, path, "latency table")
    return table


def _placed(unet, placement):
    """``unet`` in eval mode on the placement (a copy unless it is there already)."""
    import copy

    first = next(iter(unet.parameters()), None)
    if first is not None and (first.device != placement.device or first.dtype != placement.dtype):
        unet = copy.deepcopy(unet).to(placement.device, placement.dtype)
    return unet.eval()


def _placed_inputs(teacher, placement, batch: int, resolution: int, component=None):
    """The deterministic inputs of the teacher's ``component`` (default: the UNet), on the placement."""
    from tocsr_nas.teacher.components import get_component

    import torch

    def move(v):
        if not torch.is_tensor(v):
            return v
        return v.to(placement.device, placement.dtype) if torch.is_floating_point(v) else v.to(placement.device)

    args, kwargs = get_component(component).example_inputs(teacher, resolution, batch=batch)
    return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}


def model_latency_ms(
    unet, teacher, resolution: int | None = None, *, device: str | None = "cpu", dtype: str | None = "float32",
    batch: int = 1, warmup: int = 3, repeats: int = 10,
) -> float:
    """A whole UNet (e.g. an assembled compact one) timed end to end, on the latency table's inputs.

    Args:
        unet: the model (copied to the device if it is elsewhere).
        teacher: the :class:`~tocsr_nas.teacher.Teacher` whose example inputs are used.
        resolution: image side in pixels (default: the teacher's).
        device, dtype, batch, warmup, repeats: as in :func:`latency_table_for`.

    Returns:
        The median milliseconds of one forward call.
    """
    from tocsr_nas.devices import resolve
    from tocsr_nas.evaluators.latency import measure_ms

    placement = resolve(device, dtype)
    resolution = resolution or teacher.default_resolution
    model = _placed(unet, placement)
    args, kwargs = _placed_inputs(teacher, placement, batch, resolution)
    return measure_ms(lambda: model(*args, **kwargs), device=placement.device, warmup=warmup, repeats=repeats)
