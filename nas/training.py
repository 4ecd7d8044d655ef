"""A deterministic, checkpointed optimisation loop shared by SR training and one-step distillation.

**Determinism.** Step ``k``'s data and noise are drawn by the caller's ``step_fn(k)`` from
generators seeded by :func:`step_seed` ``(seed, phase, k)``, and the learning rate is a pure
function of ``k`` (:func:`lr_at`), so a resumed run reproduces the weights of an uninterrupted one.

**Checkpoints.** ``OUT/checkpoints/step-<k>/`` holds the trainable module's weights
(safetensors) and the optimizer state (read back with ``torch.load(weights_only=True)``);
``OUT/checkpoints/state.json``, replaced atomically, names the latest complete one, so a crash
at any moment leaves a resumable folder. Earlier checkpoint folders are removed once the state
points past them.

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
from collections.abc import Callable
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
from tocsr_nas.errors import TocsrError

__all__ = ["step_seed", "lr_at", "Checkpoints", "open_run", "run_steps", "Stopped"]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


class Stopped(Exception):
    """Raised when ``stop_after`` steps have run without a checkpoint (a simulated crash, for tests)."""


def step_seed(seed: int, phase: str, step: int) -> int:
    """A 63-bit seed for ``(seed, phase, step)`` (distinct streams, no arithmetic collisions)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{phase}/{step}".encode()).digest()[:8], "little") & (2**63 - 1)


def lr_at(step: int, total: int, peak: float, warmup: int = 0) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``0.1 peak`` at ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class Checkpoints:
    """The ``checkpoints/`` folder of a run: ``state.json`` plus the latest ``step-<k>/``."""

    def __init__(self, out: Path) -> None:
        self.dir = Path(out) / CHECKPOINTS
        self.state_path = self.dir / "state.json"

    def read_state(self) -> dict[str, Any] | None:
        return read_json(self.state_path) if self.state_path.is_file() else None

    def save(self, state: dict[str, Any], step: int, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Write ``step-<k>/`` then point ``state.json`` at it (atomically), then drop the previous one."""
        name = f"step-{step:07d}"
        save_safetensors(self.dir / name / "weights.safetensors", module.state_dict())
        save_torch_state(self.dir / name / "optimizer.pt", optimizer.state_dict())
        previous = state.get("checkpoint")
        state.update(step=step, checkpoint=name)
        atomic_write_json(self.state_path, state)
        if previous and previous != name:
            shutil.rmtree(self.dir / previous, ignore_errors=True)

    def restore(self, state: dict[str, Any], module: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Load the checkpoint ``state`` names; returns its step (0 if there is none)."""
        name = state.get("checkpoint")
        if not name:
            return 0
        module.load_state_dict(load_safetensors(self.dir / name / "weights.safetensors"))
        optimizer.load_state_dict(load_torch_state(self.dir / name / "optimizer.pt"))
        return int(state["step"])

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def open_run(out: Path, config: Any, *, resume: bool, resumable: tuple[str, ...], done_file: str) -> dict[str, Any]:
    """The run state of ``out``: fresh, or the checkpoint's when resuming (settings checked).

    Args:
        out: the output folder; must be empty or absent unless ``resume``.
        config: the run's frozen dataclass config.
        resume: continue ``out``'s checkpoint.
        resumable: config fields that may differ from the checkpoint's.
        done_file: the file a finished run leaves in ``out`` (to explain why nothing resumes).

    A fresh run writes ``checkpoints/state.json`` (step 0) at once, so ``out`` can be resumed
    even when it is interrupted before its first checkpoint.

    Raises:
        TocsrError: a non-empty ``out`` without ``resume``, nothing to resume, or changed settings.
    """
    ckpt = Checkpoints(out)
    if resume:
        state = ckpt.read_state()
        if state is None and (out / done_file).is_file():
            raise TocsrError(f"{out} is already trained ({done_file} exists); choose a new --out to train again")
        if state is None:
            raise TocsrError(f"nothing to resume in {out}: no {CHECKPOINTS}/state.json (start without --resume)")
        saved = type(config)(**state["config"])
        diff = [
            f"{f.name}={getattr(config, f.name)!r} (checkpoint has {getattr(saved, f.name)!r})"
            for f in dataclasses.fields(config)
            if f.name not in resumable and getattr(config, f.name) != getattr(saved, f.name)
        ]
        if diff:
            raise TocsrError(f"cannot resume {out} with different settings: {', '.join(diff)}")
        if int(state.get("step", 0)) > config.steps:
            raise TocsrError(f"{out} is already past step {config.steps}")
        state["config"] = dataclasses.asdict(config)
        return state
    if out.exists() and any(out.iterdir()):
        raise TocsrError(f"output folder {out} is not empty: choose a new --out, or pass --resume to continue it")
    state = {"config": dataclasses.asdict(config), "step": 0, "checkpoint": None, "metrics": {}, "seconds": 0.0}
    atomic_write_json(ckpt.state_path, state)  # from now on the folder is resumable, even before step 1
    return state


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
) -> None:
    """Optimise ``parameters`` with AdamW for ``steps`` steps of ``step_fn`` (the loss of step ``k``).

    Resumes from ``out/checkpoints`` when ``state`` names a checkpoint; checkpoints every
    ``checkpoint_every`` steps and at the end (so a later run may extend ``steps``). The wall
    time is accumulated in ``state["seconds"]``.

    Raises:
        Stopped: after ``stop_after`` steps in this call, without a checkpoint.
    """
    ckpt = Checkpoints(out)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    start = ckpt.restore(state, module, optimizer)
    module.train()
    clock = time.perf_counter()
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True)
    done_here = 0
    for step in range(start, steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        loss = step_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        done_here += 1
        if stop_after is not None and done_here >= stop_after:
            bar.close()
            raise Stopped
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - clock
            clock = time.perf_counter()
            ckpt.save(state, step + 1, module, optimizer)
    bar.close()
    module.eval()
    state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - clock
