"""``skip``: drop the block, keeping only what is needed for the shapes to fit.

========== =============================================================================
kind       what ``skip`` computes
========== =============================================================================
resnet     ``x``; a 1x1 projection when in != out channels (initialised from the
           teacher's ``conv_shortcut``, divided by its ``output_scale_factor``)
transformer ``x`` (a transformer block is a residual block with equal in/out channels)
downsample 2x average pool (+ 1x1 when channels change)
upsample   nearest 2x, or to ``output_size`` (+ 1x1 when channels change, applied first)
attention  ``x / rescale_output_factor`` for a residual ``Attention`` (a UNet2DModel attention
           block); zeros for one inside a transformer layer (its caller adds the residual)
basic_     ``x`` (a transformer layer is residual): DiT, PixArt and UNet transformer layers
transformer
========== =============================================================================
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock
from tocsr_nas.surrogates.blocks.samplers import double, halve, init_pointwise_from_teacher
from tocsr_nas.surrogates.errors import IncompatibleBlockError, SurrogateParamError
from tocsr_nas.surrogates.kinds import (
    KINDS,
    attention_dims,
    bind_call,
    block_kind,
    resnet_dims,
    sampler_dims,
    transformer_dims,
    transformer_output,
)
from tocsr_nas.surrogates.registry import register_surrogate

__all__ = ["Skip"]


@register_surrogate("skip")
class Skip(SurrogateBlock):
    """The cheapest stand-in for any block: identity, pooling or nearest up-sampling.

    ``forward`` accepts the call signature of the kind it was built for (``kind``) and returns
    what that kind returns. It replaces a block of any KNOWN kind (``replaces = ("*",)``).

    Args:
        kind: the teacher kind (``"resnet"``, ``"transformer"``, ``"downsample"``, ``"upsample"``).
        in_channels: input channels.
        out_channels: output channels; a 1x1 projection is added when they differ.
        ceil_mode: (downsample) odd sides become ``ceil(n/2)``.
        zero: (attention) return zeros: the block's caller adds the residual.
        scale: (attention) multiply the passed-through input by this (``1 / rescale_output_factor``).

    Example:
        >>> from diffusers.models.resnet import ResnetBlock2D
        >>> from tocsr_nas.surrogates import build_surrogate
        >>> teacher = ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=4, groups=4)
        >>> x = torch.randn(1, 8, 4, 4)
        >>> bool((build_surrogate("skip", teacher)(x, torch.randn(1, 4)) == x).all())
        True
    """

    replaces = ("*",)

    @register_to_config
    def __init__(
        self, *, kind: str, in_channels: int, out_channels: int, ceil_mode: bool = False, zero: bool = False, scale: float = 1.0
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise SurrogateParamError(f"surrogate 'skip': unknown block kind {kind!r}; kinds: {list(KINDS)}")
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    @classmethod
    def compatible(cls, block: nn.Module) -> bool:
        """Any block of a known kind (see :func:`~tocsr_nas.surrogates.kinds.block_kind`)."""
        return block_kind(block) is not None

    @classmethod
    def from_teacher(cls, block: nn.Module) -> Skip:
        """Build from any teacher block of a known kind."""
        kind = block_kind(block)
        ceil_mode, extra = False, {"zero": False, "scale": 1.0}
        if kind == "attention":
            adims = attention_dims(block)
            c_in, c_out = adims.query_dim, adims.out_dim
            if c_in != c_out:
                raise IncompatibleBlockError(f"skip cannot replace an Attention with query_dim {c_in} != out_dim {c_out}")
            extra = {"zero": not adims.residual, "scale": 1.0 / adims.rescale}
        elif kind == "basic_transformer":
            c_in = c_out = int(block.dim)
        elif kind == "resnet":
            dims = resnet_dims(block)
            c_in, c_out = dims.in_channels, dims.out_channels
        elif kind == "transformer":
            c_in = c_out = transformer_dims(block).in_channels
        else:
            sdims = sampler_dims(block)
            c_in, c_out, ceil_mode = sdims.in_channels, sdims.out_channels, sdims.ceil_mode
        surrogate = cls(kind=kind, in_channels=c_in, out_channels=c_out, ceil_mode=ceil_mode, **extra)
        if surrogate.proj is not None:
            with torch.no_grad():
                if kind == "resnet" and block.conv_shortcut is not None:
                    # teacher: (shortcut(x) + residual) / s  ->  skip: shortcut(x) / s
                    scale = 1.0 / dims.output_scale_factor
                    surrogate.proj.weight.copy_(block.conv_shortcut.weight * scale)
                    if block.conv_shortcut.bias is not None:
                        surrogate.proj.bias.copy_(block.conv_shortcut.bias * scale)
                    else:
                        surrogate.proj.bias.zero_()
                elif kind in ("downsample", "upsample"):
                    init_pointwise_from_teacher(surrogate.proj, sdims)
        return surrogate

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # Accept the kind's own call: the first argument is ``input_tensor`` for a ResNet block and
        # ``hidden_states`` otherwise, positional or by name.
        kind = self.config.kind
        call = bind_call(kind, args, kwargs)
        x = next(iter(call.values()))  # (B, C_in, H, W); tokens (B, N, D) for the transformer-layer kinds
        if kind == "attention":
            return torch.zeros_like(x) if self.config.zero else x * self.config.scale
        if kind == "basic_transformer":
            return x
        if kind == "downsample":
            x = halve(x, self.config.ceil_mode)
        if self.proj is not None:
            x = self.proj(x)  # (B, C_out, ., .)
        if kind == "upsample":
            x = double(x, call["output_size"])
        if kind == "transformer":
            return transformer_output(x, call["return_dict"])
        return x
