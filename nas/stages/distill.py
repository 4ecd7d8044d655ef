"""The teacher-aware half of blockwise distillation: photos -> noisy latents -> block features -> jobs.

:func:`distill_teacher` is what ``tocsr-nas distill`` runs:

1. **Data.** Random patches of the TRAINING photos (:mod:`tocsr_nas.teacher.data`, split by image) for the
   training features, and of the held-out photos for the validation features.
2. **Generative trajectories.** Each patch is encoded by the teacher's VAE (posterior mode,
   scaled: ``z0``) and noised to a timestep drawn uniformly across the WHOLE schedule (stratified:
   ``t_i = floor((i + u_i) T / N)``, shuffled, ``u_i ~ U[0, 1)``), as in the teacher's training::

       z_t = sqrt(alpha_bar_t) z0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)   (scheduler.add_noise)

3. **Features.** The teacher UNet runs ONCE (eval, no grad) on ``(z_t, t, context)`` with
   ``context = teacher.encoder_hidden_states(B)``; every searchable block's call arguments (hidden
   states, ``temb``, ``encoder_hidden_states``...) and output are captured and stored in a
   :class:`~tocsr_nas.surrogates.features.FeatureCache` under ``OUT/features/``.
4. **Jobs.** :func:`tocsr_nas.surrogates.distill.distill` trains every (block, candidate) pair from
   the cache on an executor (:mod:`tocsr_nas.executors`: in-process, a process pool or Ray tasks),
   resumable per pair whichever executor ran before. The feature cache is deleted
   when the library is complete (``keep_features=True`` keeps it); a resumed run reuses it when it
   was captured with the same teacher, space and data settings, and recaptures it otherwise
   (capture is deterministic given the seed).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tocsr_nas._io import atomic_write_json, read_json
from tocsr_nas.executors import Executor, LocalExecutor
from tocsr_nas.locks import locks_folder
from tocsr_nas.teacher.data import PhotoDataset
from tocsr_nas.errors import DamagedFileError, TocsrError, UserInputError, require_at_least, require_in_range
from tocsr_nas.searchspace import SearchSpace
from tocsr_nas.surrogates.distill import TrainSettings, check_resumable, distill, plan_jobs
from tocsr_nas.surrogates.features import FeatureCache, capture_features
from tocsr_nas.surrogates.library import MANIFEST, SurrogateLibrary, finished_pairs
from tocsr_nas.teacher import Teacher

__all__ = ["DistillConfig", "noisy_unet_batches", "capture_teacher_features", "distill_teacher", "FEATURES_DIR"]

logger = logging.getLogger(__name__)

#: the feature cache's folder inside the library folder
FEATURES_DIR = "features"
_FEATURES_META = "features.json"


@dataclass(frozen=True)
class DistillConfig:
    """Settings of a distillation run (data, capture and training).

    Attributes:
        steps: Adam steps per trainable pair.
        samples: training feature samples (noisy latents of training patches).
        val_samples: held-out feature samples (from the validation photos).
        batch_size: samples per training step.
        lr: peak learning rate.
        seed: seed of patches, timesteps, noise and of each pair's initialisation and batches.
        resolution: patch side in pixels (default: the teacher's ``default_resolution``).
        capture_batch: samples per teacher forward pass when capturing.
        workers: jobs at a time (``1``: in-process; with a Ray executor, tasks in flight).
        threads: torch threads of the teacher capture and of each job. One is the default: small
            blocks gain nothing from intra-op threads, and on a busy machine extra threads
            contend (the tiny teacher's capture ran 4x slower on 2 threads than on 1 with the other
            core busy).
        keep_features: keep ``OUT/features/`` after the library is complete.
        device: where to capture and train (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``;
            :func:`tocsr_nas.devices.resolve`); :func:`distill_library` moves the teacher there.
        dtype: compute precision: the capture runs the teacher in it, the pairs train in mixed
            precision (float32 weights, saved float32).
    """

    steps: int = 300
    samples: int = 256
    val_samples: int = 64
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    resolution: int | None = None
    capture_batch: int = 32
    workers: int = 1
    threads: int = 1
    keep_features: bool = False
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        require_at_least(self, 1, "samples", "val_samples", "batch_size", "capture_batch", "workers", "threads")
        require_at_least(self, 0, "steps", "seed")  # zero steps (an untrained library): API only, the CLI asks >= 1
        if self.resolution is not None:
            require_at_least(self, 1, "resolution")
        require_in_range(self, "lr", low=0, low_open=True)

    def train_settings(self) -> TrainSettings:
        return TrainSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed)


def noisy_unet_batches(
    teacher: Teacher, images: torch.Tensor, *, seed: int, batch: int
) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], dict[str, Any]]]:
    """UNet calls on noisy latents of ``images`` at timesteps spread over the whole schedule.

    Args:
        teacher: the teacher.
        images: patches ``(N, 3, P, P)`` in ``[-1, 1]``.
        seed: seed of the timesteps and the noise.
        batch: samples per call.

    Yields:
        ``(args, kwargs)`` of one denoiser call (:meth:`~tocsr_nas.teacher.Teacher.denoiser_call`);
        for a UNet2DConditionModel ``((z_t (b, 16, h, w), t (b,)), {"encoder_hidden_states": (b, L, D),
        "return_dict": False})``.
    """
    n = images.shape[0]
    gen = torch.Generator().manual_seed(seed)
    num_t = int(teacher.scheduler.config.num_train_timesteps)
    # stratified uniform timesteps: one per stratum of width T / N, then shuffled
    strata = (torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=gen, dtype=torch.float64)) * num_t / n
    timesteps = strata.floor().long().clamp_(0, num_t - 1)[torch.randperm(n, generator=gen)]  # (N,)
    device, dtype = teacher.device, teacher.dtype
    for start in range(0, n, batch):
        x = images[start : start + batch]  # (b, 3, P, P)
        b = x.shape[0]
        with torch.no_grad():
            z0 = teacher.encode(x.to(device, dtype))  # (b, 16, h, w)
            noise = torch.randn(z0.shape, generator=gen).to(device, dtype)  # (b, 16, h, w)
            t = timesteps[start : start + b].to(device)  # (b,)
            zt = teacher.scheduler.add_noise(z0, noise, t)  # (b, 16, h, w)
        yield teacher.denoiser_call(zt, t)  # the family's call: null context, synthesised extras


def _features_meta(teacher_fp: str, space: SearchSpace, config: DistillConfig, resolution: int, component: str = "denoiser") -> dict[str, Any]:
    meta = {
        **({"component": component} if component != "denoiser" else {}),
        "teacher_fingerprint": teacher_fp,
        "space_hash": space.hash,
        "samples": config.samples,
        "val_samples": config.val_samples,
        "seed": config.seed,
        "resolution": resolution,
    }
    if config.dtype != "float32":  # features captured in another precision are never reused for float32
        meta["dtype"] = config.dtype
    return meta


def capture_teacher_features(
    teacher: Teacher,
    space: SearchSpace,
    cache: FeatureCache,
    config: DistillConfig,
    *,
    train_photos: PhotoDataset | None = None,
    val_photos: PhotoDataset | None = None,
    component: str | None = None,
) -> None:
    """Run the teacher once over training and held-out patches and store every block's features.

    Args:
        teacher: the teacher (its UNet is put in eval mode).
        space: the search space (its block paths are captured).
        cache: where to write.
        config: samples, seed, resolution, capture batch.
        train_photos: photos for training features (default: the scikit-image training photos).
        val_photos: photos for held-out features (default: the scikit-image validation photos).
        component: the searched network (:mod:`~tocsr_nas.teacher.components`; default the denoiser,
            whose calls are :func:`noisy_unet_batches`; the VAE decoder's are the photos' latents).
    """
    from tocsr_nas.teacher.components import get_component

    comp = get_component(component)
    resolution = config.resolution or teacher.default_resolution
    comp.check_resolution(teacher, resolution)  # validates the resolution
    train_photos = train_photos or PhotoDataset.from_skimage("train", seed=0, min_size=resolution)
    val_photos = val_photos or PhotoDataset.from_skimage("val", seed=0, min_size=resolution)
    model = comp.module(teacher).eval()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        for split, photos, n, seed in (
            ("train", train_photos, config.samples, config.seed),
            ("val", val_photos, config.val_samples, config.seed + 1),
        ):
            images = photos.random_batch(n, resolution, seed=seed)  # (N, 3, P, P)
            batches = comp.feature_batches(teacher, images, seed=seed + 1000, batch=config.capture_batch)
            capture_features(model, space.paths, batches, cache, split)
            logger.debug("captured %d %s samples for %d blocks", n, split, len(space))
    finally:
        torch.set_num_threads(old_threads)


def _cached_meta(path: Path) -> Any:
    """The feature cache's description, or ``None`` when it is damaged (the features are captured again)."""
    try:
        return read_json(path)
    except DamagedFileError as exc:
        logger.warning("%s; capturing the features again", exc)
        return None


def _only_capture_leftovers(out: Path) -> bool:
    """Whether ``out`` holds nothing but what a run stopped during its feature capture leaves: the
    feature cache and stray temporary files (``--resume`` then starts the library afresh, and reuses
    the features only when their description matches)."""
    return all(p.name == FEATURES_DIR or p.name.startswith(".") for p in out.iterdir())


@locks_folder("out", "distill")
def distill_teacher(
    teacher: Teacher,
    space: SearchSpace,
    out: str | Path,
    config: DistillConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    train_photos: PhotoDataset | None = None,
    val_photos: PhotoDataset | None = None,
    component: str | None = None,
    executor: Executor | None = None,
) -> SurrogateLibrary:
    """Distil every (block, candidate) pair of ``space`` for ``teacher`` into a library at ``out``.

    Args:
        teacher: the teacher.
        space: the search space of its UNet (``tocsr_nas.stages.space.build_space``).
        out: the library folder: new or empty, or (``resume``) an unfinished library.
        config: data, capture and training settings.
        resume: finish an existing library; finished pairs are not retrained. A folder that a run
            left during its feature capture (no manifest yet) is resumable too.
        progress: show a progress bar.
        train_photos: photos for training features (default: the scikit-image training split).
        val_photos: photos for held-out features (default: the scikit-image validation split).
        component: the searched network (default the denoiser; ``"vae.decoder"``); the library records it.
        executor: where the (block, candidate) jobs run (:mod:`tocsr_nas.executors`; default: a
            :class:`~tocsr_nas.executors.LocalExecutor` with ``config.workers`` and ``config.threads``).
            The capture always runs here; this process writes every pair and the manifest.

    Returns:
        The complete :class:`~tocsr_nas.surrogates.library.SurrogateLibrary`.

    Raises:
        TocsrError: ``out`` is a non-empty folder without ``resume``, is a file, or (with
            ``resume``) holds a library of another teacher or space.
    """
    config = config or DistillConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TocsrError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not resume:
            raise TocsrError(
                f"--out {out} exists and is not empty; pass --resume to finish the library in it, "
                "or choose a new folder (nothing was changed)"
            )
        if not (out / MANIFEST).is_file() and not _only_capture_leftovers(out):
            raise TocsrError(f"cannot resume {out}: it holds no surrogate library ({MANIFEST} missing)")
    from tocsr_nas.teacher.components import check_library_component, get_component

    comp = get_component(component)
    resolution = config.resolution or teacher.default_resolution
    fingerprint = teacher.fingerprint()
    start = time.perf_counter()
    todo = len(plan_jobs(space))
    if resume and (out / MANIFEST).is_file():
        # refuse another teacher or space BEFORE the expensive capture; nothing to do -> no capture
        check_library_component(out, comp.name)
        check_resumable(out, teacher_fingerprint=fingerprint, space=space)
        todo = len(plan_jobs(space, finished_pairs(out, space, verify=True)))  # a damaged pair is redone
    out.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(out / FEATURES_DIR)
    meta = _features_meta(fingerprint, space, config, resolution, comp.name)
    meta_path = cache.root / _FEATURES_META
    reuse = todo == 0 or (meta_path.is_file() and _cached_meta(meta_path) == meta)
    if not reuse:
        # an old or partial cache is never mixed with new features
        shutil.rmtree(cache.root, ignore_errors=True)
        capture_teacher_features(
            teacher, space, cache, config, train_photos=train_photos, val_photos=val_photos, component=comp
        )
        atomic_write_json(meta_path, meta, indent=1)
        logger.info("captured block features in %.1f s", time.perf_counter() - start)
    model = comp.module(teacher)
    blocks = {path: model.get_submodule(path) for path in space.paths}
    data = {k: v for k, v in asdict(config).items()
            if k not in ("steps", "batch_size", "lr", "seed", "workers", "threads", "keep_features", "device", "dtype")}
    compute = {"device": str(teacher.device), "dtype": config.dtype}
    library = distill(
        blocks,
        space,
        cache,
        out,
        teacher_fingerprint=fingerprint,
        resolution=resolution,
        settings=config.train_settings(),
        executor=executor or LocalExecutor(config.workers, config.threads),
        threads=config.threads,
        resume=resume,
        progress=progress,
        extra_header={"data": data, "compute": compute},
        component=comp.name,
        device=teacher.device,
        dtype=config.dtype,
    )
    if not config.keep_features:
        shutil.rmtree(cache.root, ignore_errors=True)
    logger.info("distilled %d pairs in %.1f s", len(library), time.perf_counter() - start)
    return library
