"""Build a :class:`~tocsr_nas.searchspace.SearchSpace` for a real model, checking every candidate.

``build_space(unet, spec, probe=...)`` resolves the rules against ``unet.named_modules()``, checks
that every candidate type exists, can stand in for its block's kind, accepts its parameters and
returns the block's output structure and shapes on real inputs (one forward pass at a small
probe resolution, blocks with identical signatures checked once), and drops a candidate that
builds the same architecture as an earlier choice of its block (recorded in ``space.merged``).
Every failure is one :class:`~tocsr_nas.searchspace.SearchSpaceError` naming the rule and the
block path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tocsr_nas.searchspace import TEACHER, SearchSpace, SearchSpaceError, SpaceSpec
from tocsr_nas.surrogates import available_surrogates, build_surrogate
from tocsr_nas.surrogates.capture import BlockIO, capture_block_io

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SPACES", "default_space_file", "default_space_name", "load_space_spec", "build_space", "make_candidate", "CandidateCache", "assemble", "structure", "architecture"]

#: packaged spaces, by name (``--space unet`` or a path to your own YAML); each model family's
#: adapter names its default (:mod:`tocsr_nas.teacher.adapters`), each component its own
#: (:mod:`tocsr_nas.teacher.components`)
DEFAULT_SPACES = {"unet": "unet.yaml", "unet2d": "unet2d.yaml", "transformer": "transformer.yaml", "vae.decoder": "vae_decoder.yaml"}


def default_space_file(name: str = "unet") -> Path:
    """Path of a packaged default space (``nas/spaces/<name>.yaml``)."""
    if name not in DEFAULT_SPACES:
        raise SearchSpaceError(f"unknown default space {name!r}; packaged spaces: {sorted(DEFAULT_SPACES)}")
    return Path(str(resources.files("tocsr_nas") / "spaces" / DEFAULT_SPACES[name]))


def default_space_name(model: nn.Module | None = None) -> str:
    """The packaged space for ``model``'s family (``unet`` without a model or for an unknown one)."""
    if model is None:
        return "unet"
    from tocsr_nas.teacher.adapters import UnsupportedModelError, adapter_for

    try:
        return adapter_for(model).default_space
    except UnsupportedModelError:
        return "unet"


def load_space_spec(space: str | Path | SpaceSpec | None = None, model: nn.Module | None = None) -> SpaceSpec:
    """A :class:`SpaceSpec` from a packaged name, a YAML file path, or a spec (``None``: the default
    space of ``model``'s family, see :func:`default_space_name`)."""
    if isinstance(space, SpaceSpec):
        return space
    if space is None:
        space = default_space_name(model)
    if isinstance(space, str) and space in DEFAULT_SPACES:
        return SpaceSpec.load(str(default_space_file(space)))
    return SpaceSpec.load(str(space))


def make_candidate(block: nn.Module, candidate: Any) -> nn.Module:
    """The module a candidate stands for: the block itself for ``teacher``, else a fresh surrogate."""
    if candidate.type == TEACHER:
        return block
    return build_surrogate(candidate.type, block, **dict(candidate.params))


class CandidateCache:
    """Builds each distinct (teacher block architecture, candidate) once.

    Structurally identical teacher blocks (same ``repr``: class, channels, groups...) get the same
    surrogate architecture, so shape checks and fvcore traces can share one instance. Weights are
    whatever ``from_teacher`` gives the first block: use this for shapes and costs, never for
    outputs that matter.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], nn.Module] = {}
        self.built = 0

    def __call__(self, block: nn.Module, candidate: Any) -> nn.Module:
        if candidate.type == TEACHER:
            return block
        key = (repr(block), candidate.name)
        if key not in self._cache:
            self._cache[key] = make_candidate(block, candidate).eval()
            self.built += 1
        return self._cache[key]


def structure(value: Any) -> Any:
    """The nested structure of a block output with tensors replaced by their shapes (for comparison)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, Mapping):
        return {k: structure(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(structure(v) for v in value)
    return type(value).__name__


def assemble(model: nn.Module, space: SearchSpace, config: Mapping[str, str], build=make_candidate) -> nn.Module:
    """A deep copy of ``model`` with each block replaced by its chosen candidate (fresh weights).

    Args:
        model: the teacher network.
        space: its search space.
        config: ``{block path: candidate name}``; missing blocks keep the teacher.
        build: ``(teacher block, Candidate) -> module``.

    Returns:
        The assembled network (for architecture questions: costs, shapes, export skeletons).
    """
    import copy

    cfg = space.validate(config)
    out = copy.deepcopy(model)
    for block in space.blocks:
        cand = block.choices[block.index(cfg[block.path])]
        if cand.type == TEACHER:
            continue
        parent_path, _, child = block.path.rpartition(".")
        parent = out.get_submodule(parent_path) if parent_path else out
        setattr(parent, child, build(model.get_submodule(block.path), cand))
    return out


def architecture(module: nn.Module) -> str:
    """What makes two modules the same block: their class and resolved diffusers config.

    Modules without a ``config`` (e.g. a teacher ``ResnetBlock2D``) are described by their ``repr``;
    private config keys (``_class_name``, ``_use_default_values``...) are left out.
    """
    config = getattr(module, "config", None)
    if isinstance(config, Mapping):
        desc: Any = {k: v for k, v in config.items() if not k.startswith("_")}
    else:
        desc = repr(module)
    return json.dumps([f"{type(module).__module__}.{type(module).__qualname__}", desc], sort_keys=True, default=str)


def _signature(block: nn.Module, io: BlockIO) -> str:
    return json.dumps([architecture(block), structure((io.args, io.kwargs))], sort_keys=True, default=str)


def build_space(
    model: nn.Module,
    spec: SpaceSpec | str | Path | None = None,
    *,
    probe: tuple[Sequence[Any], Mapping[str, Any]] | None = None,
    candidates: CandidateCache | None = None,
) -> SearchSpace:
    """Resolve ``spec`` against ``model``, check every (block, candidate) pair and drop duplicates.

    A candidate that builds the same :func:`architecture` as an earlier choice of its block (say
    two ratios that round to one width) is dropped in favour of the earlier one, with a logged
    warning; the space records it in :attr:`~tocsr_nas.searchspace.SearchSpace.merged` and its
    hash differs from the unmerged space's (it is the same when nothing is merged).

    Args:
        model: the teacher network (e.g. a diffusers ``UNet2DConditionModel``).
        spec: a :class:`SpaceSpec`, a packaged space name or a YAML path (default: the model
            family's packaged space: ``unet``, ``unet2d`` or ``transformer``).
        probe: ``(args, kwargs)`` of one forward pass used to check output shapes; ``None``
            skips the shape check (types, kinds and parameters are still checked).
        candidates: a :class:`CandidateCache` to build candidates through (pass the same one to
            :func:`~tocsr_nas.stages.costs.cost_table_for` so nothing is built twice).

    Returns:
        The resolved, checked search space, without duplicate candidates.

    Raises:
        SearchSpaceError: a rule that matches nothing, an unknown candidate type, a candidate that
            cannot replace its block, bad parameters, or a different output shape - naming the
            rule and the path.
    """
    spec = load_space_spec(spec, model)
    candidates = candidates if candidates is not None else CandidateCache()
    modules = [(name, type(mod).__name__) for name, mod in model.named_modules()]
    space = spec.resolve(modules, known_types=available_surrogates())
    ios = capture_block_io(model, space.paths, *probe) if probe is not None else {}
    checked: set[tuple[str, str]] = set()
    merged: dict[str, dict[str, str]] = {}
    for block in space.blocks:
        module = model.get_submodule(block.path)
        io = ios.get(block.path)
        signature = _signature(module, io) if io is not None else repr(module)
        seen = {architecture(candidates(module, block.choices[0])): block.choices[0].name}
        for cand in block.choices[1:]:
            try:
                surrogate = candidates(module, cand)
            except SearchSpaceError:
                raise
            except Exception as exc:  # TocsrError subclasses from the registry, or a bad constructor
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SearchSpaceError(f"candidate {cand.name!r} cannot be built: {msg}", rule=block.rule, path=block.path) from None
            kept = seen.setdefault(architecture(surrogate), cand.name)
            if kept != cand.name:
                merged.setdefault(block.path, {})[cand.name] = kept
            if (signature, cand.name) in checked:
                continue
            if io is not None:
                with torch.no_grad():
                    try:
                        out = io.call(surrogate)
                    except Exception as exc:
                        raise SearchSpaceError(
                            f"candidate {cand.name!r} fails on the block's inputs: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                            rule=block.rule,
                            path=block.path,
                        ) from None
                want, got = structure(io.output), structure(out)
                if want != got:
                    raise SearchSpaceError(
                        f"candidate {cand.name!r} returns {got}, the block returns {want}",
                        rule=block.rule,
                        path=block.path,
                    )
            checked.add((signature, cand.name))
    log.debug("space %s: %d blocks, %d pair types checked", space.name, len(space), len(checked))
    if merged:
        log.warning(
            "space %s: %d candidates build the same block as an earlier choice and were dropped: %s",
            space.name,
            sum(map(len, merged.values())),
            "; ".join(f"{path}: {dropped} = {kept}" for path, drops in merged.items() for dropped, kept in drops.items()),
        )
        space = space.merge(merged)
    return space
