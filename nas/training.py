"""The one deterministic, checkpointed training loop: teacher training, SR training, one-step distillation.

**Determinism.** Step ``k``'s data and noise are drawn by the caller's ``step_fn(k)`` from
generators seeded by :func:`step_seed` ``(seed, phase, k)``, and the learning rate is a pure
function of ``k`` (:func:`lr_at`), so a resumed run reproduces the weights of an uninterrupted one.

**Checkpoints.** ``OUT/checkpoints/<phase>-<k>/`` holds the run's modules' weights (one
safetensors file per module) and the optimizer state (read back with
``torch.load(weights_only=True)``); ``OUT/checkpoints/state.json``, replaced atomically, names the
latest complete one, so a crash at any moment leaves a resumable folder. Earlier checkpoint
folders are removed once the state points past them. A single-phase run (SR training, one-step
distillation) names its checkpoints ``step-<k>``; a run in phases (the teacher's VAE then UNet)
records its ``phase`` in the state, and its wall and CPU seconds per phase.

**Stopping.** ``stop_after`` ends a run abruptly after that many optimisation steps in one call
(:class:`Stopped`, a simulated crash for tests); Ctrl-C is left to the caller (the CLI): either
way the last checkpoint is what ``--resume`` continues.

Example:
    >>> lr_at(0, 100, 1e-3, warmup=10), round(lr_at(100, 100, 1e-3, warmup=10), 6)
    (0.0001, 0.0001)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from tocsr_nas._io import (
    atomic_write_json,
    load_safetensors,
    load_torch_state,
    read_json,
    save_safetensors,
    save_torch_state,
)
from tocsr_nas.errors import DamagedFileError, TocsrError, UserInputError, option_name, require_at_least, require_in_range

__all__ = [
    "step_seed",
    "lr_at",
    "adamw",
    "check_loop_settings",
    "Checkpoints",
    "Run",
    "open_run",
    "run_steps",
    "Stopped",
]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


class Stopped(Exception):
    """Raised when ``stop_after`` steps have run in one call (a simulated crash, for tests)."""


def step_seed(seed: int, phase: str, step: int) -> int:
    """A 63-bit seed for ``(seed, phase, step)`` (distinct streams, no arithmetic collisions)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{phase}/{step}".encode()).digest()[:8], "little") & (2**63 - 1)


def lr_at(step: int, total: int, peak: float, warmup: int = 0) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``0.1 peak`` at ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def adamw(parameters: list[nn.Parameter], lr: float) -> torch.optim.AdamW:
    """The optimizer of every loop: AdamW without weight decay (its learning rate is set per step)."""
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)


def check_loop_settings(config: object, lrs: tuple[str, ...] | Mapping[str, str] = ("lr",)) -> None:
    """Check the settings every loop's config shares.

    ``steps`` and ``warmup`` must be ``>= 0`` (zero steps, an untrained model, is for API callers
    such as tests; the command line asks for ``--steps >= 1``), ``batch_size`` and
    ``checkpoint_every`` ``>= 1``, ``seed`` an integer ``>= 0`` and ``val_fraction`` (where the
    config has one) in ``[0, 1)``; each learning rate named in ``lrs`` a finite number ``> 0`` (``lrs``
    maps a field to its command-line option where the two differ, e.g. ``{"unet_lr": "--lr"}``; a
    plain name is its own option).

    Raises:
        UserInputError: the first bad field, named as its command-line option.

    Example:
        >>> from types import SimpleNamespace
        >>> check_loop_settings(SimpleNamespace(steps=1, warmup=0, batch_size=2, checkpoint_every=1, lr=0.0))
        Traceback (most recent call last):
        ...
        tocsr_nas.errors.UserInputError: --lr must be a finite number > 0, got 0.0
    """
    require_at_least(config, 0, "steps", "warmup")
    require_at_least(config, 1, "batch_size", "checkpoint_every")
    if hasattr(config, "seed"):
        require_at_least(config, 0, "seed")
    if hasattr(config, "val_fraction"):
        require_in_range(config, "val_fraction", low=0, high=1, high_open=True)
    options = dict(lrs) if isinstance(lrs, Mapping) else {name: option_name(name) for name in lrs}
    require_in_range(config, *options, low=0, low_open=True, options=options)


class Checkpoints:
    """The ``checkpoints/`` folder of a run: ``state.json`` plus the latest ``<phase>-<k>/``."""

    def __init__(self, out: Path) -> None:
        self.dir = Path(out) / CHECKPOINTS
        self.state_path = self.dir / "state.json"

    def read_state(self) -> dict[str, Any] | None:
        """The saved run state, or ``None`` if there is none.

        Raises:
            DamagedFileError: ``state.json`` is truncated, corrupt, or not a run state.
        """
        if not self.state_path.is_file():
            return None
        state = read_json(self.state_path)
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise DamagedFileError(
                f"{self.state_path} is damaged (not a run state); start the run again without --resume"
            )
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace ``state.json`` atomically."""
        atomic_write_json(self.state_path, state)

    def save(
        self,
        state: dict[str, Any],
        step: int,
        modules: Mapping[str, nn.Module],
        optimizer: torch.optim.Optimizer | None = None,
        phase: str | None = None,
    ) -> None:
        """Write ``<phase>-<step>/`` then point ``state.json`` at it (atomically), then drop the previous one.

        Args:
            state: the run state; its ``step``, ``checkpoint`` (and ``phase``) are updated.
            step: the number of steps done.
            modules: the modules to save, each as ``<name>.safetensors``.
            optimizer: the optimizer, if its state is to be kept.
            phase: the phase of a run in phases (``None``: a single-phase run, ``step-<k>``).
        """
        name = f"{phase or 'step'}-{step:07d}"
        for part, module in modules.items():
            save_safetensors(self.dir / name / f"{part}.safetensors", module.state_dict())
        if optimizer is not None:
            save_torch_state(self.dir / name / "optimizer.pt", optimizer.state_dict())
        previous = state.get("checkpoint")
        state.update(step=step, checkpoint=name)
        if phase is not None:
            state["phase"] = phase
        self.write_state(state)
        if previous and previous != name:
            shutil.rmtree(self.dir / previous, ignore_errors=True)

    def restore(
        self, state: dict[str, Any], modules: Mapping[str, nn.Module], optimizer: torch.optim.Optimizer | None = None
    ) -> int:
        """Load the checkpoint ``state`` names (the optimizer's state if it has one); returns its step (0 if none)."""
        name = state.get("checkpoint")
        if not name:
            return 0
        folder = self.dir / name
        for part, module in modules.items():
            module.load_state_dict(load_safetensors(folder / f"{part}.safetensors"))
        if optimizer is not None and (folder / "optimizer.pt").is_file():
            optimizer.load_state_dict(load_torch_state(folder / "optimizer.pt"))
        return int(state["step"])

    def remove(self) -> None:
        """Delete the whole ``checkpoints/`` folder."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def finish(self, state: dict[str, Any], keep: bool) -> None:
        """Record a finished run's ``state``, then delete the folder unless ``keep`` (to extend the run later)."""
        self.write_state(state)
        if not keep:
            self.remove()


def open_run(
    out: Path,
    config: Any,
    *,
    resume: bool,
    resumable: tuple[str, ...],
    done_file: str,
    phases: tuple[tuple[str, str], ...] = (),
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The run state of ``out``: fresh, or the checkpoint's when resuming (settings checked).

    Args:
        out: the output folder; must be empty or absent unless ``resume``.
        config: the run's frozen dataclass config.
        resume: continue ``out``'s checkpoint.
        resumable: config fields that may differ from the checkpoint's.
        done_file: the file a finished run leaves in ``out`` (to explain why nothing resumes).
        phases: ``(phase, steps field)`` of each phase of a run in phases, in order (empty: one
            phase, its length ``config.steps``). A finished phase's length cannot change.
        sources: ``{option: fingerprint}`` of the artefacts the run is derived from (``--backbone``,
            ``--teacher``); recorded in a fresh run, and a resume from other ones is refused (a run
            recorded before sources were kept takes these).

    A fresh run writes ``checkpoints/state.json`` (step 0) at once, so ``out`` can be resumed
    even when it is interrupted before its first checkpoint.

    Raises:
        TocsrError: a non-empty ``out`` without ``resume``, nothing to resume, changed settings, or
            (resuming) a source whose fingerprint differs from the recorded one.
    """
    ckpt = Checkpoints(out)
    names = [name for name, _ in phases]
    if resume:
        state = ckpt.read_state()
        if state is None and (out / done_file).is_file():
            raise TocsrError(f"{out} is already trained ({done_file} exists); choose a new --out to train again")
        if state is None:
            raise TocsrError(f"nothing to resume in {out}: no {CHECKPOINTS}/state.json (start without --resume)")
        try:
            saved = type(config)(**state["config"])
        except (TypeError, ValueError) as exc:
            raise DamagedFileError(f"{ckpt.state_path} is damaged (its settings do not load: {exc})") from None
        diff = [
            f"{f.name}={getattr(config, f.name)!r} (checkpoint has {getattr(saved, f.name)!r})"
            for f in dataclasses.fields(config)
            if f.name not in resumable and getattr(config, f.name) != getattr(saved, f.name)
        ]
        if diff:
            raise TocsrError(f"cannot resume {out} with different settings: {', '.join(diff)}")
        recorded = state.setdefault("sources", {})
        for option, fingerprint in (sources or {}).items():
            if recorded.setdefault(option, fingerprint) != fingerprint:
                raise TocsrError(
                    f"cannot resume {out}: it was started from another {option} (fingerprint {recorded[option]}, "
                    f"this one {fingerprint}); pass the one it was started from, or choose a new --out"
                )
        field, where = "steps", ""
        if phases:  # a phase after the last ("done") counts as the last
            current = names.index(state["phase"]) if state["phase"] in names else len(names) - 1
            for name, steps_field in phases[:current]:
                if getattr(config, steps_field) != getattr(saved, steps_field):
                    option = "--" + steps_field.replace("_", "-")
                    raise TocsrError(f"cannot change {option} when resuming {out}: the {name} phase is finished")
            field, where = phases[current][1], f" of the {names[current]} phase"
        if int(state.get("step", 0)) > getattr(config, field):
            raise TocsrError(f"{out} is already past step {getattr(config, field)}{where}")
        state["config"] = dataclasses.asdict(config)
        return state
    if out.exists() and any(out.iterdir()):
        raise TocsrError(f"output folder {out} is not empty: choose a new --out, or pass --resume to continue it")
    state: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "step": 0,
        "checkpoint": None,
        "metrics": {},
        "sources": dict(sources or {}),
    }
    if phases:
        state.update(phase=names[0], seconds=dict.fromkeys(names, 0.0), cpu_seconds=dict.fromkeys(names, 0.0))
    else:
        state["seconds"] = 0.0
    ckpt.write_state(state)  # from now on the folder is resumable, even before step 1
    return state


class Run:
    """One call of a checkpointed run: its state, modules, clock and ``stop_after`` count.

    Args:
        out: the output folder (its ``checkpoints/`` are written here).
        state: the run state from :func:`open_run`.
        modules: the modules a checkpoint saves and restores, by file name.
        progress: show tqdm bars with the loss.
        stop_after: raise :class:`Stopped` after this many optimisation steps of this call.
        autocast: a context manager factory around each step's loss (mixed precision:
            :meth:`tocsr_nas.devices.Placement.autocast`); ``None``: float32 throughout.
    """

    def __init__(
        self,
        out: Path,
        state: dict[str, Any],
        modules: Mapping[str, nn.Module],
        *,
        progress: bool = True,
        stop_after: int | None = None,
        autocast: Callable[[], Any] | None = None,
    ) -> None:
        self.autocast = autocast
        self.ckpt = Checkpoints(out)
        self.state, self.modules = state, dict(modules)
        self.progress, self.stop_after, self.steps_run = progress, stop_after, 0
        self._clock = (time.perf_counter(), time.process_time())

    def tick(self) -> None:
        """Add the wall (and CPU) seconds since the last tick to the state (to its phase's entry)."""
        now = (time.perf_counter(), time.process_time())
        for key, t0, t1 in zip(("seconds", "cpu_seconds"), self._clock, now):
            if isinstance(self.state.get(key), dict):
                phase = self.state["phase"]
                self.state[key][phase] = self.state[key].get(phase, 0.0) + t1 - t0
            elif key == "seconds":
                self.state[key] = self.state.get(key, 0.0) + t1 - t0
        self._clock = now

    def checkpoint(self, step: int, optimizer: torch.optim.Optimizer | None = None, phase: str | None = None) -> None:
        """Save a checkpoint at ``step`` (the time so far belongs to the phase being left or continued)."""
        self.tick()
        self.ckpt.save(self.state, step, self.modules, optimizer, phase)

    def restore(self, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Load the checkpoint the state names; returns its step (0 if there is none)."""
        return self.ckpt.restore(self.state, self.modules, optimizer)

    def optimise(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: list[nn.Parameter],
        step_fn: Callable[[int], torch.Tensor],
        *,
        start: int,
        steps: int,
        lr: float,
        warmup: int,
        checkpoint_every: int,
        desc: str,
        phase: str | None = None,
        final_checkpoint: bool = True,
    ) -> None:
        """Steps ``start .. steps - 1``: set the learning rate, ``step_fn(k)`` (the loss), clip to norm 1, step.

        Checkpoints (with the optimizer) every ``checkpoint_every`` steps and, if
        ``final_checkpoint``, after the last step (so a later run may extend ``steps``). The
        caller sets the modules' train/eval modes.

        Raises:
            Stopped: once ``stop_after`` steps have run in this call (after that step's checkpoint, if any).
        """
        bar = tqdm(total=steps, initial=start, desc=desc, disable=not self.progress, dynamic_ncols=True)
        try:
            for step in range(start, steps):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, steps, lr, warmup)
                if self.autocast is None:
                    loss = step_fn(step)
                else:  # the forward pass in the reduced dtype; weights, gradients and Adam stay float32
                    with self.autocast():
                        loss = step_fn(step)
                    loss = loss.float()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
                last = step + 1 == steps
                if (last and final_checkpoint) or (not last and (step + 1) % checkpoint_every == 0):
                    self.checkpoint(step + 1, optimizer, phase)
                self.steps_run += 1
                if self.stop_after is not None and self.steps_run >= self.stop_after:
                    raise Stopped
        finally:
            bar.close()
        self.tick()


def run_steps(
    *,
    out: Path,
    state: dict[str, Any],
    module: nn.Module,
    parameters: list[nn.Parameter],
    step_fn: Callable[[int], torch.Tensor],
    steps: int,
    lr: float,
    warmup: int,
    checkpoint_every: int,
    desc: str,
    progress: bool = True,
    stop_after: int | None = None,
    autocast: Callable[[], Any] | None = None,
) -> None:
    """A single-phase run: optimise ``parameters`` of ``module`` for ``steps`` steps of ``step_fn``.

    Resumes from ``out/checkpoints`` when ``state`` names a checkpoint (``module`` is saved as
    ``weights.safetensors``), checkpoints every ``checkpoint_every`` steps and at the end (so a
    later run may extend ``steps``); ``module`` is in train mode while it runs, in eval mode
    after. The wall time is accumulated in ``state["seconds"]``.

    Raises:
        Stopped: after ``stop_after`` steps in this call.
    """
    run = Run(out, state, {"weights": module}, progress=progress, stop_after=stop_after, autocast=autocast)
    optimizer = adamw(parameters, lr)
    start = run.restore(optimizer)
    module.train()
    run.optimise(
        optimizer, parameters, step_fn, start=start, steps=steps, lr=lr, warmup=warmup,
        checkpoint_every=checkpoint_every, desc=desc,
    )  # fmt: skip
    module.eval()
