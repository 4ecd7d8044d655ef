"""``tocsr-nas run``: the whole pipeline on the embedded default, one cached, resumable stage at a time.

Stages and their folders under ``--out`` (each is a valid ``DIR`` of the matching command)::

    teacher/     the shipped tiny teacher (copied), or ``tocsr-nas teacher train`` for other presets
    surrogates/  tocsr-nas distill
    search/      tocsr-nas search
    compact/     tocsr-nas export
    sr/          tocsr-nas sr train
    onestep/     tocsr-nas sr distill
    evaluate/    tocsr-nas evaluate

Every stage runs the same code as its command (the CLI entry point, in-process). ``OUT/pipeline.json``
records each finished stage with its arguments and seconds, written atomically after the stage;
a rerun skips finished stages and passes ``--resume`` to an interrupted one, so Ctrl-C or a crash
never costs more than the stage in progress.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tocsr_nas._io import atomic_write_json
from tocsr_nas.errors import TocsrError

log = logging.getLogger(__name__)

__all__ = ["PipelineSettings", "Stage", "quick_settings", "run_pipeline", "STATE_FILE"]

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
        workers: distillation processes.
        evaluate_max_side: centre-crop the evaluation photos to this side (``None``: whole photos).
        sr_pool: training patches of the SR and one-step stages (``None``: the commands' defaults).
        batch_size: batch size of the SR and one-step stages (``None``: the commands' defaults).
        threads: torch CPU threads of every stage. One is the robust choice for these small models:
            on a shared CPU, torch's default of one thread per core made SR training about 10x slower.
        sampler_steps: DDIM steps of the multi-step SR model (50, diffusers' usual default), which the
            one-step model is distilled from and compared with.
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
    evaluate_max_side: int | None = None
    sr_pool: int | None = None
    batch_size: int | None = None
    sampler_steps: int = 50
    threads: int = 1


def quick_settings() -> PipelineSettings:
    """The smallest settings that still run every stage for real (the end-to-end test uses them)."""
    return PipelineSettings(
        distill_steps=20, distill_samples=32, budget=6, sr_steps=20, onestep_steps=10, workers=1,
        evaluate_max_side=96, sr_pool=8, batch_size=4, sampler_steps=10,
    )


@dataclass
class Stage:
    """One step of the pipeline: its folder name and the CLI arguments that produce it."""

    name: str
    argv: Callable[[Path, bool], list[str]]
    resumable: bool = True
    after: Callable[[Path], None] | None = field(default=None)


def _cli(argv: Sequence[str]) -> None:
    from tocsr_nas.cli import main

    code = main(list(argv))
    if code:
        raise TocsrError(f"stage command `tocsr-nas {' '.join(argv)}` failed with exit code {code}")


def stages(settings: PipelineSettings) -> list[Stage]:
    """The pipeline's stages for ``settings``, in order."""
    s = settings
    eps = ",".join(str(e) for e in s.epsilons)

    def resume(flag: bool) -> list[str]:
        return ["--resume"] if flag else []

    threads = ["--threads", str(s.threads)]
    sr_sizes = [*(["--pool-size", str(s.sr_pool)] if s.sr_pool else []),
                *(["--batch-size", str(s.batch_size)] if s.batch_size else [])]

    return [
        Stage(
            "surrogates",
            lambda out, r: ["distill", "--teacher", str(out / "teacher"), "--out", str(out / "surrogates"),
                            "--steps", str(s.distill_steps), "--samples", str(s.distill_samples),
                            "--workers", str(s.workers), "--seed", str(s.seed), *threads, *resume(r)],
        ),
        Stage(
            "search",
            lambda out, r: ["search", "--teacher", str(out / "teacher"), "--surrogates", str(out / "surrogates"),
                            "--epsilon", eps, "--strategy", s.strategy, "--budget", str(s.budget),
                            "--seed", str(s.seed), "--out", str(out / "search"), *threads, *resume(r)],
        ),
        Stage(
            "compact",
            lambda out, r: ["export", "--search", str(out / "search"), "--out", str(out / "compact"), "--overwrite"],
            resumable=False,
        ),
        Stage(
            "sr",
            lambda out, r: ["sr", "train", "--backbone", str(out / "compact"), "--out", str(out / "sr"),
                            "--steps", str(s.sr_steps), "--seed", str(s.seed), "--sampler-steps", str(s.sampler_steps),
                            *sr_sizes, *threads, *resume(r)],
        ),
        Stage(
            "onestep",
            lambda out, r: ["sr", "distill", "--teacher", str(out / "sr"), "--out", str(out / "onestep"),
                            "--steps", str(s.onestep_steps), "--seed", str(s.seed), *sr_sizes, *threads, *resume(r)],
        ),
        Stage(
            "evaluate",
            lambda out, r: ["evaluate", "--model", str(out / "onestep"), "--multistep", str(out / "sr"),
                            "--out", str(out / "evaluate"), *threads,
                            *(["--max-side", str(s.evaluate_max_side)] if s.evaluate_max_side else [])],
            resumable=False,
        ),
    ]


def _prepare_teacher(out: Path, settings: PipelineSettings) -> list[str] | None:
    """Copy the shipped tiny teacher, or return the training command for another preset."""
    from tocsr_nas.teacher import default_teacher_dir

    if settings.preset == "tiny":
        tmp = out / ".teacher.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(default_teacher_dir(), tmp, ignore=shutil.ignore_patterns("README.md"))
        tmp.replace(out / "teacher")
        return None
    return ["teacher", "train", "--preset", settings.preset, "--out", str(out / "teacher"), "--seed", str(settings.seed)]


def _load_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TocsrError(f"{path} is corrupt ({exc}); move it away to rerun every stage") from None


def run_pipeline(out: str | Path, settings: PipelineSettings | None = None, *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or finish) the pipeline into ``out``; returns the state with each stage's seconds.

    Args:
        out: the output folder (created; an earlier run's folder is resumed).
        settings: sizes of the stages.
        only: run only these stages (their inputs must already exist).
    """
    settings = settings or PipelineSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out)
    recorded = state.get("settings")
    current = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.__dict__.items()}
    if recorded is not None and recorded != current:
        raise TocsrError(
            f"{out} holds a pipeline run with other settings ({STATE_FILE}); use another --out or the same settings"
        )
    state["settings"] = current
    done = state.setdefault("stages", {})

    def finish(name: str, argv: list[str] | None, seconds: float) -> None:
        done[name] = {"argv": argv, "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(out / STATE_FILE, state)

    if "teacher" not in done and (only is None or "teacher" in only):
        start = time.perf_counter()
        argv = _prepare_teacher(out, settings)
        if argv is not None:
            _cli(argv + (["--resume"] if (out / "teacher").exists() else []))
        finish("teacher", argv, time.perf_counter() - start)
    for stage in stages(settings):
        if stage.name in done or (only is not None and stage.name not in only):
            continue
        folder = out / stage.name
        interrupted = folder.exists() and any(folder.iterdir())
        argv = stage.argv(out, stage.resumable and interrupted)
        log.info("== stage %s: tocsr-nas %s", stage.name, " ".join(argv))
        start = time.perf_counter()
        _cli(argv)
        finish(stage.name, argv, time.perf_counter() - start)
    return state
