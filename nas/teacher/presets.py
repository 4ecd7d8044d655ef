"""Teacher presets: named builders of a :class:`~tocsr_nas.teacher.model.Teacher` with random weights.

Presets (all random weights, nothing is downloaded):

* ``tiny``: a VAE with 3 resolution levels (64 px patch -> 16 x 16 x 16 latent) and a small UNet
  with ResNet blocks, self+cross-attention transformer blocks and down/up samplers at two
  resolutions; null context 4 tokens x 64. Trains on 2 CPU cores in minutes. A trained copy ships
  with the package: :func:`default_teacher_dir`.
* ``sd21-vae16``: Stable Diffusion 2.1's UNet configuration with 16 input/output channels
  (865,979,856 parameters) and an SD-style VAE with 16 latent channels; null context 77 x 1024.

Example:
    >>> teacher = build_teacher("tiny", seed=0)
    >>> args, kwargs = teacher.unet_example_inputs(batch=2)
    >>> teacher.unet(*args, **kwargs)[0].shape
    torch.Size([2, 16, 16, 16])

A new preset is one decorated function: ``@register_preset("name")`` on a ``() -> Teacher``.

Example:
    >>> teacher = build_teacher("tiny", seed=0)
    >>> args, kwargs = teacher.unet_example_inputs(batch=2)
    >>> teacher.unet(*args, **kwargs)[0].shape
    torch.Size([2, 16, 16, 16])
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from tocsr_nas.errors import TocsrError
from tocsr_nas.teacher.model import LATENT_CHANNELS, NullContext, Teacher

logger = logging.getLogger(__name__)

__all__ = ["PRESETS", "UnknownPresetError", "available_presets", "build_teacher", "default_teacher_dir", "register_preset", "shipped_teacher"]


class UnknownPresetError(TocsrError, KeyError):
    """A preset name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


PRESETS: dict[str, Callable[[], Teacher]] = {}


def register_preset(name: str) -> Callable[[Callable[[], Teacher]], Callable[[], Teacher]]:
    """Register a teacher preset builder under ``name`` (a duplicate name is an error)."""

    def wrap(fn: Callable[[], Teacher]) -> Callable[[], Teacher]:
        if name in PRESETS:
            raise ValueError(f"teacher preset {name!r} is already registered")
        PRESETS[name] = fn
        return fn

    return wrap


def available_presets() -> list[str]:
    """Names of the registered presets."""
    return sorted(PRESETS)


def build_teacher(preset: str, seed: int = 0) -> Teacher:
    """Build a preset teacher with random weights (nothing is downloaded).

    The global torch RNG is left untouched: weights come from a forked RNG seeded with ``seed``.

    Args:
        preset: ``"tiny"`` or ``"sd21-vae16"`` (see :func:`available_presets`).
        seed: seed of the weight initialisation.

    Returns:
        The teacher, in eval mode, on the CPU.

    Raises:
        UnknownPresetError: for an unregistered name.

    Example:
        >>> sum(p.numel() for p in build_teacher("tiny").unet.parameters()) < 5_000_000
        True
    """
    if preset not in PRESETS:
        raise UnknownPresetError(f"unknown teacher preset {preset!r}; valid presets: {', '.join(available_presets())}")
    with _seeded(seed):
        teacher = PRESETS[preset]()
    teacher.preset = preset
    return teacher.eval()


def _ddpm() -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        clip_sample=False,
    )


@register_preset("tiny")
def _tiny() -> Teacher:
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        # Light enough that encoding + decoding cost less than a few compact-UNet calls (0.37 GMACs
        # per 128 px image), so a one-step SR model is not dominated by its VAE.
        block_out_channels=(8, 16, 32),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        # One group: with few channels, per-group normalisation (group = channel at 8 groups) erases
        # each feature map's mean, i.e. the patch's colour, before the output conv: after 1000
        # steps 8 groups reached 17.5 dB on the held-out patches, one group 23.5 dB
        # (benchmarks/tiny_vae_study.py).
        norm_num_groups=1,
        mid_block_add_attention=False,
        sample_size=64,
        scaling_factor=1.0,  # calibrated to 1 / std(latents) after VAE training
    )
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    context = NullContext(num_tokens=4, dim=64)
    return Teacher(vae=vae, unet=unet, scheduler=_ddpm(), context=context)


@register_preset("sd21-vae16")
def _sd21_vae16() -> Teacher:
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=32,
        sample_size=512,
        scaling_factor=1.0,  # random weights: calibrate after training
    )
    unet = UNet2DConditionModel(  # stabilityai/stable-diffusion-2-1-base unet/config.json, 16 channels in/out
        sample_size=64,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
        norm_num_groups=32,
        flip_sin_to_cos=True,
        freq_shift=0,
        act_fn="silu",
        center_input_sample=False,
        downsample_padding=1,
        mid_block_scale_factor=1,
        norm_eps=1e-5,
    )
    context = NullContext(num_tokens=77, dim=1024)
    return Teacher(vae=vae, unet=unet, scheduler=_ddpm(), context=context)


def default_teacher_dir() -> Path:
    """The trained ``tiny`` teacher that ships with the package (``tocsr_nas/assets/teacher-tiny``).

    Example:
        >>> (default_teacher_dir() / "teacher.json").is_file()
        True
    """
    return Path(__file__).resolve().parent.parent / "assets" / "teacher-tiny"


def shipped_teacher() -> Teacher:
    """The trained ``tiny`` teacher that ships with the package (:func:`default_teacher_dir`), or the
    ``tiny`` preset with random weights (and a warning) when it is absent."""
    try:
        return Teacher.load(default_teacher_dir())
    except TocsrError as exc:
        logger.warning("shipped teacher unavailable (%s); using the tiny preset with random weights", exc)
        return build_teacher("tiny", seed=0)


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
