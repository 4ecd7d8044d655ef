"""Micro models shared by the evaluator tests."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

#: the classes whose instances are searchable blocks in these tests
BLOCK_TYPES = ("ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D")


def make_tiny_unet(layers_per_block: int = 1) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=layers_per_block,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=8,
        attention_head_dim=4,
    ).eval()


@pytest.fixture(scope="session")
def tiny_unet() -> UNet2DConditionModel:
    return make_tiny_unet()


@pytest.fixture(scope="session")
def repeating_unet() -> UNet2DConditionModel:
    """Two ResNets and two transformers per level: real diffusers twins."""
    return make_tiny_unet(layers_per_block=2)


@pytest.fixture(scope="session")
def unet_call() -> tuple[tuple[torch.Tensor, ...], dict]:
    g = torch.Generator().manual_seed(1)
    sample = torch.randn(1, 4, 8, 8, generator=g)  # (B, C, H, W)
    context = torch.randn(1, 4, 16, generator=g)  # (B, L, D)
    return (sample, torch.tensor([10]), context), {"return_dict": False}


@pytest.fixture(scope="session")
def block_paths(tiny_unet) -> list[str]:
    return [n for n, m in tiny_unet.named_modules() if type(m).__name__ in BLOCK_TYPES]
