"""SR adaptation: fine-tune a backbone, conditioned on the LR latent, on HR/LR pairs.

The backbone (a teacher's UNet or an exported compact UNet, :func:`~tocsr_nas.sr.model.load_backbone`)
becomes an :class:`~tocsr_nas.sr.model.SRUNet` whose ``conv_in`` also reads ``z_lr`` through
zero-initialised weights, so step 0 reproduces the backbone. The VAE is frozen. With
``z_0 = E(x_hr)``, ``c = z_lr = E(bicubic_s(x_lr))`` (a :class:`~tocsr_nas.sr.pool.LatentPool`
crop), ``t ~ U{0, ..., t_max - 1}`` (``t_max = ceil(strength T)``, the sampler's range) and ``eps ~ N(0, I)``, the teacher's DDPM forward process gives
``z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps`` (``scheduler.add_noise``) and the loss is the
teacher's own objective, now conditioned on ``c``::

    L_sr = mean(eps_theta([z_t ; c], t) - eps)^2                      (prediction_type "epsilon")
    L_sr = mean(v_theta([z_t ; c], t) - v)^2,  v = sqrt(abar_t) eps - sqrt(1 - abar_t) z_0     ("v_prediction")

**Outputs.** ``OUT`` becomes an SR model folder (:meth:`SRModel.save`) whose ``sr.json`` holds
the settings and ``metrics``: the conditioned validation denoising loss (fixed held-out latents,
timesteps spread over the schedule, fixed noise) before training, which is the backbone's own
loss, and after. ``OUT/checkpoints/`` makes ``--resume`` exact (:mod:`tocsr_nas.training`).

Example:
    >>> import tempfile
    >>> from tocsr_nas.sr.testing import micro_teacher
    >>> teacher_dir = micro_teacher().save(tempfile.mkdtemp() + "/teacher")
    >>> cfg = SRTrainConfig(steps=2, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2)
    >>> model = train_sr(teacher_dir, tempfile.mkdtemp() + "/sr", cfg, progress=False)
    >>> model.kind, model.net.backbone.conv_in.in_channels
    ('multistep', 32)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tocsr_nas.locks import locks_folder
from tocsr_nas.teacher.data import PhotoDataset, downscale
from tocsr_nas.errors import TocsrError, require_at_least, require_in_range
from tocsr_nas.training import Checkpoints, Stopped, check_loop_settings, open_run, run_steps, step_seed
from tocsr_nas.sr.model import Backbone, SRModel, bicubic_upsample, load_backbone
from tocsr_nas.sr.pool import LatentPool

__all__ = ["SRTrainConfig", "train_sr", "load_photos", "validation_latents", "sr_validation_loss", "target_for"]

logger = logging.getLogger(__name__)

#: settings that may change when resuming
_RESUMABLE = ("steps", "checkpoint_every")


@dataclass(frozen=True)
class SRTrainConfig:
    """Hyper-parameters of :func:`train_sr` (all keyword, validated).

    Attributes:
        steps: optimisation steps.
        batch_size: latent crops per step.
        lr: peak AdamW learning rate (warm-up, then cosine decay to 10 %).
        warmup: warm-up steps.
        seed: seed of the pool, batches, timesteps and noise.
        scale: super-resolution factor ``s``.
        pool_size: HR patches encoded once (:class:`~tocsr_nas.sr.pool.LatentPool`).
        pool_patch: side of those patches in px (a multiple of ``s f``).
        crop: latent crop side per training item (``f crop`` px).
        trainable: ``"all"`` (backbone and null context) or ``"unet"`` (the backbone only).
        sampler_steps: default DDIM steps recorded in the model.
        strength: the sampler's strength recorded in the model (1: start from pure noise;
            below 1: from the LR latent noised to timestep ``~ strength T``); training timesteps
            are drawn from ``U{0, ..., ceil(strength T) - 1}``, the range the sampler uses.
        tile: latent tile side for tiled inference recorded in the model.
        checkpoint_every: steps between checkpoints.
        images: a folder of training images instead of the scikit-image photos.
        val_fraction: fraction of the images held out (split by image).
        val_patches: held-out 64 px patches for the validation loss.
    """

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-4
    warmup: int = 20
    seed: int = 0
    scale: int = 4
    pool_size: int = 96
    pool_patch: int = 128
    crop: int = 16
    trainable: str = "all"
    sampler_steps: int = 20
    strength: float = 0.3
    tile: int = 32
    checkpoint_every: int = 50
    images: str | None = None
    val_fraction: float = 0.25
    val_patches: int = 32

    def __post_init__(self) -> None:
        check_loop_settings(self)
        require_at_least(self, 1, "scale", "pool_size", "pool_patch", "crop", "sampler_steps", "tile", "val_patches")
        require_in_range(self, "strength", low=0, high=1, low_open=True)
        if self.trainable not in ("all", "unet"):
            raise TocsrError(f"--trainable must be 'all' or 'unet', got {self.trainable!r}")


# ---------------------------------------------------------------------- data helpers
def load_photos(images: str | None, split: str, *, val_fraction: float, seed: int, min_size: int) -> PhotoDataset:
    """The training or held-out photos: scikit-image's (default) or a folder's, split by image."""
    kw = {"val_fraction": val_fraction, "seed": seed, "min_size": min_size}
    if images:
        return PhotoDataset.from_folder(images, split, **kw)
    return PhotoDataset.from_skimage(split, **kw)


@torch.no_grad()
def validation_latents(model: SRModel, photos: PhotoDataset, n: int, patch_px: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z_hr, z_lr)`` of at most ``n`` held-out grid patches, ``(N, C, p, p)`` each (deterministic)."""
    per_image = max(1, math.ceil(n / len(photos)))
    hr = photos.grid_patches(patch_px, max_per_image=per_image)[:n]  # (N, 3, P, P)
    z_hr = torch.cat([model.encode(x) for x in hr.split(16)])
    z_lr = torch.cat([model.encode(bicubic_upsample(downscale(x, model.scale), model.scale)) for x in hr.split(16)])
    return z_hr, z_lr


def target_for(model: SRModel, z0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The regression target of the scheduler's ``prediction_type`` (epsilon or v)."""
    kind = model.scheduler.config.prediction_type
    if kind == "epsilon":
        return eps
    if kind == "v_prediction":
        return model.scheduler.get_velocity(z0, eps, t)
    raise TocsrError(f"SR training supports prediction_type epsilon or v_prediction, not {kind!r}")


@torch.no_grad()
def sr_validation_loss(model: SRModel, z_hr: torch.Tensor, z_lr: torch.Tensor, seed: int = 0) -> float:
    """Conditioned denoising MSE on fixed latents, timesteps ``round(i (T-1)/(N-1))`` and noise."""
    n = z_hr.shape[0]
    T = model.scheduler.config.num_train_timesteps
    timesteps = torch.linspace(0, T - 1, n).round().long().to(z_hr.device)  # (N,)
    noise = torch.randn(z_hr.shape, generator=torch.Generator().manual_seed(seed)).to(z_hr.device)  # (N, C, p, p)
    total = 0.0
    for z0, c, eps, t in zip(z_hr.split(16), z_lr.split(16), noise.split(16), timesteps.split(16)):
        zt = model.scheduler.add_noise(z0, eps, t)
        pred = model.net(zt, t, c)
        total += float(F.mse_loss(pred, target_for(model, z0, eps, t), reduction="sum"))
    return total / noise.numel()


# ---------------------------------------------------------------------- training
@locks_folder("out", "sr train")
def train_sr(
    backbone: str | Path | Backbone,
    out: str | Path,
    config: SRTrainConfig | None = None,
    *,
    teacher: str | Path | None = None,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    autocast: Any = None,
    device: str | torch.device | None = None,
) -> SRModel | None:
    """Adapt ``backbone`` to super-resolution and save the SR model folder ``out``.

    Args:
        backbone: a backbone folder (teacher or compact) or a :class:`Backbone`.
        out: output folder; empty or absent unless ``resume``.
        config: hyper-parameters (default :class:`SRTrainConfig`).
        teacher: teacher folder providing a compact backbone's VAE, scheduler and context.
        resume: continue ``out/checkpoints`` (only ``steps`` and ``checkpoint_every`` may change).
        keep_checkpoints: keep ``out/checkpoints`` after success (to extend ``steps`` later).
        progress: tqdm bar with the loss.
        autocast: mixed precision around each step's loss (:class:`~tocsr_nas.training.Run`).
        stop_after: stop abruptly after this many steps (a simulated crash, for tests).
        device: where to train (``None``: the CPU). The model, the latent pool and the validation
            latents move there once; each step's noise and timesteps are drawn on the CPU and moved.

    Returns:
        The trained model (also saved in ``out``; on the CPU), or ``None`` when stopped by ``stop_after``.

    Raises:
        TocsrError: bad settings, a non-empty ``out`` without ``resume``, unreadable inputs.
    """
    config = config or SRTrainConfig()
    out = Path(out)
    bb = backbone if isinstance(backbone, Backbone) else load_backbone(backbone, teacher=teacher)
    model = SRModel.from_backbone(
        bb, scale=config.scale, sampler_steps=config.sampler_steps, strength=config.strength, tile=config.tile
    )
    f = model.vae_scale_factor
    if config.pool_patch % (f * config.scale):
        raise TocsrError(f"--pool-patch {config.pool_patch} must be a multiple of scale x VAE factor = {config.scale * f}")
    if config.crop * f > config.pool_patch:
        raise TocsrError(f"--crop {config.crop} latents ({config.crop * f} px) exceeds --pool-patch {config.pool_patch}")
    model.to(device or "cpu")
    min_size = max(config.pool_patch, 64)
    train = load_photos(config.images, "train", val_fraction=config.val_fraction, seed=config.seed, min_size=min_size)
    val = load_photos(config.images, "val", val_fraction=config.val_fraction, seed=config.seed, min_size=64)
    sources = {"--backbone": str(bb.source.get("teacher_fingerprint"))}  # the backbone with its VAE and context
    state = open_run(out, config, resume=resume, resumable=_RESUMABLE, done_file="sr.json", sources=sources)
    logger.info("SR training: encoding %d training patches of %d px", config.pool_size, config.pool_patch)
    pool = LatentPool.build(model, train, size=config.pool_size, patch_px=config.pool_patch, seed=step_seed(config.seed, "pool", 0))
    pool = pool.to(model.device)
    val_hr, val_lr = validation_latents(model, val, config.val_patches)
    metrics = state.setdefault("metrics", {})
    if "val_loss_init" not in metrics:
        metrics["val_loss_init"] = sr_validation_loss(model, val_hr, val_lr, seed=config.seed)

    net, scheduler = model.net, model.scheduler
    T = scheduler.config.num_train_timesteps
    t_max = min(T, math.ceil(config.strength * T))  # timesteps the sampler visits: [0, t_max)
    params = list(net.backbone.parameters()) + (list(net.context.parameters()) if config.trainable == "all" else [])
    if config.trainable == "unet":
        net.context.requires_grad_(False)

    def step_fn(step: int) -> torch.Tensor:
        s = step_seed(config.seed, "sr", step)
        b = pool.batch(config.batch_size, config.crop, seed=s)
        gen = torch.Generator().manual_seed(s + 1)
        z0, c = b["z_hr"], b["z_lr"]  # (B, C, c, c)
        eps = torch.randn(z0.shape, generator=gen).to(z0.device)  # (B, C, c, c)
        t = torch.randint(0, t_max, (z0.shape[0],), generator=gen).to(z0.device)  # (B,)
        z_t = scheduler.add_noise(z0, eps, t)
        return F.mse_loss(net(z_t, t, c), target_for(model, z0, eps, t))

    try:
        run_steps(
            out=out, state=state, module=net, parameters=params, step_fn=step_fn, steps=config.steps, lr=config.lr,
            warmup=config.warmup, checkpoint_every=config.checkpoint_every, desc="sr train", progress=progress,
            stop_after=stop_after, autocast=autocast,
        )  # fmt: skip
    except Stopped:
        return None
    model.eval()
    metrics["val_loss"] = sr_validation_loss(model, val_hr, val_lr, seed=config.seed)
    model.to("cpu")  # saved and returned on the CPU (its weights are float32 throughout)
    metrics["seconds"] = state["seconds"]
    metrics["train_images"], metrics["val_images"] = train.names, val.names
    model.config["metrics"] = dict(metrics)
    model.config["train"] = dataclasses.asdict(config)
    model.save(out)
    state["done"] = True
    Checkpoints(out).finish(state, keep=keep_checkpoints)
    logger.debug(
        "SR model saved to %s: conditioned validation loss %.4f -> %.4f in %d steps (%.0f s)",
        out, metrics["val_loss_init"], metrics["val_loss"], config.steps, metrics["seconds"],
    )  # fmt: skip
    return model
