"""``conv_mixer``: an attention-free stand-in for a transformer block.

    y = x + pw_out(GELU(pw_in(dw_k(GroupNorm(x)))))

``dw_k`` is a depthwise kxk convolution (spatial mixing, the job attention did), ``pw_in``/``pw_out``
pointwise convolutions ``C -> round(C * expansion) -> C`` (channel mixing, the feed-forward's job).
Weights ``k^2 C + 2 C^2 e`` instead of the teacher's ``~ 2 C D + 12 D^2`` (D = heads * head_dim),
and MACs linear in the number of pixels instead of quadratic.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock, check_number
from tocsr_nas.surrogates.kinds import transformer_dims, transformer_output
from tocsr_nas.surrogates.registry import register_surrogate

__all__ = ["ConvMixer"]


@register_surrogate("conv_mixer")
class ConvMixer(SurrogateBlock):
    """GroupNorm -> depthwise kxk -> pointwise expand -> GELU -> pointwise back -> residual.

    Initialised from the teacher: the GroupNorm is the teacher's input norm; ``pw_out`` starts at
    zero, so the block starts as the identity (``skip``) and distillation grows it from there.

    Args:
        channels: channels in and out.
        norm_num_groups: GroupNorm groups.
        kernel_size: odd depthwise kernel size.
        hidden_channels: width between the pointwise convolutions.

    Example:
        >>> from diffusers.models.transformers.transformer_2d import Transformer2DModel
        >>> from tocsr_nas.surrogates import build_surrogate
        >>> teacher = Transformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=16,
        ...                              norm_num_groups=8)
        >>> mixer = build_surrogate("conv_mixer", teacher, kernel_size=5)
        >>> out = mixer(torch.randn(1, 16, 4, 4), return_dict=False)[0]
        >>> tuple(out.shape)
        (1, 16, 4, 4)
    """

    replaces = ("transformer",)
    example_params = ({}, {"kernel_size": 5, "expansion": 2.0})

    @register_to_config
    def __init__(self, *, channels: int, norm_num_groups: int = 32, kernel_size: int = 3, hidden_channels: int = 0):
        super().__init__()
        hidden = hidden_channels or channels
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6, affine=True)
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.pw_in = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.GELU()
        self.pw_out = nn.Conv2d(hidden, channels, kernel_size=1)

    @classmethod
    def from_teacher(cls, block: nn.Module, *, kernel_size: int = 3, expansion: float = 1.0) -> ConvMixer:
        """Build from a ``Transformer2DModel``.

        Args:
            block: the teacher ``Transformer2DModel``.
            kernel_size: odd depthwise kernel size (>= 1).
            expansion: hidden width / channels (> 0).
        """
        kernel_size = check_number("conv_mixer", "kernel_size", kernel_size, integer=True, low=1, odd=True)
        expansion = check_number("conv_mixer", "expansion", expansion, low=0.0, low_open=True)
        dims = transformer_dims(block)
        surrogate = cls(
            channels=dims.in_channels,
            norm_num_groups=dims.groups,
            kernel_size=kernel_size,
            hidden_channels=max(1, round(dims.in_channels * expansion)),
        )
        with torch.no_grad():
            surrogate.norm.load_state_dict(block.norm.state_dict())
            surrogate.pw_out.weight.zero_()
            surrogate.pw_out.bias.zero_()
        return surrogate

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        timestep: torch.LongTensor | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        class_labels: torch.LongTensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Any:
        x = self.depthwise(self.norm(hidden_states))  # (B, C, H, W)
        x = self.pw_out(self.act(self.pw_in(x)))  # (B, C_hidden, H, W) -> (B, C, H, W)
        return transformer_output(hidden_states + x, return_dict)
