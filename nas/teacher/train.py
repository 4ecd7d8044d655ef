"""Train a preset teacher on photo patches: first the VAE, then the UNet with its null context.

**Phase 1, VAE.** For an HR patch ``x`` (in ``[-1, 1]``) the encoder gives a diagonal Gaussian
posterior ``q(z|x) = N(mu, sigma^2)``; with ``z ~ q(z|x)`` and ``x_hat = D(z)``::

    L_vae = mean|x - x_hat| + mean(x - x_hat)^2 + w_kl * KL(q(z|x) || N(0, I)) / (3 H W)

(the KL is summed over the latent and divided by the number of pixel values, so ``w_kl`` has
Stable Diffusion's meaning; default ``1e-6``). Before the first step the posterior's log-variance
bias is set to ``-8`` (``sigma ~ 0.02``): with diffusers' zero bias the initial sampling noise
(``sigma = 1``) swamps the untrained encoder's signal and slows early training; the KL term is
free to raise it again. After this phase the VAE's ``scaling_factor`` is
set to ``1 / std(mu)`` over training patches so that scaled latents have unit variance.

**Phase 2, UNet.** The VAE is frozen. With ``z_0 = scaling_factor * z`` (``z ~ q(z|x)``),
``t ~ U{0, ..., T-1}`` and ``eps ~ N(0, I)``, the scheduler's forward process gives
``z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps`` (``scheduler.add_noise``), and::

    L_unet = mean(eps_theta(z_t, t, c) - eps)^2

where ``c`` is the learned null context, trained together with the UNet.

**Determinism and resume.** The batch, posterior sample, timesteps and noise of step ``k`` are
drawn from generators seeded by ``(seed, phase, k)``, and the learning rate is a function of
``k``; the optimizer state is checkpointed. A resumed run therefore reproduces the weights of an
uninterrupted one. Both phases run in the checkpointed loop of :mod:`tocsr_nas.training`:
checkpoints are ``OUT/checkpoints/<phase>-<step>/`` folders (weights as safetensors, optimizer
state read back with ``torch.load(weights_only=True)``), and ``OUT/checkpoints/state.json``,
replaced atomically, names the latest complete one.

**Outputs.** ``OUT`` is a teacher folder (:meth:`Teacher.save`: ``vae/``, ``unet/``,
``scheduler/``, ``context/``, ``teacher.json``) plus ``metrics.json``: the VAE's reconstruction
PSNR on the held-out photos (before and after training), the UNet's validation denoising loss
(fixed validation latents, timesteps spread evenly over the schedule, fixed noise) at
initialisation and after training, and the wall-clock and CPU seconds each phase took (on a
shared machine the CPU seconds are the figure that does not depend on other users).

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/teacher"
    >>> cfg = TrainConfig(steps=2, vae_steps=2, batch_size=2, vae_batch_size=2, val_patches=2, calibration_patches=2)
    >>> metrics = train_teacher(out, cfg, progress=False)
    >>> sorted(metrics["cpu_seconds"])
    ['total', 'unet', 'vae']
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

from tocsr_nas._io import atomic_write_json, read_json
from tocsr_nas.locks import locks_folder
from tocsr_nas.teacher.data import PhotoDataset, psnr
from tocsr_nas.errors import TocsrError, require_at_least, require_in_range
from tocsr_nas.teacher import Teacher, build_teacher
from tocsr_nas.training import Checkpoints, Run, Stopped, adamw, check_loop_settings, open_run, step_seed

__all__ = ["TrainConfig", "train_teacher", "validation_loss", "vae_psnr"]

logger = logging.getLogger(__name__)

#: config fields that may change when resuming (they extend or re-pace the run)
_RESUMABLE_CHANGES = ("steps", "vae_steps", "checkpoint_every")
#: the phases, in order, with the config field giving each one's number of steps
_PHASES = (("vae", "vae_steps"), ("unet", "steps"))
#: initial bias of the VAE posterior's log-variance channels (see the module docstring)
_INIT_LOGVAR = -8.0


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_teacher` (all keyword, validated).

    Attributes:
        preset: teacher preset to build.
        steps: UNet optimisation steps.
        vae_steps: VAE optimisation steps.
        batch_size: UNet batch (64 px patches -> latents).
        vae_batch_size: VAE batch.
        patch_size: HR patch side for the UNet phase and validation.
        vae_patch_size: patch side for VAE training (the VAE is convolutional; small patches are
            cheaper and still see every kind of texture).
        seed: seed of the weights, data, noise and split.
        vae_lr: peak AdamW learning rate of the VAE.
        unet_lr: peak AdamW learning rate of the UNet and null context.
        kl_weight: ``w_kl`` above.
        warmup: linear warm-up steps of both phases; then cosine decay to 10 % of the peak.
        checkpoint_every: steps between checkpoints (and at the end of each phase).
        images: folder of images to train on instead of the scikit-image photos.
        val_fraction: fraction of images held out.
        val_patches: at most this many validation patches (spread evenly over the grid).
        calibration_patches: training patches whose latents set the VAE's ``scaling_factor``.
    """

    preset: str = "tiny"
    steps: int = 1000
    vae_steps: int = 1000
    batch_size: int = 32
    vae_batch_size: int = 16
    patch_size: int = 64
    vae_patch_size: int = 32
    seed: int = 0
    vae_lr: float = 1e-3
    unet_lr: float = 5e-4
    kl_weight: float = 1e-6
    warmup: int = 50
    checkpoint_every: int = 100
    images: str | None = None
    val_fraction: float = 0.25
    val_patches: int = 128
    calibration_patches: int = 64

    def __post_init__(self) -> None:
        check_loop_settings(self, lrs={"vae_lr": "--vae-lr", "unet_lr": "--lr"})
        require_at_least(self, 0, "vae_steps")
        require_at_least(self, 1, "vae_batch_size", "patch_size", "vae_patch_size", "val_patches", "calibration_patches")
        require_in_range(self, "kl_weight", low=0)


# ---------------------------------------------------------------------- metrics
@torch.no_grad()
def vae_psnr(teacher: Teacher, images: torch.Tensor, batch_size: int = 16) -> float:
    """Reconstruction PSNR (dB, ``[0, 1]`` scale) of ``decode(encode(x))`` with the posterior mode."""
    recon = torch.cat([teacher.decode(teacher.encode(x)) for x in images.split(batch_size)])
    return psnr(recon, images)


@torch.no_grad()
def validation_loss(teacher: Teacher, latents: torch.Tensor, seed: int = 0, batch_size: int = 32) -> float:
    """Epsilon-prediction MSE on fixed latents, timesteps and noise (deterministic).

    Latent ``i`` of ``N`` is noised at ``t_i = round(i (T - 1) / (N - 1))`` (the whole schedule,
    evenly) with noise drawn from ``seed``; the loss is the mean over all of them.

    Args:
        teacher: the teacher.
        latents: scaled clean latents ``(N, 16, h, w)``.
        seed: seed of the noise.
        batch_size: evaluation batch.
    """
    n = latents.shape[0]
    T = teacher.scheduler.config.num_train_timesteps
    timesteps = torch.linspace(0, T - 1, n).round().long().to(latents.device)  # (N,)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed)).to(latents.device)  # (N, 16, h, w)
    total = 0.0
    for z0, eps, t in zip(latents.split(batch_size), noise.split(batch_size), timesteps.split(batch_size)):
        zt = teacher.scheduler.add_noise(z0, eps, t)
        pred = teacher.unet(zt, t, encoder_hidden_states=teacher.encoder_hidden_states(len(t))).sample
        total += float(F.mse_loss(pred, eps, reduction="sum"))
    return total / noise.numel()


# ---------------------------------------------------------------------- training
class _Data:
    """The training photos, the held-out ones and their validation patches."""

    def __init__(self, config: TrainConfig) -> None:
        kw = {"val_fraction": config.val_fraction, "seed": config.seed,
              "min_size": max(config.patch_size, config.vae_patch_size)}  # fmt: skip
        if config.images:
            self.train = PhotoDataset.from_folder(config.images, "train", **kw)
            self.val = PhotoDataset.from_folder(config.images, "val", **kw)
        else:
            self.train = PhotoDataset.from_skimage("train", **kw)
            self.val = PhotoDataset.from_skimage("val", **kw)
        per_image = max(1, math.ceil(config.val_patches / len(self.val)))
        self.val_hr = self.val.grid_patches(config.patch_size, max_per_image=per_image)[: config.val_patches]


def _restore(run: Run, teacher: Teacher, optimizer: torch.optim.Optimizer | None) -> int:
    """Load the checkpoint the state names, with the VAE's ``scaling_factor`` once it is calibrated."""
    start = run.restore(optimizer)
    if "scaling_factor" in run.state["metrics"]:
        teacher.vae.register_to_config(scaling_factor=run.state["metrics"]["scaling_factor"])
    return start


def _run_vae(run: Run, teacher: Teacher, data: _Data, cfg: TrainConfig) -> None:
    vae, metrics = teacher.vae, run.state["metrics"]
    params = list(vae.parameters())
    optimizer = adamw(params, cfg.vae_lr)
    if run.state.get("checkpoint"):
        start = _restore(run, teacher, optimizer)
    else:
        start = 0
        with torch.no_grad():  # quant_conv outputs (mu, log sigma^2) along channels
            vae.quant_conv.bias[teacher.latent_channels :] = _INIT_LOGVAR
        metrics["vae_psnr_db_init"] = vae_psnr(teacher, data.val_hr)

    def vae_loss(step: int) -> torch.Tensor:
        s = step_seed(cfg.seed, "vae", step)
        x = data.train.random_batch(cfg.vae_batch_size, cfg.vae_patch_size, seed=s).to(teacher.device)  # (B, 3, p, p)
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(torch.Generator().manual_seed(s))  # (B, 16, p/f, p/f)
        x_hat = vae.decode(z).sample  # (B, 3, p, p)
        rec = F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x)
        kl = posterior.kl().mean() / x[0].numel()
        return rec + cfg.kl_weight * kl

    vae.train()
    run.optimise(
        optimizer, params, vae_loss, start=start, steps=cfg.vae_steps, lr=cfg.vae_lr, warmup=cfg.warmup,
        checkpoint_every=cfg.checkpoint_every, desc="vae", phase="vae", final_checkpoint=False,
    )  # fmt: skip
    vae.eval()
    # calibrate: scaled latents get unit variance, z_0 = mu / std(mu)
    with torch.no_grad():
        sample = data.train.random_batch(cfg.calibration_patches, cfg.patch_size, seed=step_seed(cfg.seed, "scale", 0))
        mu = torch.cat([vae.encode(b.to(vae.device)).latent_dist.mode() for b in sample.split(16)])
    metrics["scaling_factor"] = float(1.0 / mu.std())
    vae.register_to_config(scaling_factor=metrics["scaling_factor"])
    metrics["vae_psnr_db"] = vae_psnr(teacher, data.val_hr)
    logger.info("VAE: held-out PSNR %.2f dB (init %.2f dB)", metrics["vae_psnr_db"], metrics["vae_psnr_db_init"])
    run.checkpoint(0, phase="unet")


def _run_unet(run: Run, t: Teacher, data: _Data, cfg: TrainConfig) -> None:
    metrics = run.state["metrics"]
    params = list(t.unet.parameters()) + list(t.context.parameters())
    optimizer = adamw(params, cfg.unet_lr)
    start = _restore(run, t, optimizer)
    t.vae.eval().requires_grad_(False)
    with torch.no_grad():
        val_latents = torch.cat([t.encode(b) for b in data.val_hr.split(16)])  # (N, 16, h, w)
    if "unet_val_loss_init" not in metrics:
        t.unet.eval()
        metrics["unet_val_loss_init"] = validation_loss(t, val_latents, seed=cfg.seed)
    T = t.scheduler.config.num_train_timesteps

    def unet_loss(step: int) -> torch.Tensor:
        s = step_seed(cfg.seed, "unet", step)
        gen = torch.Generator().manual_seed(s)
        x = data.train.random_batch(cfg.batch_size, cfg.patch_size, seed=s)  # (B, 3, P, P)
        with torch.no_grad():
            z0 = t.encode(x, sample=True, generator=gen)  # (B, 16, h, w)
        eps = torch.randn(z0.shape, generator=gen).to(z0.device)  # (B, 16, h, w)
        timesteps = torch.randint(0, T, (z0.shape[0],), generator=gen).to(z0.device)  # (B,)
        zt = t.scheduler.add_noise(z0, eps, timesteps)
        pred = t.unet(zt, timesteps, encoder_hidden_states=t.encoder_hidden_states(z0.shape[0])).sample
        return F.mse_loss(pred, eps)

    t.unet.train()
    t.context.train()
    run.optimise(
        optimizer, params, unet_loss, start=start, steps=cfg.steps, lr=cfg.unet_lr, warmup=cfg.warmup,
        checkpoint_every=cfg.checkpoint_every, desc="unet", phase="unet", final_checkpoint=False,
    )  # fmt: skip
    t.eval()
    metrics["unet_val_loss"] = validation_loss(t, val_latents, seed=cfg.seed)
    logger.info(
        "UNet: validation denoising loss %.4f (init %.4f)", metrics["unet_val_loss"], metrics["unet_val_loss_init"]
    )
    run.checkpoint(cfg.steps, optimizer, phase="unet")  # with optimizer state: --steps can be extended


@locks_folder("out", "teacher train")
def train_teacher(
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    autocast: Any = None,
    device: str | torch.device | None = None,
) -> dict[str, Any] | None:
    """Train a preset teacher and save it (with ``metrics.json``) in ``out``.

    Args:
        out: output folder; must be empty or absent unless ``resume``.
        config: hyper-parameters (default :class:`TrainConfig`).
        resume: continue from ``out/checkpoints`` (settings other than ``steps``, ``vae_steps``
            and ``checkpoint_every`` must match the checkpoint's). A finished run kept with
            ``keep_checkpoints`` can be extended with a larger ``steps`` (the learning-rate
            schedule is then stretched to the new total from the current step on).
        keep_checkpoints: keep ``out/checkpoints`` (with optimizer state) after success.
        progress: show tqdm progress bars with the loss.
        autocast: mixed precision around each step's loss (:class:`~tocsr_nas.training.Run`).
        stop_after: stop abruptly after this many optimisation steps in this call (simulates a
            crash; for tests; a checkpoint due at that step is still written). Returns ``None`` then.
        device: where to train (``None``: the CPU). The teacher and the validation patches move
            there once; each step's photos, noise and timesteps are drawn on the CPU and moved.
            The teacher is saved from the CPU (float32).

    Returns:
        The metrics written to ``out/metrics.json``, or ``None`` if stopped by ``stop_after``.

    Raises:
        TocsrError: a non-empty ``out`` without ``resume``, nothing to resume, or mismatched
            settings.
    """
    out, config = Path(out), config or TrainConfig()
    teacher = build_teacher(config.preset, seed=config.seed)  # bad inputs fail before out is written
    teacher.latent_size(config.patch_size)  # the UNet's patches fit its downsamplings
    if config.vae_patch_size % teacher.vae_scale_factor:
        f = teacher.vae_scale_factor
        raise TocsrError(f"vae_patch_size {config.vae_patch_size} px is not a multiple of the VAE factor {f}")
    data = _Data(config)
    teacher.to(device or "cpu")
    data.val_hr = data.val_hr.to(teacher.device)
    state = open_run(out, config, resume=resume, resumable=_RESUMABLE_CHANGES, done_file="metrics.json", phases=_PHASES)
    if state["phase"] == "done":
        if config.steps == state["step"]:
            logger.info("%s is already trained", out)
            return read_json(out / "metrics.json")
        state["phase"] = "unet"  # --resume with more --steps: continue the UNet phase
    run = Run(out, state, teacher.modules(), progress=progress, stop_after=stop_after, autocast=autocast)
    try:
        if state["phase"] == "vae":
            _run_vae(run, teacher, data, config)
        _run_unet(run, teacher, data, config)
    except Stopped:
        logger.info("stopped after %d steps (stop_after); rerun with resume to continue", run.steps_run)
        return None
    metrics = {
        "preset": config.preset,
        "config": dataclasses.asdict(config),
        "train_images": data.train.names,
        "val_images": data.val.names,
        "val_patches": int(data.val_hr.shape[0]),
        **state["metrics"],
        "fingerprint": teacher.fingerprint(),
        "seconds": {**state["seconds"], "total": sum(state["seconds"].values())},
        "cpu_seconds": {**state["cpu_seconds"], "total": sum(state["cpu_seconds"].values())},
        "torch_threads": torch.get_num_threads(),
    }
    teacher.preset = config.preset
    teacher.to("cpu")
    teacher.save(out)
    atomic_write_json(out / "metrics.json", metrics)
    state["phase"] = "done"
    Checkpoints(out).finish(state, keep=keep_checkpoints)
    logger.info(
        "teacher saved to %s: VAE PSNR %.2f dB on held-out %s; UNet val loss %.4f -> %.4f; "
        "%.0f s wall (VAE %.0f s, UNet %.0f s), %.0f s CPU",
        out,
        metrics["vae_psnr_db"],
        ", ".join(metrics["val_images"]),
        metrics["unet_val_loss_init"],
        metrics["unet_val_loss"],
        metrics["seconds"]["total"],
        metrics["seconds"]["vae"],
        metrics["seconds"]["unet"],
        metrics["cpu_seconds"]["total"],
    )
    return metrics
