"""Cheaper down- and up-samplers: ``pool_down`` and ``light_up``.

The teacher's ``Downsample2D`` is a 3x3 stride-2 convolution (``9 C_in C_out`` weights) and its
``Upsample2D`` a nearest 2x upsampling followed by a 3x3 convolution at the high resolution
(``9 C_in C_out`` weights, 4x the MACs of the same conv at the low resolution). The surrogates keep
the resampling and replace the 3x3 full convolution by a 1x1 one (plus, optionally, a depthwise
kxk).

Initialisation from the teacher (both types): for locally constant features ``x`` a 3x3
convolution reduces to a 1x1 one,

    sum_{dy,dx} W[:, :, dy, dx] x(p + d) = (sum_{dy,dx} W[:, :, dy, dx]) x(p),

so the 1x1 weights start as the teacher's kernel summed over space (and the teacher's bias);
depthwise kernels start as the identity (centre tap 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock, check_number
from tocsr_nas.surrogates.kinds import SamplerDims, sampler_dims
from tocsr_nas.surrogates.registry import register_surrogate

__all__ = ["PoolDown", "LightUp", "halve", "double", "init_pointwise_from_teacher", "init_depthwise_identity"]


def halve(x: torch.Tensor, ceil_mode: bool) -> torch.Tensor:
    """2x average-pooling down-sampling that matches the teacher's output size.

    Uses ``adaptive_avg_pool2d`` (which fvcore counts) with the teacher's output size: for even sides
    it is exactly a 2x2 stride-2 average pool.

    Args:
        x: ``(B, C, H, W)``.
        ceil_mode: odd sides round up (``ceil(H/2)``) instead of down.

    Returns:
        ``(B, C, H', W')`` with ``H' = ceil(H/2)`` or ``floor(H/2)``.
    """
    h, w = x.shape[-2:]
    if ceil_mode:
        size = ((h + 1) // 2, (w + 1) // 2)
    else:
        size = (h // 2, w // 2)
    return F.adaptive_avg_pool2d(x, size)  # (B, C, H', W')


def double(x: torch.Tensor, output_size: tuple[int, int] | None) -> torch.Tensor:
    """Nearest-neighbour 2x up-sampling, or to ``output_size`` when the caller gives one.

    Args:
        x: ``(B, C, H, W)``.
        output_size: the size the UNet asks for (odd skip-connection sizes), or ``None``.

    Returns:
        ``(B, C, 2H, 2W)`` or ``(B, C, *output_size)``.
    """
    if output_size is None:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, size=output_size, mode="nearest")


@torch.no_grad()
def init_pointwise_from_teacher(conv: nn.Conv2d, dims: SamplerDims) -> bool:
    """Set a 1x1 ``conv`` (in -> out) to the teacher's 3x3 kernel summed over space.

    Returns:
        Whether the teacher had a (non-transposed) convolution to copy from.
    """
    if dims.conv_weight is None or dims.transposed:
        return False
    conv.weight.copy_(dims.conv_weight.sum(dim=(2, 3), keepdim=True))  # (out, in, 1, 1)
    if conv.bias is not None:
        if dims.conv_bias is None:
            conv.bias.zero_()
        else:
            conv.bias.copy_(dims.conv_bias)
    return True


@torch.no_grad()
def init_depthwise_identity(conv: nn.Conv2d) -> None:
    """Set a depthwise kxk ``conv`` to the identity (centre tap 1, bias 0)."""
    k = conv.kernel_size[0]
    conv.weight.zero_()
    conv.weight[:, :, k // 2, k // 2] = 1.0
    if conv.bias is not None:
        conv.bias.zero_()


@register_surrogate("pool_down")
class PoolDown(SurrogateBlock):
    """Average-pool 2x down-sampling followed by a 1x1 convolution.

    Replaces ``Downsample2D``: ``9 C_in C_out`` weights become ``C_in C_out``, at the same resolution.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        ceil_mode: odd sides become ``ceil(n/2)`` (as the teacher's padded 3x3 stride-2 conv does).

    Example:
        >>> from diffusers.models.downsampling import Downsample2D
        >>> from tocsr_nas.surrogates import build_surrogate
        >>> block = build_surrogate("pool_down", Downsample2D(8, use_conv=True))
        >>> tuple(block(torch.randn(1, 8, 6, 6)).shape)
        (1, 8, 3, 3)
    """

    replaces = ("downsample",)

    @register_to_config
    def __init__(self, *, in_channels: int, out_channels: int, ceil_mode: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    @classmethod
    def from_teacher(cls, block: nn.Module) -> PoolDown:
        """Build from a ``Downsample2D``; the 1x1 conv starts as the teacher's kernel summed over space."""
        dims = sampler_dims(block)
        surrogate = cls(in_channels=dims.in_channels, out_channels=dims.out_channels, ceil_mode=dims.ceil_mode)
        init_pointwise_from_teacher(surrogate.conv, dims)
        return surrogate

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        x = halve(hidden_states, self.config.ceil_mode)  # (B, C_in, H/2, W/2)
        return self.conv(x)  # (B, C_out, H/2, W/2)


@register_surrogate("light_up")
class LightUp(SurrogateBlock):
    """Nearest 2x up-sampling with a 1x1 convolution (and optionally a depthwise kxk).

    The 1x1 convolution runs BEFORE the up-sampling: a pointwise map commutes with nearest-neighbour
    up-sampling, so this is the same function at a quarter of the MACs. With ``kernel_size > 1`` a
    depthwise kxk convolution follows at the high resolution (it smooths the blocky nearest output,
    the job of the teacher's 3x3). Weights: ``C_in C_out (+ k^2 C_out)`` instead of ``9 C_in C_out``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``1`` (pointwise only) or an odd depthwise kernel size.
    """

    replaces = ("upsample",)
    example_params = ({}, {"kernel_size": 3})

    @register_to_config
    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.depthwise = None
        if kernel_size > 1:
            self.depthwise = nn.Conv2d(
                out_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=out_channels
            )

    @classmethod
    def from_teacher(cls, block: nn.Module, *, kernel_size: int = 1) -> LightUp:
        """Build from an ``Upsample2D``; 1x1 from the teacher's summed kernel, depthwise as identity.

        Args:
            block: the teacher ``Upsample2D``.
            kernel_size: odd depthwise kernel size at the high resolution; ``1`` for none.
        """
        kernel_size = check_number("light_up", "kernel_size", kernel_size, integer=True, low=1, odd=True)
        dims = sampler_dims(block)
        surrogate = cls(in_channels=dims.in_channels, out_channels=dims.out_channels, kernel_size=kernel_size)
        init_pointwise_from_teacher(surrogate.proj, dims)
        if surrogate.depthwise is not None:
            init_depthwise_identity(surrogate.depthwise)
        return surrogate

    def forward(
        self, hidden_states: torch.Tensor, output_size: tuple[int, int] | None = None, *args, **kwargs
    ) -> torch.Tensor:
        x = self.proj(hidden_states)  # (B, C_out, H, W)
        x = double(x, output_size)  # (B, C_out, 2H, 2W)
        if self.depthwise is not None:
            x = self.depthwise(x)
        return x
