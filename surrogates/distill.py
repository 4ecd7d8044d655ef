"""Blockwise distillation: train every (block, candidate) pair on the teacher's block features.

Each pair is one independent job: build ``get_surrogate(type).from_teacher(block, **params)``,
train it with Adam to map the teacher block's captured inputs to the teacher block's captured
output, evaluate it on held-out features, and write it to the library (see
:mod:`tocsr_nas.surrogates.library`). Jobs read their features from a
:class:`~tocsr_nas.surrogates.features.FeatureCache` on disk, so the teacher never runs again;
they run in-process or on an executor (:mod:`tocsr_nas.executors`: a local process pool, Ray
tasks), and a resumed run skips every finished pair. Workers only train: they hand the weights
back and this process writes every pair and the manifest, so nothing is written into a library
once its writer is gone, and any executor resumes what another started. The library folder is
locked while it is written
(:mod:`tocsr_nas.locks`).

The loss (per block, normalised so that losses compare across blocks)
--------------------------------------------------------------------

Notation: ``f`` the teacher block, ``g`` the surrogate, ``x_i`` the captured call arguments of
sample ``i`` (hidden states, time embedding, context...), ``y_i = f(x_i)`` the captured output,
``D`` the number of elements of one output.

1. Feature MSE of a mini-batch ``B``::

       MSE(g; B) = 1 / (|B| D) * sum_{i in B} || g(x_i) - y_i ||^2

2. Its scale differs by orders of magnitude between blocks (channels, depth, residual
   streams), so it is divided by the block's mean output energy, a constant computed once over
   all ``N`` training samples::

       E_f = 1 / (N D) * sum_{i=1..N} || y_i ||^2

3. The distillation loss is the relative squared error::

       L(g; B) = MSE(g; B) / E_f

   ``L = 0`` is a perfect copy; ``L = 1`` is what the constant output ``g = 0`` scores; a skip
   connection scores ``|| x - y ||^2 / || y ||^2``. The same ``E_f`` (from the training split)
   normalises the held-out loss, so ``initial_loss`` and ``final_loss`` are comparable.

``initial_loss`` is ``L`` on the held-out features before any training (the surrogate as
``from_teacher`` built it); ``final_loss`` is the same after training. A parameter-free candidate
(e.g. ``skip`` on equal channels) is still a job: 0 steps, ``final_loss == initial_loss``,
``trainable: false``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tocsr_nas.locks import locks_folder
from tocsr_nas.searchspace.candidates import TEACHER, Candidate
from tocsr_nas.searchspace.space import SearchSpace
from tocsr_nas.surrogates.errors import SurrogateError
from tocsr_nas.surrogates.features import BlockFeatures, FeatureCache
from tocsr_nas.surrogates.library import (
    LibraryMismatchError,
    PairRecord,
    SurrogateLibrary,
    finished_pairs,
    library_header,
    read_manifest,
    write_manifest,
    write_pair,
)
from tocsr_nas.surrogates.registry import get_surrogate

__all__ = [
    "TrainSettings",
    "PairJob",
    "normalised_mse",
    "output_energy",
    "evaluate_loss",
    "train_pair",
    "train_job",
    "run_job",
    "plan_jobs",
    "check_resumable",
    "distill",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """How one pair is trained.

    Attributes:
        steps: Adam steps per trainable pair.
        batch_size: samples per step.
        lr: peak learning rate (cosine decay to ``lr * final_lr_fraction``).
        final_lr_fraction: the learning rate at the last step, relative to ``lr``.
        weight_decay: Adam's L2 penalty.
        grad_clip: clip the gradient norm to this (``0``: no clipping).
        eval_batch: samples per forward pass when evaluating.
        seed: base seed; each pair derives its own from ``(seed, block, candidate)``.
    """

    steps: int = 200
    batch_size: int = 16
    lr: float = 2e-3
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise SurrogateError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 1 or self.eval_batch < 1:
            raise SurrogateError("batch sizes must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SurrogateError(f"the learning rate must be a positive number, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairJob:
    """Everything one worker needs for one (block, candidate) pair.

    Attributes:
        block: the block's dotted path.
        candidate: the candidate (type and params).
        teacher_block: the teacher's block (its config and weights travel with the job).
        features: the feature cache folder.
        out: the library folder.
        settings: training settings.
        device: where to train (``"cpu"``, ``"cuda:0"`` ...); the features move there once.
        dtype: the compute dtype: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` for mixed
            precision (autocast; the surrogate's weights stay float32).
    """

    block: str
    candidate: Candidate
    teacher_block: nn.Module
    features: str
    out: str
    settings: TrainSettings
    device: str = "cpu"
    dtype: str = "float32"


def pair_seed(seed: int, block: str, candidate: str) -> int:
    """A per-pair seed: the same pair gets the same seed in any order, process or resume."""
    return zlib.crc32(f"{seed}|{block}|{candidate}".encode()) & 0x7FFFFFFF


def output_energy(features: BlockFeatures) -> float:
    """``E_f``: the mean squared teacher output over the training features (step 2 of the loss)."""
    target = features.target.double()  # (N, ...)
    energy = float(target.pow(2).mean())
    return energy if energy > 0 else 1.0


def normalised_mse(student: torch.Tensor, teacher: torch.Tensor, energy: float) -> torch.Tensor:
    """``L = MSE(student, teacher) / E_f`` (step 3 of the loss; see the module docstring).

    Args:
        student: the surrogate's output ``(b, ...)``.
        teacher: the teacher block's output ``(b, ...)``, same shape.
        energy: ``E_f`` of the block.

    Example:
        >>> y = torch.ones(2, 3)
        >>> float(normalised_mse(torch.zeros(2, 3), y, energy=1.0))
        1.0
    """
    if student.shape != teacher.shape:
        raise SurrogateError(f"surrogate output {tuple(student.shape)} differs from the block's {tuple(teacher.shape)}")
    return torch.mean((student - teacher) ** 2) / energy


@torch.no_grad()
def evaluate_loss(module: nn.Module, features: BlockFeatures, energy: float, *, batch: int = 64) -> float:
    """``L`` over every sample of ``features`` (mean over all elements, in chunks of ``batch``)."""
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    n = len(features)
    for start in range(0, n, batch):
        index = torch.arange(start, min(n, start + batch))
        out = features.call(module, index)
        target = features.target[index]
        if out.shape != target.shape:
            raise SurrogateError(f"surrogate output {tuple(out.shape)} differs from the block's {tuple(target.shape)}")
        total += float(((out.double() - target.double()) ** 2).sum())
        count += target.numel()
    module.train(was_training)
    return total / count / energy


def _lr_at(step: int, settings: TrainSettings) -> float:
    """Cosine decay from ``lr`` to ``lr * final_lr_fraction`` over ``steps``."""
    if settings.steps <= 1:
        return settings.lr
    progress = step / (settings.steps - 1)
    low = settings.final_lr_fraction
    return settings.lr * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_pair(
    teacher_block: nn.Module,
    candidate: Candidate,
    train: BlockFeatures,
    val: BlockFeatures,
    settings: TrainSettings,
    *,
    block: str = "",
) -> tuple[nn.Module, PairRecord]:
    """Build one surrogate from its teacher block and distil it on the block's features.

    Args:
        teacher_block: the teacher's block (read by ``from_teacher``; never modified).
        candidate: the candidate to build (not ``teacher``).
        train: training features of the block.
        val: held-out features of the block (for ``initial_loss`` / ``final_loss``).
        settings: training settings.
        block: the block's path (for the record and the seed).

    Returns:
        ``(trained surrogate in eval mode, its record)``.

    Example:
        >>> import tempfile
        >>> from diffusers.models.downsampling import Downsample2D
        >>> from tocsr_nas.surrogates.capture import capture_block_io
        >>> teacher = Downsample2D(4, use_conv=True, out_channels=8)
        >>> cache = FeatureCache(tempfile.mkdtemp())
        >>> for split in ("train", "val"):
        ...     cache.write("d", split, [capture_block_io(teacher, [""], (torch.randn(8, 4, 6, 6),))[""]])
        >>> module, rec = train_pair(teacher, Candidate("skip"), cache.read("d", "train"), cache.read("d", "val"),
        ...                          TrainSettings(steps=30), block="d")
        >>> rec.trainable, rec.steps, rec.final_loss < rec.initial_loss
        (True, 30, True)
    """
    if candidate.name == TEACHER:
        raise SurrogateError("the 'teacher' candidate is the block itself and is not distilled")
    start = time.perf_counter()
    seed = pair_seed(settings.seed, block, candidate.name)
    teacher_block = copy.deepcopy(teacher_block)  # a surrogate may share the teacher's tensors: never train those
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = get_surrogate(candidate.type).from_teacher(teacher_block, **dict(candidate.params))
    module = _to_like(module, train.target)
    energy = output_energy(train)
    initial = evaluate_loss(module, val, energy, batch=settings.eval_batch)
    params = [p for p in module.parameters() if p.requires_grad]
    trainable = bool(params)
    steps = settings.steps if trainable else 0
    if steps:
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
        module.train()
        n = len(train)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, settings)
            index = torch.randint(n, (min(settings.batch_size, n),), generator=gen)  # (b,)
            out = train.call(module, index)
            loss = normalised_mse(out, train.target[index], energy)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            opt.step()
        final = evaluate_loss(module, val, energy, batch=settings.eval_batch)
    else:
        final = initial
    module.eval()
    record = PairRecord(
        block=block,
        candidate=candidate.name,
        type=candidate.type,
        params=dict(candidate.params),
        config=dict(getattr(module, "config", {})),
        initial_loss=float(initial),
        final_loss=float(final),
        steps=int(steps),
        seconds=round(time.perf_counter() - start, 4),
        trainable=trainable,
        extra={"energy": energy, "train_samples": len(train), "val_samples": len(val)},
    )
    return module, record


def _to_like(module: nn.Module, ref: torch.Tensor) -> nn.Module:
    """Move ``module`` to ``ref``'s device and dtype (only when needed: diffusers warns on every ``to``)."""
    first = next(iter(module.parameters()), None)
    if first is not None and (first.device != ref.device or first.dtype != ref.dtype):
        module = module.to(device=ref.device, dtype=ref.dtype)
    return module


def train_job(job: PairJob) -> tuple[PairRecord, dict[str, torch.Tensor]]:
    """Run one job without writing anything: read the block's features, train the pair.

    Returns:
        ``(record, state)``: the pair's record (its ``file`` not yet set) and the surrogate's weights.
    """
    cache = FeatureCache(job.features)
    train = cache.read(job.block, "train")
    val = cache.read(job.block, "val")
    teacher_block = job.teacher_block.eval()
    device = torch.device(job.device)
    if device.type != "cpu" or train.target.dtype != torch.float32:
        # once per pair, not per batch; float32 features train float32 (master) weights
        train, val = train.to(device, torch.float32), val.to(device, torch.float32)
        teacher_block = copy.deepcopy(teacher_block).to(device=device, dtype=torch.float32)
    dtype = getattr(torch, job.dtype)
    mixed = torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    start = time.perf_counter()
    with mixed:
        module, record = train_pair(teacher_block, job.candidate, train, val, job.settings, block=job.block)
    record = replace(record, seconds=round(time.perf_counter() - start, 4))
    state = module.state_dict()
    if device.type != "cpu":
        state = {k: v.detach().to("cpu") for k, v in state.items()}
    return record, state


def run_job(job: PairJob) -> dict[str, Any]:
    """Run one job in this process: train it (:func:`train_job`), write the pair; return its record."""
    record, state = train_job(job)
    return write_pair(job.out, record, state).to_dict()


# --- jobs on an executor: workers train, only the driver writes -----------------------------------
#
# A job never writes into the library: it returns the record and the weights (as safetensors bytes)
# and the driver writes the pair. Where jobs run (this process, a local pool whose workers die with
# the driver, Ray tasks) is the executor's business (``tocsr_nas.executors``); so once the driver is
# gone - even by ``kill -9`` - no pair file can appear, whichever executor ran the jobs.


def _pool_job(job: PairJob) -> tuple[dict[str, Any], bytes]:
    """What a worker runs for one pair: train it, return its record and weights (safetensors bytes)."""
    from safetensors.torch import save

    record, state = train_job(job)
    weights = save({k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()})
    return record.to_dict(), weights


def _write_pool_result(out: str, result: tuple[dict[str, Any], bytes]) -> dict[str, Any]:
    """In the driver: write the pair a worker trained; its record as written."""
    from safetensors.torch import load

    record, weights = result
    return write_pair(out, PairRecord.from_dict(record), load(weights)).to_dict()


def plan_jobs(space: SearchSpace, done: Mapping[tuple[str, str], Any] = ()) -> list[tuple[str, Candidate]]:
    """Every (block, candidate) pair of ``space`` not in ``done``, ``teacher`` excluded, in space order."""
    done = set(done)
    return [
        (b.path, c)
        for b in space.blocks
        for c in b.choices
        if c.name != TEACHER and (b.path, c.name) not in done
    ]


def check_resumable(out: str | os.PathLike[str], *, teacher_fingerprint: str, space: SearchSpace) -> dict[str, Any]:
    """Check that the library at ``out`` was started for this teacher and space; return its manifest.

    Raises:
        LibraryMismatchError: not a library, or another teacher or space.
    """
    old = read_manifest(out)
    for key, now, what in (
        ("teacher_fingerprint", teacher_fingerprint, "teacher"),
        ("space_hash", space.hash, "search space"),
    ):
        if old.get(key) != now:
            raise LibraryMismatchError(
                f"cannot resume {out}: it was distilled for another {what} ({old.get(key)}, now {now}); "
                "choose a new --out"
            )
    return old


@locks_folder("out", "distill")
def distill(
    blocks: Mapping[str, nn.Module],
    space: SearchSpace,
    features: FeatureCache | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    teacher_fingerprint: str,
    resolution: int | None = None,
    settings: TrainSettings | None = None,
    executor: Any = None,
    threads: int = 1,
    resume: bool = False,
    progress: bool = True,
    extra_header: Mapping[str, Any] | None = None,
    on_pair: Callable[[PairRecord], None] | None = None,
    component: str | None = None,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
) -> SurrogateLibrary:
    """Distil every (block, candidate) pair of ``space`` into a library at ``out``.

    Args:
        blocks: ``{path: teacher block}`` for every block of the space.
        space: the search space.
        features: the feature cache holding ``train`` and ``val`` features of every block.
        out: the library folder (created; with ``resume``, finished pairs are kept).
        teacher_fingerprint: recorded in the manifest; a resumed library must match it.
        resolution: image side (pixels) the features were captured at, for the record.
        settings: training settings (default :class:`TrainSettings`).
        executor: where the jobs run: an object with ``map_unordered(fn, jobs)`` yielding
            ``(index, result)`` as each job finishes (a :class:`tocsr_nas.executors.Executor`: in this
            process, a local pool of processes, or Ray tasks); ``None``: in this process with
            ``threads`` torch threads. Whichever runs them, this process writes every pair and the
            manifest, so a library started with one executor is resumed with any other.
        threads: torch threads per job when ``executor`` is ``None`` (an executor sets its own).
            One is fastest for small blocks: their ops are too small for intra-op parallelism, and
            extra threads contend with the other workers.
        resume: continue a library at ``out``: finished pairs are not retrained.
        progress: show a tqdm progress bar.
        extra_header: more manifest header fields (e.g. data settings).
        device: where each pair trains (its features move there once; weights are saved float32
            on the CPU whatever the device).
        dtype: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` for mixed-precision training.
        on_pair: called with each finished pair's record.
        component: the network of the teacher the blocks belong to (e.g. ``"vae.decoder"``), recorded
            in the header; ``None`` records nothing (the denoiser).

    Returns:
        The complete library.

    Raises:
        LibraryMismatchError: ``out`` is non-empty without ``resume``, or (with ``resume``) holds
            a library for another teacher or space.
    """
    settings = settings or TrainSettings()
    if threads < 1:
        raise SurrogateError(f"threads must be >= 1, got {threads}")
    cache = features if isinstance(features, FeatureCache) else FeatureCache(features)
    out = Path(out)
    header = library_header(
        teacher_fingerprint=teacher_fingerprint,
        space=space,
        resolution=resolution,
        settings={**settings.to_dict(), **dict(extra_header or {})},
        component=component,
    )
    done: dict[tuple[str, str], PairRecord] = {}
    if (out / "manifest.json").exists():
        if not resume:
            raise LibraryMismatchError(
                f"{out} already holds a surrogate library; pass --resume to finish it, or choose a new --out"
            )
        old = check_resumable(out, teacher_fingerprint=teacher_fingerprint, space=space)
        if old.get("settings", {}).get("steps") != settings.steps:
            logger.warning(
                "resuming with steps=%s; finished pairs were trained with steps=%s",
                settings.steps, old.get("settings", {}).get("steps"),
            )
        done = finished_pairs(out, space, verify=True)
    out.mkdir(parents=True, exist_ok=True)
    missing_blocks = [p for p in space.paths if p not in blocks]
    if missing_blocks:
        raise SurrogateError(f"no teacher block given for {missing_blocks[:3]}")
    write_manifest(out, header, done.values())

    todo = plan_jobs(space, done)
    if done:
        logger.info("resuming %s: %d pairs finished, %d to go", out, len(done), len(todo))
    jobs = [
        PairJob(path, cand, blocks[path], str(cache.root), str(out), settings, str(device), str(dtype))
        for path, cand in todo
    ]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(plan_jobs(space)), initial=len(done), desc="distill", unit="pair", disable=not progress)

    def finish(record_dict: dict[str, Any]) -> None:
        record = PairRecord.from_dict(record_dict)
        done[record.key] = record
        write_manifest(out, header, done.values())
        bar.update(1)
        bar.set_postfix_str(f"{record.block} {record.candidate}: {record.initial_loss:.3g}->{record.final_loss:.3g}")
        if on_pair is not None:
            on_pair(record)

    old_threads = torch.get_num_threads()
    try:
        if executor is None:
            torch.set_num_threads(threads)
            results = ((i, _pool_job(job)) for i, job in enumerate(jobs))
        else:
            results = executor.map_unordered(_pool_job, jobs)
        try:
            for _, result in results:
                finish(_write_pool_result(str(out), result))
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # an interrupted run cancels the jobs not yet finished
    finally:
        torch.set_num_threads(old_threads)
        bar.close()
    return SurrogateLibrary.open(out, teacher_fingerprint=teacher_fingerprint, space_hash=space.hash)
