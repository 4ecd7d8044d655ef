"""Export a searched configuration as a standalone compact denoiser, and load it back.

A compact folder holds everything a later stage needs, and nothing of the search machinery::

    compact.json                 format, UNet config, per-block surrogate configs, the configuration,
                                 its search figures (trial, quality, epsilon), measured complexity,
                                 the teacher's fingerprint and the size and sha256 of every weights
                                 file (``files``; checked when the folder is loaded)
    unet.safetensors             the assembled UNet's weights (teacher blocks + distilled surrogates)
    vae/ scheduler/ context/     the teacher's VAE, noise scheduler and null context (diffusers layout;
                                 ``vae/`` and ``context/`` only when the teacher has them)

Every denoiser family works (:mod:`~tocsr_nas.teacher.adapters`): ``unet_class`` names the diffusers
class (``UNet2DModel``, ``UNet2DConditionModel``, ``DiTTransformer2DModel``...), and the rebuilt
module's ``forward`` takes exactly the teacher denoiser's arguments and returns what it returns
(a diffusers output with ``.sample``, or a tuple with ``return_dict=False``).

:func:`load_compact` rebuilds the denoiser from ``compact.json`` + ``unet.safetensors`` alone: the
diffusers class built from its config, each searched block replaced by the
surrogate its saved config describes (through the surrogate registry), then the weights loaded
strictly. No teacher, search space or surrogate library is read.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tocsr_nas._io import (
    atomic_dir,
    atomic_write_text,
    check_out_path,
    load_safetensors,
    one_line,
    read_json,
    save_safetensors,
    verify_records,
    weight_records,
)
from tocsr_nas.errors import TocsrError, UserInputError
from tocsr_nas.evaluators import count_complexity
from tocsr_nas.locks import locks_folder
from tocsr_nas.searchspace import TEACHER, Configuration, SearchSpace
from tocsr_nas.surrogates.registry import surrogate_from_config

log = logging.getLogger(__name__)

__all__ = ["COMPACT_FILE", "WEIGHTS_FILE", "assemble_from_library", "export_compact", "load_compact", "load_compact_teacher"]

COMPACT_FILE = "compact.json"
WEIGHTS_FILE = "unet.safetensors"
FORMAT = "tocsr-nas/compact-unet"
VERSION = 1


class CompactFormatError(TocsrError):
    """A folder that is not a readable compact-UNet export."""


def assemble_from_library(unet: nn.Module, space: SearchSpace, library: Any, config: Mapping[str, str]) -> nn.Module:
    """A deep copy of ``unet`` with each chosen block replaced by its distilled surrogate.

    Args:
        unet: the teacher UNet (left unchanged).
        space: the search space the library was distilled for.
        library: a :class:`~tocsr_nas.surrogates.library.SurrogateLibrary`.
        config: the configuration (validated against ``space``).
    """
    cfg = space.validate(config)
    model = copy.deepcopy(unet)
    for path, name in cfg.items():
        if name != TEACHER:
            model.set_submodule(path, library.load(path, name, unet.get_submodule(path)))
    return model.eval()


def _block_entries(model: nn.Module, config: Configuration) -> dict[str, Any]:
    entries = {}
    for path, name in config.items():
        if name == TEACHER:
            continue
        module = model.get_submodule(path)
        entries[path] = {"candidate": name, "type": getattr(module, "type_name", None), "config": dict(module.config)}
    return entries


@locks_folder("out_dir", "export")
def export_compact(
    teacher: Any,
    space: SearchSpace,
    library: Any,
    config: Mapping[str, str],
    out_dir: str | os.PathLike[str],
    *,
    resolution: int | None = None,
    info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the compact UNet of ``config`` to ``out_dir`` (atomically: a temp folder, then a rename).

    Args:
        teacher: the :class:`~tocsr_nas.teacher.Teacher` the library was distilled from.
        space: the search space.
        library: the surrogate library.
        config: the configuration to export.
        out_dir: the folder to create.
        resolution: image side (px) at which params/GMACs are measured (default: the teacher's).
        info: extra JSON fields to record (search folder, trial, epsilon, quality...).
        overwrite: replace an existing export.

    Returns:
        The ``compact.json`` content (with ``measured`` params/GMACs of the rebuilt model).
    """
    out = Path(out_dir)
    check_out_path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserInputError(f"{out} exists and is not empty; choose another --out or remove it")
    cfg = space.validate(config)
    model = assemble_from_library(teacher.unet, space, library, cfg)
    resolution = resolution or teacher.default_resolution
    args, kwargs = teacher.unet_example_inputs(1, resolution=resolution)
    cost = count_complexity(model, args, kwargs)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "unet_class": type(teacher.unet).__name__,
        "family": teacher.family,
        "unet_config": {k: v for k, v in dict(teacher.unet.config).items() if not k.startswith("_")},
        "configuration": cfg.to_dict(),
        "configuration_hash": cfg.hash,
        "blocks": _block_entries(model, cfg),
        "resolution": resolution,
        "measured": {"params": cost.params, "gmacs": cost.gmacs, "macs": cost.macs},
        "teacher_fingerprint": teacher.fingerprint(),
        **dict(info or {}),
    }
    # written next to ``out`` and swapped in whole: an interrupted or failed export (even with
    # ``overwrite``) leaves the previous export as it was
    with atomic_dir(out) as tmp:
        save_safetensors(tmp / WEIGHTS_FILE, model.state_dict(), metadata={"format": FORMAT})
        parts = {"vae": teacher.vae, "context": teacher.context}
        for name, module in parts.items():
            if module is not None:
                module.save_pretrained(tmp / name, safe_serialization=True)
        teacher.scheduler.save_config(tmp / "scheduler")
        meta["files"] = weight_records(tmp, (WEIGHTS_FILE, *(n for n, m in parts.items() if m is not None)))
        atomic_write_text(tmp / COMPACT_FILE, json.dumps(meta, indent=1, default=str))
    log.info("exported %s: %.2f M params, %.3f GMACs at %d px", out, cost.params / 1e6, cost.gmacs, resolution)
    return meta


def read_compact_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``compact.json`` of an export (a clear error when it is missing or foreign)."""
    path = Path(directory) / COMPACT_FILE
    try:
        meta = read_json(path)
    except OSError:
        raise CompactFormatError(f"{directory} is not a compact export (no {COMPACT_FILE}); create one with `tocsr-nas export`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CompactFormatError(f"{path} has format {found!r}, expected {FORMAT!r}")
    return meta


def load_compact(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild an exported compact denoiser (any supported family) from its folder alone.

    Args:
        directory: a folder written by :func:`export_compact` / ``tocsr-nas export``.
        device: where to put the model.

    Returns:
        The teacher's diffusers class (``UNet2DConditionModel``, ``UNet2DModel``, a DiT...) whose
        searched blocks are the exported surrogates, in eval mode; called with the teacher
        denoiser's arguments it returns what the teacher returns. For a compact decoder folder, the
        diffusers ``Decoder`` (``decoder(z) -> image``, see
        :func:`~tocsr_nas.teacher.components.load_decoder`).

    Raises:
        CompactFormatError: not a compact export, or weights that do not fit its architecture.
        DamagedFileError: ``compact.json`` or ``unet.safetensors`` is damaged (truncated, corrupt, or
            not the size and sha256 recorded).

    Example:
        >>> unet = load_compact("runs/demo/compact")  # doctest: +SKIP
        >>> eps = unet(x_t, t, encoder_hidden_states=ctx, return_dict=False)[0]  # doctest: +SKIP
    """
    from tocsr_nas.teacher.adapters import UnsupportedModelError, adapter_for
    from tocsr_nas.teacher.components import load_decoder

    decoder = load_decoder(directory, device=device)  # a compact VAE decoder folder (--component vae.decoder)
    if decoder is not None:
        return decoder
    meta = read_compact_meta(directory)
    class_name = str(meta.get("unet_class"))
    try:
        model_class = adapter_for(class_name, meta.get("unet_config") or {}).model_class(class_name)
    except UnsupportedModelError as exc:
        raise CompactFormatError(f"{directory}: {exc}") from None
    try:
        unet = model_class.from_config(meta["unet_config"])
        for path, entry in meta["blocks"].items():
            unet.set_submodule(path, surrogate_from_config(entry["config"], type_name=entry["type"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CompactFormatError(
            f"{Path(directory) / COMPACT_FILE} is damaged: its architecture does not rebuild ({one_line(exc)})"
        ) from None
    files = meta.get("files")
    if isinstance(files, dict):  # the UNet's own weights; load_compact_teacher checks the rest
        files = {k: v for k, v in files.items() if k == WEIGHTS_FILE}
    verify_records(directory, files, Path(directory) / COMPACT_FILE)
    try:
        state = load_safetensors(Path(directory) / WEIGHTS_FILE)
    except OSError as exc:
        raise CompactFormatError(f"cannot read {Path(directory) / WEIGHTS_FILE}: {exc}") from None
    missing, unexpected = unet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CompactFormatError(
            f"{directory}: weights do not match the architecture ({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )
    return unet.to(device).eval()


def load_compact_teacher(directory: str | os.PathLike[str]) -> Any:
    """The compact UNet with the VAE, scheduler and null context exported beside it, as a
    :class:`~tocsr_nas.teacher.Teacher` (for SR adaptation and evaluation).

    Raises:
        CompactFormatError: not a compact export, or an incomplete one.
        DamagedFileError: a weights file differs from the size and sha256 ``compact.json`` records.
    """
    from diffusers import AutoencoderKL, DDPMScheduler

    from tocsr_nas.teacher import NullContext, Teacher
    from tocsr_nas.teacher.model import PooledNullContext

    directory = Path(directory)
    unet = load_compact(directory)
    files = read_compact_meta(directory).get("files")
    if isinstance(files, dict):  # load_compact checked the UNet's own weights: the VAE and context here
        files = {k: v for k, v in files.items() if k != WEIGHTS_FILE}
    verify_records(directory, files, directory / COMPACT_FILE)
    try:
        vae = None
        if (directory / "vae").is_dir():
            vae = AutoencoderKL.from_pretrained(directory / "vae", use_safetensors=True, low_cpu_mem_usage=False).eval()  # no accelerate warning
        scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")
        context = None
        if (directory / "context").is_dir():
            ctx_cfg = read_json(directory / "context" / "config.json")
            ctx_cls = PooledNullContext if ctx_cfg.get("_class_name") == PooledNullContext.__name__ else NullContext
            context = ctx_cls.from_pretrained(directory / "context", use_safetensors=True, low_cpu_mem_usage=False).eval()
    except (OSError, ValueError) as exc:
        raise CompactFormatError(f"{directory}: incomplete export ({one_line(exc)})") from None
    return Teacher(vae=vae, unet=unet, scheduler=scheduler, context=context, preset="compact")


# ---------------------------------------------------------------------- export from a search folder
def _search_path(search: Path, value: str) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return search / path  # a path relative to the search folder


def pick_trial(result: Any, trial: int | None, epsilon: float | None) -> tuple[Any, float | None]:
    """The trial to export from a search result: by id, or the best feasible at ``epsilon``.

    Args:
        result: a :class:`~tocsr_nas.search.results.SearchResult`.
        trial: a trial id (then the returned epsilon is ``None``).
        epsilon: any epsilon (default: the search's primary one). One the search did not target is
            answered from the sweep's trials (``quality <= epsilon``; the trial's ``from_trials``
            is ``True``), see :meth:`~tocsr_nas.search.results.SearchResult.best_at`.

    Returns:
        ``(trial, epsilon)``.

    Raises:
        UserInputError: no such trial, or no feasible trial at ``epsilon``.
    """
    import warnings

    from tocsr_nas.search.results import NoFeasibleTrialWarning, Trial

    if trial is not None:
        rows = result.trials[result.trials["trial"] == trial]
        if rows.empty:
            raise UserInputError(f"no trial {trial} in the search (trials 0..{len(result.trials) - 1})")
        return Trial.from_row(rows.iloc[0], result.epsilons), None
    eps = result.primary_epsilon if epsilon is None else float(epsilon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoFeasibleTrialWarning)
        best = result.best_at(eps)
    if best is None:
        searched = "" if any(math.isclose(eps, e) for e in result.epsilons) else " (read from the sweep's trials)"
        raise UserInputError(f"no feasible trial at epsilon {eps:g}{searched}; export one by --trial ID or search longer")
    if best.from_trials:
        log.info(
            "epsilon %g was not a target of the search (%s): its best is read from the sweep's trials (quality <= %g)",
            eps, ", ".join(f"{e:g}" for e in result.epsilons), eps,
        )  # fmt: skip
        return best, eps
    return best, next(e for e in result.epsilons if math.isclose(eps, e))


@locks_folder("out", "export")
def export_search(
    search_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    trial: int | None = None,
    epsilon: float | None = None,
    overwrite: bool = False,
    component: str | None = None,
) -> tuple[dict[str, Any], Any]:
    """Export a trial of a ``tocsr-nas search`` folder as a compact UNet folder (``tocsr-nas export``).

    The search's component (``search.json``) decides what is written: a compact UNet for the
    denoiser, a compact decoder folder for ``vae.decoder``
    (:func:`~tocsr_nas.teacher.components.export_decoder`); ``component``, when given, must be it.

    Args:
        search_dir: the search's ``--out`` folder (its ``search.json`` names the teacher and library).
        out: the compact folder to create.
        trial: export this trial id (default: the best feasible trial, see :func:`pick_trial`).
        epsilon: the best feasible trial at this epsilon (default: the search's primary one).
        overwrite: replace an existing ``out``.

    Returns:
        ``(meta, trial)``: :func:`export_compact`'s metadata and the exported trial.

    Raises:
        UserInputError: ``search_dir`` is not a search folder, the trial cannot be picked, or ``out``
            is a file or is, contains or lies inside the search folder, or the teacher or library it names.
    """
    from tocsr_nas.search.results import load_search
    from tocsr_nas.surrogates.library import SurrogateLibrary
    from tocsr_nas.teacher import Teacher

    search = Path(search_dir)
    check_out_path(out, search=search)
    settings_file = search / "search.json"
    if not settings_file.is_file():
        raise UserInputError(f"{search} is not a `tocsr-nas search` folder (no search.json)")
    settings = read_json(settings_file)
    searched = settings.get("component") or "denoiser"
    if component is not None and component != searched:
        from tocsr_nas.surrogates.errors import LibraryMismatchError

        raise LibraryMismatchError(f"{search} searched component {searched!r}, not {component!r}; leave --component out or name {searched}")
    result = load_search(search)
    chosen, eps = pick_trial(result, trial, epsilon)
    teacher_dir, library_dir = _search_path(search, settings["teacher"]), _search_path(search, settings["surrogates"])
    check_out_path(out, others={"the search's teacher": teacher_dir, "the search's surrogate library": library_dir})
    teacher = Teacher.load(teacher_dir).eval()
    library = SurrogateLibrary.open(library_dir, teacher_fingerprint=teacher.fingerprint())
    info = {
        "search": str(search.resolve()),
        "trial": chosen.trial,
        "epsilon": eps,
        "epsilon_from_trials": chosen.from_trials,
        "quality": chosen.quality,
        "quality_name": settings.get("quality"),
        "objective": settings.get("objective"),
        "searched": {"params": chosen.params, "gmacs": chosen.gmacs},
    }
    from tocsr_nas.teacher.components import get_component

    exporter = get_component(settings.get("component"))  # searches that predate components: the denoiser
    meta = exporter.export(
        teacher, library.space, library, chosen.config, out, resolution=settings.get("resolution"), info=info,
        overwrite=overwrite,
    )  # fmt: skip
    return meta, chosen


__all__ += ["export_search", "pick_trial"]
