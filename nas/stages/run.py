"""``tocsr-nas run``: the whole pipeline on the embedded default, one cached, resumable stage at a time.

Stages and their folders under ``--out`` (each is a valid ``DIR`` of the matching command)::

    teacher/     the shipped tiny teacher (copied), or ``tocsr-nas teacher train`` for other presets
    surrogates/  tocsr-nas distill
    search/      tocsr-nas search
    compact/     tocsr-nas export
    sr/          tocsr-nas sr train
    onestep/     tocsr-nas sr distill
    evaluate/    tocsr-nas evaluate

Every stage calls the same library function as its command, in-process; nothing here imports the
command line. ``OUT/pipeline.json`` records each finished stage
with the equivalent command line (``argv``, to rerun it by hand) and its seconds, written atomically
after the stage; a rerun skips finished stages and resumes an interrupted one, so Ctrl-C or a crash
never costs more than the stage in progress.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tocsr_nas._io import atomic_dir, atomic_write_json, check_out_path
from tocsr_nas.errors import TocsrError, UserInputError
from tocsr_nas.locks import locks_folder

log = logging.getLogger(__name__)

__all__ = ["STATE_FILE", "PipelineSettings", "Stage", "command_line", "quick_settings", "run_pipeline", "stages"]

STATE_FILE = "pipeline.json"


@dataclass(frozen=True)
class PipelineSettings:
    """Sizes of the default pipeline, chosen so ``tocsr-nas run`` fits in 20 minutes on 2 CPU cores.

    Attributes:
        preset: teacher preset; ``tiny`` uses the shipped checkpoint.
        seed: seed of every stage.
        distill_steps, distill_samples: blockwise distillation size.
        epsilons: the epsilon sweep of the search (the first is the primary one that is exported).
        budget: search evaluations.
        strategy: search strategy.
        sr_steps, onestep_steps: SR fine-tuning and one-step distillation steps.
        workers: distillation jobs at a time (processes, or Ray tasks in flight).
        executor: where distillation pairs and search evaluations run (``"local"`` or ``"ray"``;
            :mod:`tocsr_nas.executors`).
        ray_address: the Ray cluster to join (``None``: ``RAY_ADDRESS``, else a local cluster).
        search_batch_size: search proposals per round (evaluated in parallel with Ray).
        evaluate_max_side: centre-crop the evaluation photos to this side (``None``: whole photos); 256
            keeps the multi-step sampler on the twelve held-out photos inside the demo's time.
        refine_steps: steps of the one-step model's luma refiner (``None``: the command's default).
        sr_pool: training patches of the SR and one-step stages (``None``: the commands' defaults).
        batch_size: batch size of the SR and one-step stages (``None``: the commands' defaults).
        threads: torch CPU threads of every stage. One is the robust choice for these small models:
            on a shared CPU, torch's default of one thread per core made SR training about 10x slower.
        sampler_steps: DDIM steps of the multi-step SR model (50, diffusers' usual default), which the
            one-step model is distilled from and compared with.
        device, dtype: ``--device`` / ``--dtype`` of the computing stages (``None``: each command's
            default; see :mod:`tocsr_nas.devices`).
    """

    preset: str = "tiny"
    seed: int = 0
    distill_steps: int = 300
    distill_samples: int = 256
    epsilons: tuple[float, ...] = (0.05, 0.02, 0.1)
    budget: int = 40
    strategy: str = "ecbo"
    sr_steps: int = 1000
    onestep_steps: int = 400
    workers: int = 2
    evaluate_max_side: int | None = 256
    refine_steps: int | None = None
    sr_pool: int | None = None
    batch_size: int | None = None
    sampler_steps: int = 50
    threads: int = 1
    device: str | None = None
    dtype: str | None = None
    executor: str = "local"
    ray_address: str | None = None
    search_batch_size: int = 1


def quick_settings() -> PipelineSettings:
    """The smallest settings that still run every stage for real (the end-to-end test uses them)."""
    return PipelineSettings(
        distill_steps=20, distill_samples=32, budget=6, sr_steps=20, onestep_steps=10, workers=1,
        evaluate_max_side=96, sr_pool=8, batch_size=4, sampler_steps=10, refine_steps=20,
    )


def command_line(options: dict[str, Any]) -> list[str]:
    """The CLI arguments of ``options`` (in order): ``name=True`` is the flag ``--name``, ``None`` and
    ``False`` are left out, any other value is ``--name VALUE`` (underscores become dashes)."""
    argv: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


@dataclass
class Stage:
    """One step of the pipeline: its folder name, its command, and the library call that runs it.

    Attributes:
        name: the stage's folder under ``OUT`` (and its key in ``pipeline.json``).
        command: the ``tocsr-nas`` sub-command words (``None``: no command does this stage).
        options: ``(out, resume) -> {option: value}``, the command's options, which are also the
            keyword arguments of ``run`` (see :func:`command_line`).
        run: runs the stage from those options.
        resumable: an interrupted stage is continued (``resume=True``), not restarted.
        marks: names that only this stage writes in its folder; a non-empty folder without any of
            them holds someone else's files and the run refuses to touch it (``()``: any content is
            foreign; ``None``: the folder is not checked).
    """

    name: str
    command: tuple[str, ...] | None
    options: Callable[[Path, bool], dict[str, Any]]
    run: Callable[[dict[str, Any]], Any]
    resumable: bool = True
    marks: tuple[str, ...] | None = None

    def check_folder(self, folder: Path) -> None:
        """Refuse a file, or a non-empty ``folder`` that holds none of :attr:`marks` (files this run did not write).

        Raises:
            UserInputError: the folder holds someone else's files (nothing is changed).
        """
        if folder.exists() and not folder.is_dir():
            raise UserInputError(f"{folder} is a file, not the {self.name} stage's folder; move it away or use another --out")
        if self.marks is None:
            return
        if folder.is_dir() and any(folder.iterdir()) and not any((folder / m).exists() for m in self.marks):
            which = f" (none of {', '.join(self.marks)})" if self.marks else ""
            raise UserInputError(
                f"{folder} holds files this run did not write{which}; move them away or use another --out "
                "(nothing was changed)"
            )

    def argv(self, out: Path, resume: bool) -> list[str] | None:
        """The equivalent ``tocsr-nas`` command line (``None`` when no command does this stage)."""
        return None if self.command is None else [*self.command, *command_line(self.options(out, resume))]


def _search_stage(options: dict[str, Any]) -> None:
    """The search stage: :func:`~tocsr_nas.search.setup.run_search` (``epsilon`` is the command
    line's comma-separated sweep)."""
    from tocsr_nas.search.setup import run_search

    run_search(**{**options, "epsilon": [float(e) for e in str(options["epsilon"]).split(",")]})


@locks_folder("target", "run")
def _copy_shipped_teacher(target: Path) -> None:
    """Copy the shipped tiny teacher to ``target`` atomically; never over a folder with content."""
    from tocsr_nas.teacher import default_teacher_dir

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserInputError(
            f"{target} exists and is not a finished stage of this run; move it away or use another --out"
        )
    with atomic_dir(target) as tmp:
        shutil.copytree(default_teacher_dir(), tmp, ignore=shutil.ignore_patterns("README.md"), dirs_exist_ok=True)


def _evaluate(
    out: Path, model: Path, multistep: Path, threads: int, max_side: int | None, device: str | None = None,
    dtype: str | None = None,
) -> None:
    from tocsr_nas.devices import resolve
    from tocsr_nas.sr.evaluate import evaluate
    from tocsr_nas.threads import set_threads

    placement = resolve(device, dtype)
    set_threads(threads)
    with placement.autocast():  # as ``tocsr-nas evaluate``: float32 weights, a reduced dtype's ops
        evaluate(model, multistep_dir=multistep, max_side=max_side, out=out, device=placement.device)


#: settings that say where the work runs, not what it computes (not checked on resume)
_WHERE_SETTINGS = ("executor", "ray_address")
#: settings added after runs were recorded without them
_ADDED_SETTINGS = ("executor", "ray_address", "search_batch_size")


def _executor_options(s: PipelineSettings) -> dict[str, Any]:
    """The executor options of a stage: none on the default (so its command line stays as it was)."""
    if s.executor == "local" and s.ray_address is None:
        return {}
    return {"executor": s.executor, "ray_address": s.ray_address}


def _search_batch(s: PipelineSettings) -> dict[str, Any]:
    return {} if s.search_batch_size == 1 else {"batch_size": s.search_batch_size}


def stages(settings: PipelineSettings) -> list[Stage]:
    """The pipeline's stages for ``settings``, in order (the teacher first)."""
    from tocsr_nas.stages import export, train

    s = settings
    eps = ",".join(str(e) for e in s.epsilons)
    sr_sizes = {"pool_size": s.sr_pool, "batch_size": s.batch_size}
    placed = {k: v for k, v in (("device", s.device), ("dtype", s.dtype)) if v is not None}

    if s.preset == "tiny":
        teacher = Stage("teacher", None, lambda out, r: {"out": out / "teacher"},
                        lambda o: _copy_shipped_teacher(o["out"]), resumable=False, marks=())  # fmt: skip
    else:
        teacher = Stage(
            "teacher", ("teacher", "train"),
            lambda out, r: {"preset": s.preset, "out": out / "teacher", "seed": s.seed, **placed, "resume": r},
            lambda o: train.train_teacher_folder(**o),
            marks=("checkpoints", "teacher.json"),
        )  # fmt: skip
    return [
        teacher,
        Stage(
            "surrogates", ("distill",),
            lambda out, r: {"teacher": out / "teacher", "out": out / "surrogates", "steps": s.distill_steps,
                            "samples": s.distill_samples, "workers": s.workers, "seed": s.seed, "threads": s.threads,
                            **placed, **_executor_options(s), "resume": r},
            lambda o: train.distill_library(**o),
            marks=("manifest.json", "features"),
        ),
        Stage(
            "search", ("search",),
            lambda out, r: {"teacher": out / "teacher", "surrogates": out / "surrogates", "epsilon": eps,
                            "strategy": s.strategy, "budget": s.budget, "seed": s.seed, "out": out / "search",
                            "threads": s.threads, **placed, **_search_batch(s), **_executor_options(s), "resume": r},
            _search_stage,
            marks=("search.json", "journal.jsonl", "validation.safetensors"),
        ),
        Stage(
            "compact", ("export",),
            lambda out, r: {"search": out / "search", "out": out / "compact", "overwrite": True},
            lambda o: export.export_search(o["search"], o["out"], overwrite=o["overwrite"]),
            resumable=False,
            marks=("compact.json",),
        ),
        Stage(
            "sr", ("sr", "train"),
            lambda out, r: {"backbone": out / "compact", "out": out / "sr", "steps": s.sr_steps, "seed": s.seed,
                            "sampler_steps": s.sampler_steps, **sr_sizes, "threads": s.threads, **placed, "resume": r},
            lambda o: train.train_sr_folder(**o),
            marks=("checkpoints", "sr.json"),
        ),
        Stage(
            "onestep", ("sr", "distill"),
            lambda out, r: {"teacher": out / "sr", "out": out / "onestep", "steps": s.onestep_steps, "seed": s.seed,
                            "refine_steps": s.refine_steps, **sr_sizes, "threads": s.threads, **placed, "resume": r},
            lambda o: train.distill_onestep_folder(**o),
            marks=("checkpoints", "sr.json"),
        ),
        Stage(
            "evaluate", ("evaluate",),
            lambda out, r: {"model": out / "onestep", "multistep": out / "sr", "out": out / "evaluate",
                            "threads": s.threads, "max_side": s.evaluate_max_side, **placed},
            lambda o: _evaluate(**o),
            resumable=False,
            marks=("evaluation.json", "comparison.png"),
        ),
    ]  # fmt: skip


def _load_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TocsrError(f"{path} is corrupt ({exc}); move it away to rerun every stage") from None


@locks_folder("out", "run")
def run_pipeline(out: str | Path, settings: PipelineSettings | None = None, *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or finish) the pipeline into ``out``; returns the state with each stage's seconds.

    Args:
        out: the output folder (created; an earlier run's folder is resumed).
        settings: sizes of the stages.
        only: run only these stages (their inputs must already exist).

    Raises:
        UserInputError: ``out`` is a file, or the folder of a stage still to run holds files this
            run did not write (checked for every such stage before anything is written).
        TocsrError: ``out`` holds a run with other settings, or a stage fails.
    """
    settings = settings or PipelineSettings()
    out = Path(out)
    check_out_path(out)
    state = _load_state(out)
    recorded = state.get("settings")
    current = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.__dict__.items()}

    def identity(values: dict[str, Any]) -> dict[str, Any]:
        # where the work runs is no part of a run's identity: any executor resumes what another began;
        # a run recorded before a setting existed had its default
        defaults = {k: v for k, v in PipelineSettings().__dict__.items() if k in _ADDED_SETTINGS}
        return {k: v for k, v in {**defaults, **values}.items() if k not in _WHERE_SETTINGS}

    if recorded is not None and identity(recorded) != identity(current):
        raise TocsrError(
            f"{out} holds a pipeline run with other settings ({STATE_FILE}); use another --out or the same settings"
        )
    state["settings"] = current
    done = state.setdefault("stages", {})
    todo = [s for s in stages(settings) if s.name not in done and (only is None or s.name in only)]
    for stage in todo:  # a stage folder that holds a user's files stops the run before anything is written
        stage.check_folder(out / stage.name)
    out.mkdir(parents=True, exist_ok=True)

    def finish(name: str, argv: list[str] | None, seconds: float) -> None:
        done[name] = {"argv": argv, "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(out / STATE_FILE, state)

    for stage in todo:
        folder = out / stage.name
        resume = stage.resumable and folder.is_dir() and any(folder.iterdir())
        argv = stage.argv(out, resume)
        log.info("== stage %s: %s", stage.name, "tocsr-nas " + " ".join(argv) if argv else "copy the shipped teacher")
        start = time.perf_counter()
        stage.run(stage.options(out, resume))
        finish(stage.name, argv, time.perf_counter() - start)
    return state
