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

__all__ = ["architecture_hash", "candidates_hash", "cache_dir", "cost_table_for"]


def architecture_hash(teacher) -> str:
    """12 hex digits identifying the UNet architecture and the null-context shape."""
    payload = {
        "unet": {k: v for k, v in dict(teacher.unet.config).items() if not k.startswith("_")},
        "context": list(teacher.validation_context().shape),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def candidates_hash(teacher, space: SearchSpace, candidates: CandidateCache) -> str:
    """12 hex digits identifying what every candidate of ``space`` builds on ``teacher``'s UNet.

    Candidate *names* do not pin an architecture: a surrogate type may change how it resolves its
    parameters (as ``bottleneck_resnet`` did when its GroupNorm groups began to divide the width), so
    a cached table is keyed on each candidate's class and resolved config as well.
    """
    h = hashlib.sha256()
    for block in space.blocks:
        module = teacher.unet.get_submodule(block.path)
        for candidate in block.choices:
            if candidate.type != TEACHER:
                h.update(f"{block.path}|{candidate.name}|{architecture(candidates(module, candidate))}\n".encode())
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    """``$TOCSR_NAS_CACHE`` or ``~/.cache/tocsr-nas``."""
    return Path(os.environ.get("TOCSR_NAS_CACHE", Path.home() / ".cache" / "tocsr-nas"))


def cost_table_for(
    teacher,
    space: SearchSpace,
    resolution: int | None = None,
    *,
    cache: bool | Path = True,
    progress: bool = False,
    candidates: CandidateCache | None = None,
) -> CostTable:
    """The cost table of ``space`` on ``teacher``'s UNet at ``resolution`` px (batch 1).

    Args:
        teacher: a :class:`~tocsr_nas.teacher.Teacher`.
        space: the resolved search space (see :func:`~tocsr_nas.stages.space.build_space`).
        resolution: image side in pixels (default: the preset's resolution).
        cache: ``True`` for :func:`cache_dir`, a folder, or ``False`` to always rebuild.
        progress: show a progress bar while tracing.
        candidates: the :class:`~tocsr_nas.stages.space.CandidateCache` used to build the space, if any.

    Returns:
        A :class:`~tocsr_nas.evaluators.CostTable` whose lookups equal whole-model fvcore traces.
    """
    resolution = resolution or teacher.default_resolution
    candidates = candidates if candidates is not None else CandidateCache()
    meta = {"architecture": architecture_hash(teacher), "space": space.hash,
            "candidates": candidates_hash(teacher, space, candidates)}
    path = None
    if cache:
        folder = cache_dir() if cache is True else Path(cache)
        path = folder / f"costs-{meta['architecture']}-{meta['space']}-{meta['candidates']}-{resolution}px.json"
        if path.is_file():
            try:
                return CostTable.load(path, expect={**meta, "resolution": resolution})
            except CostTableError as exc:
                log.warning("ignoring cached cost table: %s", exc)
    unet = teacher.unet.eval()
    args, kwargs = teacher.unet_example_inputs(batch=1, resolution=resolution)
    choices = {b.path: b.names for b in space.blocks}

    def instantiate(block_path: str, name: str, block):
        return candidates(block, space[block_path].choices[space[block_path].index(name)])

    table = CostTable.build(
        unet, args, kwargs, choices, instantiate, None, progress=progress, resolution=resolution, metadata=meta
    )
    if path is not None:
        try:
            table.save(path)
        except OSError as exc:  # a read-only home must not break the command
            log.warning("could not cache the cost table at %s: %s", path, exc)
    return table
