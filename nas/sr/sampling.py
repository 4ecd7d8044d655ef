"""Sampling the SR model: deterministic multi-step DDIM, and the one-step generator.

Notation (diffusers variable -> symbol): ``alphas_cumprod[t]`` -> ``abar_t``; ``z_t`` -> ``x_t``;
the backbone's output ``model_output`` -> ``eps_theta`` (``prediction_type="epsilon"``) or
``v_theta`` (``"v_prediction"``); ``z_lr`` -> the conditioning ``c``.

**Multi-step.** :func:`ddim_sample` runs diffusers' :class:`~diffusers.DDIMScheduler`
(``eta = 0``: deterministic, the probability-flow ODE; the last step returns the clean
prediction) on a "trailing" grid of ``N = round(steps / strength)`` timesteps
``T-1, T-1-T/N, ...`` of which it runs the last ``steps``. With ``strength = 1`` it starts from
``x_T ~ N(0, I)``; with ``strength < 1`` it starts, as image-to-image pipelines do, from the LR
latent noised to the first timestep ``tau``: ``x_tau = sqrt(abar_tau) c + sqrt(1 - abar_tau) eps``
(SR needs to add detail, not invent the image). ``eps`` is drawn from ``seed``, so the output is
a pure function of the inputs and the seed.

**One step.** :func:`onestep_sample` evaluates the backbone once at a fixed timestep ``t*`` and
returns the clean latent it implies (the derivation is in ``docs/onestep.md`` and
:mod:`tocsr_nas.sr.onestep`)::

    x0_hat = (x_t* - sqrt(1 - abar_t*) eps_theta(x_t*, t*, c)) / sqrt(abar_t*)     (epsilon)
    x0_hat = sqrt(abar_t*) x_t* - sqrt(1 - abar_t*) v_theta(x_t*, t*, c)           (v)

Both accept ``tile``: the denoiser is then applied tile by tile with overlap blending
(:func:`~tocsr_nas.sr.tiling.tiled_map`) at every step, on the whole latent.

Example:
    >>> from tocsr_nas.sr.model import Backbone, SRModel
    >>> from tocsr_nas.sr.testing import micro_teacher
    >>> model = SRModel.from_backbone(Backbone.from_teacher(micro_teacher()))
    >>> z_lr = torch.randn(1, 16, 8, 8)
    >>> a = ddim_sample(model, z_lr, steps=3, seed=0)
    >>> torch.equal(a, ddim_sample(model, z_lr, steps=3, seed=0))
    True
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.model import SRModel
from tocsr_nas.sr.tiling import tiled_map

__all__ = ["make_ddim", "predict_x0", "denoise", "initial_noise", "ddim_sample", "onestep_start", "onestep_sample"]


def make_ddim(model: SRModel, steps: int, strength: float = 1.0) -> tuple[DDIMScheduler, torch.Tensor]:
    """A DDIM scheduler on the model's training noise schedule and the ``steps`` timesteps to run.

    The grid has ``round(steps / strength)`` trailing timesteps; the last ``steps`` are returned.
    """
    if steps < 1:
        raise TocsrError(f"--steps must be >= 1, got {steps}")
    if not 0.0 < strength <= 1.0:
        raise TocsrError(f"the sampler strength must be in (0, 1], got {strength}")
    ddim = DDIMScheduler.from_config(
        model.scheduler.config, timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False
    )
    total = max(steps, round(steps / strength))
    ddim.set_timesteps(total)
    return ddim, ddim.timesteps[total - steps :]


def _abar(model: SRModel, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    a = model.scheduler.alphas_cumprod.to(like.device)[torch.as_tensor(t, device=like.device).long()]
    return a.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))  # (B or 1, 1, 1, 1)


def predict_x0(model: SRModel, model_output: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    """The clean latent implied by the backbone's output at ``x_t``, ``t`` (DDIM eq. 9's ``f_theta``).

    From ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``:

    * epsilon: ``x_0 = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)``;
    * v (``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0``): ``x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v_theta``;
    * sample: ``x_0 = model_output``.
    """
    kind = model.scheduler.config.prediction_type
    abar = _abar(model, t, x_t)
    if kind == "epsilon":
        return (x_t - (1 - abar).sqrt() * model_output) / abar.sqrt()
    if kind == "v_prediction":
        return abar.sqrt() * x_t - (1 - abar).sqrt() * model_output
    if kind == "sample":
        return model_output
    raise TocsrError(f"unsupported prediction_type {kind!r}")


def denoise(model: SRModel, x_t: torch.Tensor, t: int | torch.Tensor, z_lr: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """The backbone's output on the whole latent, tiled with overlap ``tile // 4`` when ``tile`` is set."""
    c = x_t.shape[1]
    if tile is None or (x_t.shape[-2] <= tile and x_t.shape[-1] <= tile):
        return model.net(x_t, t, z_lr)
    x = torch.cat([x_t, z_lr], dim=1)  # (B, 2C, h, w)
    return tiled_map(lambda xs: model.net(xs[:, :c], t, xs[:, c:]), x, tile=tile, overlap=max(1, tile // 4))


def initial_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """``x_T ~ N(0, I)`` of ``shape``, a pure function of ``seed``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def ddim_sample(
    model: SRModel,
    z_lr: torch.Tensor,
    *,
    steps: int,
    seed: int = 0,
    strength: float = 1.0,
    eta: float = 0.0,
    tile: int | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Deterministic DDIM sampling of the HR latent given ``z_lr`` ``(B, C, h, w)``.

    Args:
        model: the SR model.
        z_lr: the conditioning latent.
        steps: DDIM steps (backbone evaluations).
        seed: seed of the starting noise (ignored when ``noise`` is given).
        strength: fraction of the schedule run (1: from pure noise; below 1: from the noised
            LR latent, see the module docstring).
        eta: DDIM's ``eta`` (0: deterministic).
        tile: latent tile side for tiled denoising (``None``: whole latent at once).
        noise: the starting noise itself, ``(B, C, h, w)``.

    Returns:
        The clean latent ``(B, C, h, w)``.
    """
    ddim, timesteps = make_ddim(model, steps, strength)
    eps = noise.to(z_lr) if noise is not None else initial_noise(tuple(z_lr.shape), seed).to(z_lr)
    x = eps * ddim.init_noise_sigma if strength >= 1.0 else ddim.add_noise(z_lr, eps, timesteps[:1])
    gen = torch.Generator().manual_seed(seed)
    for t in timesteps:
        out = denoise(model, x, t, z_lr, tile)
        x = ddim.step(out, t, x, eta=eta, generator=gen).prev_sample
    return x


def onestep_start(
    model: SRModel, z_lr: torch.Tensor, *, timestep: int, start: str, seed: int = 0, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """The one-step generator's input ``x_t*``.

    * ``"lr"``: ``x_t* = z_lr`` (the LR latent is read as a noisy version of the HR latent);
    * ``"noise"``: ``x_t* = sqrt(abar_t*) z_lr + sqrt(1 - abar_t*) eps_fix`` with a fixed
      ``eps_fix`` drawn from ``seed`` (the forward process applied to ``z_lr``; at ``t* = T - 1``
      this is the multi-step sampler's own starting noise); ``noise`` overrides ``eps_fix``.
    """
    if start == "lr":
        return z_lr
    if start == "noise":
        abar = _abar(model, timestep, z_lr)
        eps = (noise if noise is not None else initial_noise(tuple(z_lr.shape), seed)).to(z_lr)
        return abar.sqrt() * z_lr + (1 - abar).sqrt() * eps
    raise TocsrError(f"unknown one-step start {start!r}; valid: lr, noise")


def onestep_sample(
    model: SRModel,
    z_lr: torch.Tensor,
    *,
    timestep: int | None = None,
    start: str | None = None,
    seed: int = 0,
    tile: int | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One evaluation of the backbone: the clean latent ``x0_hat`` (see the module docstring).

    ``timestep`` and ``start`` default to the model's ``config["onestep"]``. Differentiable (no
    ``no_grad``): the distillation trains through it.
    """
    spec = model.config.get("onestep", {})
    timestep = int(spec.get("timestep", 0) if timestep is None else timestep)
    start = str(spec.get("start", "lr") if start is None else start)
    x_t = onestep_start(model, z_lr, timestep=timestep, start=start, seed=seed, noise=noise)
    t = torch.tensor(timestep)
    out = denoise(model, x_t, t, z_lr, tile)
    return predict_x0(model, out, x_t, t)
