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
uninterrupted one. Checkpoints are ``OUT/checkpoints/<phase>-<step>/`` folders (weights as
safetensors, optimizer state read back with ``torch.load(weights_only=True)``), and
``OUT/checkpoints/state.json``, replaced atomically, names the latest complete one.

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
import hashlib
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tocsr_nas._io import (
    atomic_write_json,
    load_safetensors,
    load_torch_state,
    read_json,
    save_safetensors,
    save_torch_state,
)
from tocsr_nas.teacher.data import PhotoDataset, psnr
from tocsr_nas.errors import TocsrError, require_at_least
from tocsr_nas.teacher import Teacher, build_teacher

__all__ = ["TrainConfig", "train_teacher", "validation_loss", "vae_psnr"]

logger = logging.getLogger(__name__)

_CHECKPOINTS = "checkpoints"
#: config fields that may change when resuming (they extend or re-pace the run)
_RESUMABLE_CHANGES = ("steps", "vae_steps", "checkpoint_every")
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
        require_at_least(self, 0, "steps", "vae_steps", "warmup")
        require_at_least(self, 1, "batch_size", "vae_batch_size", "patch_size", "vae_patch_size", "checkpoint_every",
                         "val_patches", "calibration_patches")
        if self.vae_lr <= 0 or self.unet_lr <= 0 or self.kl_weight < 0:
            raise TocsrError("learning rates must be > 0 and the KL weight >= 0")


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
    timesteps = torch.linspace(0, T - 1, n).round().long()  # (N,)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed))  # (N, 16, h, w)
    total = 0.0
    for z0, eps, t in zip(latents.split(batch_size), noise.split(batch_size), timesteps.split(batch_size)):
        zt = teacher.scheduler.add_noise(z0, eps, t)
        pred = teacher.unet(zt, t, encoder_hidden_states=teacher.encoder_hidden_states(len(t))).sample
        total += float(F.mse_loss(pred, eps, reduction="sum"))
    return total / noise.numel()


# ---------------------------------------------------------------------- training
def _seed(seed: int, phase: str, step: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{phase}/{step}".encode()).digest()[:8], "little") & (2**63 - 1)


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` then cosine decay to ``0.1 * peak`` at ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class _Stop(Exception):
    """Raised internally when ``stop_after`` steps have run (a simulated crash)."""


class _Run:
    """State of one training run: the teacher, the data, the checkpoint folder."""

    def __init__(self, out: Path, config: TrainConfig, state: dict[str, Any], progress: bool, stop_after: int | None):
        self.out, self.config, self.state = out, config, state
        self.ckpt_dir = out / _CHECKPOINTS
        self.progress, self.stop_after, self.steps_run = progress, stop_after, 0
        self.teacher = build_teacher(config.preset, seed=config.seed)
        min_size = max(config.patch_size, config.vae_patch_size)
        if config.images:
            kw = {"val_fraction": config.val_fraction, "seed": config.seed, "min_size": min_size}
            self.train = PhotoDataset.from_folder(config.images, "train", **kw)
            self.val = PhotoDataset.from_folder(config.images, "val", **kw)
        else:
            kw = {"val_fraction": config.val_fraction, "seed": config.seed, "min_size": min_size}
            self.train = PhotoDataset.from_skimage("train", **kw)
            self.val = PhotoDataset.from_skimage("val", **kw)
        per_image = max(1, math.ceil(config.val_patches / len(self.val)))
        self.val_hr = self.val.grid_patches(config.patch_size, max_per_image=per_image)[: config.val_patches]
        self._clock = (time.perf_counter(), time.process_time())

    # -------------------------------------------------------------- checkpoints
    def _tick(self, phase: str) -> None:
        """Add the wall and CPU time since the last tick to ``phase``."""
        now = (time.perf_counter(), time.process_time())
        for key, t0, t1 in zip(("seconds", "cpu_seconds"), self._clock, now):
            self.state[key][phase] = self.state[key].get(phase, 0.0) + t1 - t0
        self._clock = now

    def checkpoint(self, phase: str, step: int, optimizer: torch.optim.Optimizer | None) -> None:
        """Write ``checkpoints/<phase>-<step>/`` then point ``state.json`` at it, atomically."""
        self._tick(self.state["phase"])  # time so far belongs to the phase being left/continued
        name = f"{phase}-{step:07d}"
        folder = self.ckpt_dir / name
        for part, module in self.teacher.modules().items():
            save_safetensors(folder / f"{part}.safetensors", module.state_dict())
        if optimizer is not None:
            save_torch_state(folder / "optimizer.pt", optimizer.state_dict())
        previous = self.state.get("checkpoint")
        self.state.update(phase=phase, step=step, checkpoint=name)
        atomic_write_json(self.ckpt_dir / "state.json", self.state)
        if previous and previous != name:
            shutil.rmtree(self.ckpt_dir / previous, ignore_errors=True)
        self._clock = (time.perf_counter(), time.process_time())

    def restore(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Load the weights (and optimizer state, if any) of the checkpoint ``state.json`` names."""
        folder = self.ckpt_dir / self.state["checkpoint"]
        for part, module in self.teacher.modules().items():
            module.load_state_dict(load_safetensors(folder / f"{part}.safetensors"))
        if "scaling_factor" in self.state["metrics"]:
            self.teacher.vae.register_to_config(scaling_factor=self.state["metrics"]["scaling_factor"])
        if optimizer is not None and (folder / "optimizer.pt").is_file():
            optimizer.load_state_dict(load_torch_state(folder / "optimizer.pt"))

    def _count_step(self) -> None:
        self.steps_run += 1
        if self.stop_after is not None and self.steps_run >= self.stop_after:
            raise _Stop

    # -------------------------------------------------------------- phases
    def run_vae(self) -> None:
        cfg, vae, metrics = self.config, self.teacher.vae, self.state["metrics"]
        optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        start = 0
        if self.state["phase"] == "vae" and self.state.get("checkpoint"):
            self.restore(optimizer)
            start = self.state["step"]
        else:
            with torch.no_grad():  # quant_conv outputs (mu, log sigma^2) along channels
                vae.quant_conv.bias[self.teacher.latent_channels :] = _INIT_LOGVAR
            metrics["vae_psnr_db_init"] = vae_psnr(self.teacher, self.val_hr)
        vae.train()
        bar = tqdm(total=cfg.vae_steps, initial=start, desc="vae", disable=not self.progress, dynamic_ncols=True)
        for step in range(start, cfg.vae_steps):
            s = _seed(cfg.seed, "vae", step)
            x = self.train.random_batch(cfg.vae_batch_size, cfg.vae_patch_size, seed=s)  # (B, 3, p, p)
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, cfg.vae_steps, cfg.vae_lr, cfg.warmup)
            posterior = vae.encode(x).latent_dist
            z = posterior.sample(torch.Generator().manual_seed(s))  # (B, 16, p/f, p/f)
            x_hat = vae.decode(z).sample  # (B, 3, p, p)
            rec = F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x)
            kl = posterior.kl().mean() / x[0].numel()
            loss = rec + cfg.kl_weight * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            optimizer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.vae_steps:
                self.checkpoint("vae", step + 1, optimizer)
            self._count_step()
        bar.close()
        vae.eval()
        # calibrate: scaled latents get unit variance, z_0 = mu / std(mu)
        with torch.no_grad():
            sample = self.train.random_batch(cfg.calibration_patches, cfg.patch_size, seed=_seed(cfg.seed, "scale", 0))
            mu = torch.cat([vae.encode(b).latent_dist.mode() for b in sample.split(16)])
        metrics["scaling_factor"] = float(1.0 / mu.std())
        vae.register_to_config(scaling_factor=metrics["scaling_factor"])
        metrics["vae_psnr_db"] = vae_psnr(self.teacher, self.val_hr)
        logger.info("VAE: held-out PSNR %.2f dB (init %.2f dB)", metrics["vae_psnr_db"], metrics["vae_psnr_db_init"])
        self.checkpoint("unet", 0, None)

    def val_latents(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.teacher.encode(b) for b in self.val_hr.split(16)])  # (N, 16, h, w)

    def run_unet(self) -> None:
        cfg, t, metrics = self.config, self.teacher, self.state["metrics"]
        params = list(t.unet.parameters()) + list(t.context.parameters())
        optimizer = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.0)
        self.restore(optimizer)
        start = self.state["step"]
        t.vae.eval().requires_grad_(False)
        val_latents = self.val_latents()
        if "unet_val_loss_init" not in metrics:
            t.unet.eval()
            metrics["unet_val_loss_init"] = validation_loss(t, val_latents, seed=cfg.seed)
        t.unet.train()
        t.context.train()
        T = t.scheduler.config.num_train_timesteps
        bar = tqdm(total=cfg.steps, initial=start, desc="unet", disable=not self.progress, dynamic_ncols=True)
        for step in range(start, cfg.steps):
            s = _seed(cfg.seed, "unet", step)
            gen = torch.Generator().manual_seed(s)
            x = self.train.random_batch(cfg.batch_size, cfg.patch_size, seed=s)  # (B, 3, P, P)
            with torch.no_grad():
                z0 = t.encode(x, sample=True, generator=gen)  # (B, 16, h, w)
            eps = torch.randn(z0.shape, generator=gen)  # (B, 16, h, w)
            timesteps = torch.randint(0, T, (z0.shape[0],), generator=gen)  # (B,)
            zt = t.scheduler.add_noise(z0, eps, timesteps)
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, cfg.steps, cfg.unet_lr, cfg.warmup)
            pred = t.unet(zt, timesteps, encoder_hidden_states=t.encoder_hidden_states(z0.shape[0])).sample
            loss = F.mse_loss(pred, eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                self.checkpoint("unet", step + 1, optimizer)
            self._count_step()
        bar.close()
        t.eval()
        metrics["unet_val_loss"] = validation_loss(t, val_latents, seed=cfg.seed)
        logger.info(
            "UNet: validation denoising loss %.4f (init %.4f)", metrics["unet_val_loss"], metrics["unet_val_loss_init"]
        )
        self.checkpoint("unet", cfg.steps, optimizer)  # with optimizer state: --steps can be extended


def _load_state(out: Path, config: TrainConfig, resume: bool) -> tuple[TrainConfig, dict[str, Any]]:
    state_path = out / _CHECKPOINTS / "state.json"
    if resume:
        if not state_path.is_file() and (out / "metrics.json").is_file():
            raise TocsrError(f"{out} is already trained (metrics.json exists); choose a new --out to train again")
        if not state_path.is_file():
            raise TocsrError(f"nothing to resume in {out}: no {_CHECKPOINTS}/state.json (start without --resume)")
        state = read_json(state_path)
        saved = TrainConfig(**state["config"])
        diff = [
            f"{f.name}={getattr(config, f.name)!r} (checkpoint has {getattr(saved, f.name)!r})"
            for f in dataclasses.fields(TrainConfig)
            if f.name not in _RESUMABLE_CHANGES and getattr(config, f.name) != getattr(saved, f.name)
        ]
        if diff:
            raise TocsrError(f"cannot resume {out} with different settings: {', '.join(diff)}")
        if state["phase"] != "vae" and config.vae_steps != saved.vae_steps:
            raise TocsrError(f"cannot change --vae-steps when resuming {out}: the VAE phase is finished")
        if state["phase"] in ("unet", "done") and state["step"] > config.steps:
            raise TocsrError(f"{out} is already past step {config.steps} of the UNet phase")
        state["config"] = dataclasses.asdict(config)
        return config, state
    if out.exists() and any(out.iterdir()):
        raise TocsrError(f"output folder {out} is not empty: choose a new --out, or pass --resume to continue it")
    state = {"config": dataclasses.asdict(config), "phase": "vae", "step": 0, "checkpoint": None}
    state.update(seconds={"vae": 0.0, "unet": 0.0}, cpu_seconds={"vae": 0.0, "unet": 0.0}, metrics={})
    return config, state


def train_teacher(
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    keep_checkpoints: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
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
        stop_after: stop abruptly, without a checkpoint, after this many optimisation steps in
            this call (simulates a crash; for tests). Returns ``None`` then.

    Returns:
        The metrics written to ``out/metrics.json``, or ``None`` if stopped by ``stop_after``.

    Raises:
        TocsrError: a non-empty ``out`` without ``resume``, nothing to resume, or mismatched
            settings.
    """
    out = Path(out)
    config, state = _load_state(out, config or TrainConfig(), resume)
    if state["phase"] == "done":
        if config.steps == state["step"]:
            logger.info("%s is already trained", out)
            return read_json(out / "metrics.json")
        state["phase"] = "unet"  # --resume with more --steps: continue the UNet phase
    run = _Run(out, config, state, progress, stop_after)
    try:
        if state["phase"] == "vae":
            run.run_vae()
        run.run_unet()
    except _Stop:
        logger.info("stopped after %d steps (stop_after); rerun with resume to continue", run.steps_run)
        return None
    metrics = {
        "preset": config.preset,
        "config": dataclasses.asdict(config),
        "train_images": run.train.names,
        "val_images": run.val.names,
        "val_patches": int(run.val_hr.shape[0]),
        **state["metrics"],
        "fingerprint": run.teacher.fingerprint(),
        "seconds": {**state["seconds"], "total": sum(state["seconds"].values())},
        "cpu_seconds": {**state["cpu_seconds"], "total": sum(state["cpu_seconds"].values())},
        "torch_threads": torch.get_num_threads(),
    }
    run.teacher.preset = config.preset
    run.teacher.save(out)
    atomic_write_json(out / "metrics.json", metrics)
    state["phase"] = "done"
    atomic_write_json(out / _CHECKPOINTS / "state.json", state)
    if not keep_checkpoints:
        shutil.rmtree(out / _CHECKPOINTS, ignore_errors=True)
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
