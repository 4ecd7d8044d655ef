"""The training stages as library functions over folders, called by their CLI commands and by
``tocsr-nas run`` alike.

* :func:`train_teacher_folder`: ``tocsr-nas teacher train``;
* :func:`distill_library`: ``tocsr-nas distill`` (load the teacher, build its space, distil);
* :func:`train_sr_folder`: ``tocsr-nas sr train``;
* :func:`distill_onestep_folder`: ``tocsr-nas sr distill``.

Each takes its config's fields as keyword options. The checkpointed ones (teacher, SR, one-step)
share these keyword arguments, and an option left ``None`` takes the config's default or, when
resuming, the value the checkpoint recorded (:func:`resumed_config`):

* ``resume``: continue ``out`` from its last checkpoint;
* ``keep_checkpoints``: keep ``out/checkpoints`` after success (to extend ``steps`` later);
* ``progress``: show progress bars;
* ``threads``: torch CPU threads (``None``: torch's choice; :func:`~tocsr_nas.threads.set_threads`);
* ``device``, ``dtype``: ``--device`` / ``--dtype`` (:func:`tocsr_nas.devices.resolve`): the model
  trains on that device; a reduced dtype trains in mixed precision (float32 weights).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tocsr_nas._io import check_out_path
from tocsr_nas.errors import TocsrError
from tocsr_nas.locks import locks_folder
from tocsr_nas.threads import set_threads

log = logging.getLogger(__name__)

__all__ = ["distill_library", "distill_onestep_folder", "resumed_config", "train_sr_folder", "train_teacher_folder"]

C = TypeVar("C")


def resumed_config(cls: type[C], out: str | Path, resume: bool, options: dict[str, Any]) -> C:
    """A config of dataclass ``cls`` from ``options``; ``None`` options keep the base value.

    The base is ``cls()`` or, with ``resume`` and a checkpoint in ``out/checkpoints/state.json``,
    the config that checkpoint was trained with.
    """
    from tocsr_nas.training import Checkpoints

    given = {k: v for k, v in options.items() if v is not None}
    base = cls()
    state = Checkpoints(Path(out)).read_state() if resume else None
    if state is not None:
        base = cls(**state["config"])  # unset options keep the checkpoint's values
    return dataclasses.replace(base, **given)


def _checkpointed(
    train: Callable[..., Any], config_cls: type[C], sources: tuple[Any, ...], out: str | Path, options: dict[str, Any],
    *, resume: bool, threads: int | None, inputs: dict[str, Any], device: str | None = None,
    dtype: str | None = None, **kwargs: Any,
) -> tuple[Any, C]:
    """Resolve ``device`` and ``dtype`` (:func:`tocsr_nas.devices.resolve`), check
    ``out`` against the command's ``inputs`` (option name -> path, see
    :func:`~tocsr_nas._io.check_out_path`; ``options["images"]`` is one too), set the threads, build the
    (resumed) config, run ``train(*sources, out, config, resume=..., device=..., **kwargs)`` on the
    device (with mixed precision when ``dtype`` is reduced)."""
    from tocsr_nas.devices import resolve

    placement = resolve(device, dtype)
    kwargs["device"] = placement.device
    if placement.reduced:
        kwargs["autocast"] = placement.autocast
    check_out_path(out, **inputs, images=options.get("images"))
    set_threads(threads)
    config = resumed_config(config_cls, out, resume, options)
    return train(*sources, out, config, resume=resume, **kwargs), config


def train_teacher_folder(
    out: str | Path,
    *,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **options: Any,
) -> dict[str, Any] | None:
    """Train a preset teacher into ``out`` (:func:`~tocsr_nas.teacher.train.train_teacher`).

    Args:
        out: output folder (new, or the one to resume).
        resume, keep_checkpoints, progress, threads, device, dtype: see the module docstring.
        **options: :class:`~tocsr_nas.teacher.train.TrainConfig` fields (``None``: unset).

    Returns:
        The teacher's metrics, or ``None`` when training stopped early.

    Raises:
        TocsrError: an unknown preset, invalid options, an ``out`` that is a file or lies in ``images``,
            or a folder that cannot be (re)started.
    """
    from tocsr_nas.teacher import available_presets
    from tocsr_nas.teacher.train import TrainConfig, train_teacher

    preset = options.get("preset") or "tiny"
    if preset not in available_presets():
        raise TocsrError(f"unknown teacher preset {preset!r}; valid presets: {', '.join(available_presets())}")
    metrics, _ = _checkpointed(
        train_teacher, TrainConfig, (), Path(out), options, resume=resume, threads=threads, inputs={},
        device=device, dtype=dtype,
        keep_checkpoints=keep_checkpoints, progress=progress,
    )  # fmt: skip
    return metrics


@locks_folder("out", "distill")
def distill_library(
    out: str | Path,
    *,
    teacher: str | Path | None = None,
    preset: str | None = None,
    space: str | None = None,
    resume: bool = False,
    progress: bool = True,
    component: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    **options: Any,
) -> Any:
    """Distil every (block, candidate) pair of a teacher's space into the library ``out``.

    Args:
        out: library folder: new or empty, or the one to resume.
        teacher: teacher folder (default: the shipped tiny teacher).
        preset: a preset teacher with random weights instead of ``teacher``.
        space: search space YAML or packaged space name (default: the component's, ``unet``).
        resume: finish the library in ``out``; finished pairs are kept.
        progress: show a progress bar.
        component: the searched network (default the denoiser; ``"vae.decoder"``).
        executor: where the pairs are trained, ``"local"`` (``workers`` processes) or ``"ray"``
            (one Ray task per pair; :mod:`tocsr_nas.executors`).
        ray_address: the Ray cluster to join (``None``: ``RAY_ADDRESS``, else a local cluster of
            ``workers * threads`` CPUs).
        **options: :class:`~tocsr_nas.stages.distill.DistillConfig` fields.

    Returns:
        The :class:`~tocsr_nas.surrogates.library.SurrogateLibrary`.

    Raises:
        TocsrError: a bad option, Ray asked for but not installed or unreachable, or ``out`` is a file, is, contains or lies inside the teacher or
            the space file, or is a non-empty folder without ``resume``.
    """
    from tocsr_nas.executors import make_executor
    from tocsr_nas.stages.distill import DistillConfig, distill_teacher
    from tocsr_nas.stages.space import build_space
    from tocsr_nas.teacher import Teacher, build_teacher, default_teacher_dir
    from tocsr_nas.teacher.components import get_component

    comp = get_component(component)
    if teacher is not None and preset is not None:
        raise TocsrError("give a teacher folder or a preset, not both")
    config = DistillConfig(**options)
    out = Path(out)
    space_file = space if space is not None and Path(space).is_file() else None
    check_out_path(out, teacher=teacher or default_teacher_dir(), space=space_file)
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise TocsrError(
            f"--out {out} exists and is not empty; pass --resume to finish the library in it, or choose a new "
            "folder (nothing was changed)"
        )
    from tocsr_nas.devices import resolve

    placement = resolve(config.device, config.dtype)  # an absent device fails before any work
    config = dataclasses.replace(config, device=str(placement.device))
    # on a GPU the pairs in flight share one (a fraction each; Ray shows a task only the GPU it was given)
    num_gpus = 1.0 / config.workers if placement.device.type == "cuda" else 0.0
    with make_executor(executor, address=ray_address, workers=config.workers, threads=config.threads,
                       num_gpus=num_gpus) as jobs:
        model = build_teacher(preset) if preset else Teacher.load(teacher or default_teacher_dir())
        model.eval()
        resolution = config.resolution or model.default_resolution
        comp.check_resolution(model, resolution)  # a resolution the VAE cannot take is an error before any work
        built = build_space(comp.module(model), space or comp.default_space, probe=comp.probe(model))
        log.info("%s: %d (block, candidate) pairs", built.summary(), sum(len(b.choices) - 1 for b in built.blocks))
        if not placement.is_default():  # the space is resolved on the CPU in float32, the capture runs placed
            model.to(placement.device, placement.dtype)
        return distill_teacher(
            model, built, out, config, resume=resume, progress=progress, component=comp.name, executor=jobs
        )


def train_sr_folder(
    backbone: str | Path,
    out: str | Path,
    *,
    teacher: str | Path | None = None,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **options: Any,
) -> tuple[Any, Any]:
    """Adapt ``backbone`` to super-resolution into ``out`` (:func:`~tocsr_nas.sr.train.train_sr`).

    Args:
        backbone: teacher folder or compact UNet folder.
        out: output SR model folder (new, or the one to resume).
        teacher: teacher folder for a compact backbone's VAE (default: the one it records).
        resume, keep_checkpoints, progress, threads, device, dtype: see the module docstring.
        **options: :class:`~tocsr_nas.sr.train.SRTrainConfig` fields (``None``: unset).

    Returns:
        ``(model, config)``: the saved :class:`~tocsr_nas.sr.model.SRModel` and the config it trained with.

    Raises:
        TocsrError: ``out`` is a file or is, contains or lies inside ``backbone``, ``teacher`` or
            ``images``, or a folder that cannot be (re)started.
    """
    from tocsr_nas.sr.train import SRTrainConfig, train_sr

    return _checkpointed(
        train_sr, SRTrainConfig, (backbone,), out, options, resume=resume, threads=threads, teacher=teacher,
        device=device, dtype=dtype,
        inputs={"backbone": backbone, "teacher": teacher},
        keep_checkpoints=keep_checkpoints, progress=progress,
    )  # fmt: skip


def distill_onestep_folder(
    teacher: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **options: Any,
) -> tuple[Any, Any]:
    """Distil the multi-step SR model ``teacher`` into a one-step model in ``out``.

    Args:
        teacher: the multi-step SR model folder (``tocsr-nas sr train``).
        out: output one-step model folder (new, or the one to resume).
        resume, keep_checkpoints, progress, threads, device, dtype: see the module docstring.
        **options: :class:`~tocsr_nas.sr.onestep.DistillConfig` fields (``None``: unset).

    Returns:
        ``(model, config)``: the saved :class:`~tocsr_nas.sr.model.SRModel` and the config it trained with.

    Raises:
        TocsrError: ``out`` is a file or is, contains or lies inside ``teacher`` or ``images``, or a
            folder that cannot be (re)started.
    """
    from tocsr_nas.sr.onestep import DistillConfig, distill_onestep

    return _checkpointed(
        distill_onestep, DistillConfig, (teacher,), out, options, resume=resume, threads=threads,
        device=device, dtype=dtype,
        inputs={"teacher": teacher},
        keep_checkpoints=keep_checkpoints, progress=progress,
    )  # fmt: skip
