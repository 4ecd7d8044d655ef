"""Micro models for tests and docstring examples: a UNet, a VAE and a teacher built in milliseconds.

They have the structure of the ``tiny`` preset (a 16-channel latent, a VAE with factor 4, a UNet
with a cross-attention level and one downsampler) at a few thousand parameters, so the SR code
paths run for real in seconds.

Example:
    >>> t = micro_teacher()
    >>> t.vae_scale_factor, t.latent_channels
    (4, 16)
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from tocsr_nas.teacher import LATENT_CHANNELS, NullContext, Teacher

__all__ = ["micro_unet", "micro_vae", "micro_teacher"]


def micro_unet(seed: int = 0) -> UNet2DConditionModel:
    """A two-level UNet (8 and 16 channels, one cross-attention level), 16 channels in and out."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel(
            sample_size=8,
            in_channels=LATENT_CHANNELS,
            out_channels=LATENT_CHANNELS,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            cross_attention_dim=8,
            attention_head_dim=4,
            norm_num_groups=4,
        ).eval()


def micro_vae(seed: int = 0) -> AutoencoderKL:
    """A three-level VAE (factor 4) with 8 channels per level and a 16-channel latent."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(8, 8, 8),
            layers_per_block=1,
            latent_channels=LATENT_CHANNELS,
            norm_num_groups=4,
            sample_size=32,
        ).eval()


def micro_teacher(seed: int = 0) -> Teacher:
    """A :class:`~tocsr_nas.teacher.Teacher` of micro parts (random weights, eval mode)."""
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        context = NullContext(num_tokens=2, dim=8)
    return Teacher(vae=micro_vae(seed), unet=micro_unet(seed), scheduler=scheduler, context=context).eval()
