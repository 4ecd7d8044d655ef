"""One-step distillation: a single evaluation of the SR backbone replaces the multi-step sampler.

Symbols (code variable -> symbol; the full derivation is ``docs/onestep.md``):

=====================  ==========================================================
``z_hr``               ``x_0``, the HR latent ``E(x_hr)``
``z_lr``               ``c``, the conditioning latent ``E(bicubic_s(x_lr))``
``abar``               ``abar_t = prod_{i<=t} (1 - beta_i)`` (``scheduler.alphas_cumprod``)
``timestep``           ``t*``, the one fixed timestep
``x_start``            ``x_t*``, the generator's input
``model_output``       ``eps_theta(x_t*, t*, c)``, the SR backbone's epsilon prediction
``x0_hat``             ``G_theta(c)``, the generator's output (a clean latent)
``z_ddim``             ``x_0^DDIM(c)``, the deterministic multi-step sampler's output
``hr``                 ``x_hr``, the HR pixels; ``D`` is the frozen VAE decoder
=====================  ==========================================================

**Parameterisation.** The forward process is ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``;
solving for ``x_0`` with the network's estimate of ``eps`` gives the clean-latent prediction::

    G_theta(c) = x0_hat = (x_t* - sqrt(1 - abar_t*) eps_theta(x_t*, t*, c)) / sqrt(abar_t*)

so the generator *is* the SR model read at one timestep (weights initialised from it, nothing
added), and its output is a latent the frozen decoder turns into pixels. The input ``x_t*`` is
either ``c`` itself (``start="lr"``: the LR latent read as a noisy HR latent) or
``sqrt(abar_t*) c + sqrt(1 - abar_t*) eps_fix`` (``start="noise"``, fixed noise).

**Choice of t\\*.** Write ``c = x_0 + d``: ``d`` is the detail the LR latent lacks. Dividing the
forward process by ``sqrt(abar_t)`` gives ``x_t / sqrt(abar_t) = x_0 + sigma_t eps`` with
``sigma_t = sqrt((1 - abar_t) / abar_t)``; the LR latent looks like a noisy latent at the
timestep whose noise level matches the missing detail, so ``timestep="auto"`` picks::

    t* = argmin_t | sigma_t - rms(d) |,   rms(d) = sqrt(mean((z_lr - z_hr)^2)) over the pool

(``start="noise"`` defaults to ``t* = T - 1``, the sampler's own starting point).

**Loss.** With ``x0_hat = G_theta(c)`` on a batch of latent crops::

    L = w_d |x0_hat - x_0^DDIM(c)|^2 + w_z |x0_hat - x_0|^2 + w_x |D(x0_hat) - x_hr|^2

the first term distils the deterministic sampler (its outputs are computed once for the pool,
from fixed noise, and cached), the other two are reconstruction losses in latent and pixel space
(the decoder is frozen; the pixel term is applied to ``pixel_items`` crops of each batch to bound
its cost).

**Luma refiner.** After the generator, a small pixel-space network (:mod:`tocsr_nas.sr.refine`)
learns a bounded luma residual on the bicubic upsampling from the generator's decoded output,
``refine_steps`` steps on ``refine_pool`` fresh training patches (0 steps: no refiner). The output
keeps bicubic's chroma and can go past the VAE's round trip ``D(E(x_hr))``.

Example:
    >>> import tempfile
    >>> from tocsr_nas.sr.testing import micro_teacher
    >>> from tocsr_nas.sr.train import SRTrainConfig, train_sr
    >>> tmp = tempfile.mkdtemp()
    >>> teacher_dir = micro_teacher().save(tmp + "/teacher")
    >>> small = dict(steps=1, batch_size=2, pool_size=2, pool_patch=32, crop=4)
    >>> _ = train_sr(teacher_dir, tmp + "/sr", SRTrainConfig(**small, val_patches=2, sampler_steps=2), progress=False)
    >>> g = distill_onestep(tmp + "/sr", tmp + "/onestep", DistillConfig(**small, pixel_items=1, val_patches=2), progress=False)
    >>> g.kind, g.config["onestep"]["start"]
    ('onestep', 'lr')
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
from tocsr_nas.teacher.data import downscale, psnr
from tocsr_nas.errors import TocsrError, require_at_least, require_in_range
from tocsr_nas.training import Checkpoints, Stopped, check_loop_settings, open_run, run_steps, step_seed
from tocsr_nas.sr.model import SRModel, bicubic_upsample, sr_fingerprint
from tocsr_nas.sr.pool import LatentPool
from tocsr_nas.sr.refine import LumaRefiner, train_refiner
from tocsr_nas.sr.sampling import ddim_sample, initial_noise, onestep_sample
from tocsr_nas.sr.train import load_photos, validation_latents

__all__ = ["DistillConfig", "distill_onestep", "auto_timestep", "sigma", "fit_refiner"]

logger = logging.getLogger(__name__)

_RESUMABLE = ("steps", "checkpoint_every")
_POOL_FILE = "pool.safetensors"


@dataclass(frozen=True)
class DistillConfig:
    """Hyper-parameters of :func:`distill_onestep` (all keyword, validated).

    Attributes:
        steps: optimisation steps.
        batch_size: latent crops per step.
        lr: peak AdamW learning rate.
        warmup: warm-up steps.
        seed: seed of the pool, the fixed noise, the batches.
        timestep: ``t*``; ``None`` = automatic (see the module docstring).
        start: ``"lr"`` or ``"noise"``.
        target_steps: DDIM steps of the distilled sampler (``None``: the SR model's default).
        pool_size: HR patches encoded once, with their DDIM outputs.
        pool_patch: side of those patches in px.
        crop: latent crop side per training item.
        w_distill: weight ``w_d`` of the sampler-matching term.
        w_latent: weight ``w_z`` of the latent reconstruction term.
        w_pixel: weight ``w_x`` of the pixel reconstruction term.
        pixel_items: crops per batch decoded for the pixel term (0 disables it).
        checkpoint_every: steps between checkpoints.
        images: a folder of training images instead of the scikit-image photos.
        val_fraction: fraction of the images held out.
        val_patches: held-out 64 px patches for the validation PSNR.
        refine_steps: steps of the luma refiner (0: none; module docstring).
        refine_pool: training patches (``pool_patch`` px) of the refiner.
    """

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-4
    warmup: int = 10
    seed: int = 0
    timestep: int | None = None
    start: str = "lr"
    target_steps: int | None = None
    pool_size: int = 32
    pool_patch: int = 128
    crop: int = 16
    w_distill: float = 1.0
    w_latent: float = 1.0
    w_pixel: float = 10.0
    pixel_items: int = 4
    checkpoint_every: int = 50
    images: str | None = None
    val_fraction: float = 0.25
    val_patches: int = 32
    refine_steps: int = 600
    refine_pool: int = 48

    def __post_init__(self) -> None:
        check_loop_settings(self)
        require_at_least(self, 0, "refine_steps")
        require_at_least(self, 1, "refine_pool")
        require_at_least(self, 0, "pixel_items")
        require_at_least(self, 1, "pool_size", "pool_patch", "crop", "val_patches")
        if self.target_steps is not None:
            require_at_least(self, 1, "target_steps")
        if self.timestep is not None:
            require_at_least(self, 0, "timestep")  # its upper end is the SR model's schedule, checked on use
        if self.start not in ("lr", "noise"):
            raise TocsrError(f"--start must be 'lr' or 'noise', got {self.start!r}")
        require_in_range(self, "w_distill", "w_latent", "w_pixel", low=0, options={"w_pixel": "--pixel-weight"})


def sigma(model: SRModel) -> torch.Tensor:
    """``sigma_t = sqrt((1 - abar_t) / abar_t)`` for every training timestep, ``(T,)``."""
    abar = model.scheduler.alphas_cumprod.double()
    return ((1 - abar) / abar).sqrt()


def auto_timestep(model: SRModel, z_hr: torch.Tensor, z_lr: torch.Tensor) -> int:
    """``t* = argmin_t |sigma_t - rms(z_lr - z_hr)|`` (noise-level matching, module docstring)."""
    rms = float((z_lr - z_hr).double().pow(2).mean().sqrt())
    return int((sigma(model) - rms).abs().argmin())


@torch.no_grad()
def _generated(model: SRModel, z_lr: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """``D(G(z_lr))`` in batches of 16, clamped to ``[-1, 1]``."""
    outs = []
    for i, c in enumerate(z_lr.split(16)):
        n = None if noise is None else noise.split(16)[i]
        outs.append(model.decode(onestep_sample(model, c, noise=n)).clamp(-1, 1))
    return torch.cat(outs)


@torch.no_grad()
def _val_psnr(model: SRModel, z_lr: torch.Tensor, hr: torch.Tensor, noise: torch.Tensor | None) -> float:
    out = _generated(model, z_lr, noise)
    if model.refiner is not None:
        lr = downscale(hr, model.scale)
        out = model.refiner(lr, bicubic_upsample(lr, model.scale), out)
    return psnr(out, hr)


def _new_refiner(model: SRModel, config: DistillConfig, init_seed: int | None = None) -> LumaRefiner:
    """A fresh refiner whose initial weights come from ``init_seed`` (default: one derived from
    ``config.seed``) alone, not from whatever drew from torch's global generator before: its
    initialisation decides the smooth photos (docs/onestep.md section 7)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(step_seed(config.seed, "refine", 0) if init_seed is None else init_seed)
        refiner = LumaRefiner(scale=model.scale)
    return refiner.to(model.device)


def fit_refiner(
    model: SRModel, photos, config: DistillConfig, *, use_generator: bool = True, init_seed: int | None = None  # noqa: ANN001
) -> LumaRefiner:
    """Train the luma refiner on ``refine_pool`` fresh patches of ``photos`` (module docstring).

    Args:
        model: the trained one-step model (its generator is read, not changed).
        photos: the training :class:`~tocsr_nas.teacher.data.PhotoDataset`.
        config: ``refine_steps``, ``refine_pool``, ``pool_patch`` and ``seed`` are read.
        use_generator: feed the refiner the generator's decoded output (``False``: the bicubic
            image instead, a refiner of the LR image alone; ``benchmarks/sr_refiner_ablation.py``).
        init_seed: seed of the refiner's initial weights (default: derived from ``config.seed``;
            ``benchmarks/sr_refiner_seeds.py`` varies it).

    Returns:
        The trained refiner (in eval mode).
    """
    hr = photos.random_batch(config.refine_pool, config.pool_patch, seed=step_seed(config.seed, "refine", 1))
    hr = hr.to(model.device)  # (N, 3, P, P), on the model's device with the refiner
    lr = downscale(hr, model.scale)  # (N, 3, P/s, P/s)
    if not use_generator:
        refiner = _new_refiner(model, config, init_seed)
        up = bicubic_upsample(lr, model.scale)
        train_refiner(refiner, lr, up, hr, steps=config.refine_steps, seed=step_seed(config.seed, "refine", 2))
        return refiner
    with torch.no_grad():
        z_lr = torch.cat([model.encode(bicubic_upsample(x, model.scale)) for x in lr.split(16)])
    noise = None
    if model.config["onestep"]["start"] == "noise":
        noise = initial_noise(tuple(z_lr.shape), step_seed(config.seed, "noise", 2)).to(z_lr.device)
    generated = _generated(model, z_lr, noise)  # (N, 3, P, P)
    refiner = _new_refiner(model, config, init_seed)
    losses = train_refiner(refiner, lr, generated, hr, steps=config.refine_steps, seed=step_seed(config.seed, "refine", 2))
    logger.info("luma refiner: %d steps, loss %.5f -> %.5f", config.refine_steps, losses[0], losses[-1])
    return refiner


@locks_folder("out", "sr distill")
def distill_onestep(
    sr_model: str | Path,
    out: str | Path,
    config: DistillConfig | None = None,
    *,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    autocast: Any = None,
    device: str | torch.device | None = None,
) -> SRModel | None:
    """Distil the multi-step SR model in ``sr_model`` into a one-step model saved in ``out``.

    Args:
        sr_model: a multi-step SR model folder (``tocsr-nas sr train``).
        out: output folder; empty or absent unless ``resume``.
        config: hyper-parameters (default :class:`DistillConfig`).
        resume: continue ``out/checkpoints`` (the pool and its DDIM outputs are cached there).
        keep_checkpoints: keep ``out/checkpoints`` after success.
        progress: tqdm bars with the loss.
        autocast: mixed precision around each step's loss (:class:`~tocsr_nas.training.Run`).
        stop_after: stop abruptly after this many steps (a simulated crash, for tests).
        device: where to distil (``None``: the CPU). The model, the pool (with its noise and DDIM
            outputs) and the validation set move there once; the pool is cached on the CPU.

    Returns:
        The one-step model (on the CPU) (``kind == "onestep"``; ``config["source"]["sr_model"]`` names the
        SR folder, ``config["source"]["sr_fingerprint"]`` identifies it), or ``None`` when stopped
        by ``stop_after``.

    Raises:
        TocsrError: bad settings, a non-empty ``out`` without ``resume``, or a resume from another
            SR model than the run was started from.
    """
    config = config or DistillConfig()
    out, sr_dir = Path(out), Path(sr_model)
    model = SRModel.load(sr_dir, kind="multistep").to(device or "cpu")
    f, T = model.vae_scale_factor, model.scheduler.config.num_train_timesteps
    if config.crop * f > config.pool_patch:
        raise TocsrError(f"--crop {config.crop} latents ({config.crop * f} px) exceeds --pool-patch {config.pool_patch}")
    if config.timestep is not None and not 0 <= config.timestep < T:
        raise TocsrError(f"--timestep must be in [0, {T - 1}], got {config.timestep}")
    target_steps = int(config.target_steps or model.config["sampler"]["steps"])
    min_size = max(config.pool_patch, 64)
    val = load_photos(config.images, "val", val_fraction=config.val_fraction, seed=config.seed, min_size=64)
    ckpt = Checkpoints(out)
    pool_path = ckpt.dir / _POOL_FILE
    # the training photos are read (and a bad or small one refused) before OUT is created, unless cached
    train = None if pool_path.is_file() else load_photos(
        config.images, "train", val_fraction=config.val_fraction, seed=config.seed, min_size=min_size
    )  # fmt: skip
    # the pool and its DDIM outputs come from this SR model: a resumed run must distil the same one
    source = sr_fingerprint(sr_dir)
    state = open_run(
        out, config, resume=resume, resumable=_RESUMABLE, done_file="sr.json", sources={"--teacher": source}
    )

    # ---- the pool, its fixed noise and the sampler's outputs (cached for --resume)
    if pool_path.is_file():
        pool = LatentPool.load(pool_path)
    else:
        if train is None:  # the cached pool vanished between the two checks
            train = load_photos(config.images, "train", val_fraction=config.val_fraction, seed=config.seed, min_size=min_size)
        logger.info("one-step: encoding %d patches and sampling them with %d DDIM steps", config.pool_size, target_steps)
        pool = LatentPool.build(model, train, size=config.pool_size, patch_px=config.pool_patch, seed=step_seed(config.seed, "pool", 1))
        noise = initial_noise(tuple(pool.z_lr.shape), step_seed(config.seed, "noise", 0)).to(pool.z_lr.device)  # (N, C, p, p)
        z_ddim = torch.cat(
            [
                ddim_sample(model, c, steps=target_steps, strength=float(model.config["sampler"].get("strength", 1.0)), noise=n)
                for c, n in zip(pool.z_lr.split(8), noise.split(8))
            ]
        )  # (N, C, p, p)
        pool.extra.update(noise=noise, z_ddim=z_ddim)
        pool.save(pool_path)
    pool = pool.to(model.device)

    # ---- the one-step parameterisation
    if config.timestep is not None:
        t_star = int(config.timestep)
    elif config.start == "noise":
        t_star = T - 1
    else:
        t_star = auto_timestep(model, pool.z_hr, pool.z_lr)
    model.config = dict(model.config, kind="onestep")
    model.config["onestep"] = {"timestep": t_star, "start": config.start, "seed": int(model.config["sampler"].get("seed", 0))}
    logger.info("one-step generator: t* = %d (sigma = %.3f), start = %s", t_star, float(sigma(model)[t_star]), config.start)

    # ---- validation: held-out patches, one step from the (initial) SR weights
    per_image = max(1, math.ceil(config.val_patches / len(val)))
    val_hr = val.grid_patches(64, max_per_image=per_image)[: config.val_patches].to(model.device)  # (N, 3, 64, 64)
    _, val_lr = validation_latents(model, val, config.val_patches)
    val_noise = None
    if config.start == "noise":
        val_noise = initial_noise(tuple(val_lr.shape), step_seed(config.seed, "noise", 1)).to(val_lr.device)
    metrics = state.setdefault("metrics", {})
    if "val_psnr_init" not in metrics:
        metrics["val_psnr_init"] = _val_psnr(model, val_lr, val_hr, val_noise)

    net = model.net
    params = list(net.parameters())

    def step_fn(step: int) -> torch.Tensor:
        b = pool.batch(config.batch_size, config.crop, seed=step_seed(config.seed, "onestep", step))
        x0_hat = onestep_sample(model, b["z_lr"], noise=b["noise"])  # (B, C, c, c)
        loss = config.w_distill * F.mse_loss(x0_hat, b["z_ddim"]) + config.w_latent * F.mse_loss(x0_hat, b["z_hr"])
        k = min(config.pixel_items, x0_hat.shape[0])
        if k and config.w_pixel:
            loss = loss + config.w_pixel * F.mse_loss(model.decode(x0_hat[:k]), b["hr"][:k])  # (k, 3, c f, c f)
        return loss

    try:
        run_steps(
            out=out, state=state, module=net, parameters=params, step_fn=step_fn, steps=config.steps, lr=config.lr,
            warmup=config.warmup, checkpoint_every=config.checkpoint_every, desc="one-step", progress=progress,
            stop_after=stop_after, autocast=autocast,
        )  # fmt: skip
    except Stopped:
        return None
    model.eval()
    if config.refine_steps:
        metrics["val_psnr_generator"] = _val_psnr(model, val_lr, val_hr, val_noise)
        if train is None:
            train = load_photos(config.images, "train", val_fraction=config.val_fraction, seed=config.seed, min_size=min_size)
        model.refiner = fit_refiner(model, train, config)
    metrics["val_psnr"] = _val_psnr(model, val_lr, val_hr, val_noise)
    model.to("cpu")  # saved and returned on the CPU (float32 weights)
    metrics["seconds"] = state["seconds"]
    metrics["target_steps"] = target_steps
    metrics["sr_metrics"] = dict(model.config.get("metrics", {}))
    model.config["metrics"] = dict(metrics)
    model.config["distill"] = dataclasses.asdict(config)
    model.config["source"] = dict(model.config.get("source", {}), sr_model=str(sr_dir.resolve()), sr_fingerprint=source)
    model.save(out)
    state["done"] = True
    ckpt.finish(state, keep=keep_checkpoints)
    logger.debug(
        "one-step model saved to %s: held-out patch PSNR %.2f dB -> %.2f dB (%.0f s)",
        out, metrics["val_psnr_init"], metrics["val_psnr"], metrics["seconds"],
    )  # fmt: skip
    return model
