"""``light_transformer``: one diffusers ``BasicTransformerBlock`` with optional cross-attention and a
narrower feed-forward.

The teacher ``Transformer2DModel`` (SD2.1 style) is

    x -> GroupNorm -> proj_in -> [self-attn, cross-attn, GEGLU feed-forward (inner 4 D)] x L -> proj_out -> + x

The light block keeps the frame (norm, proj_in/proj_out in the teacher's linear or 1x1-conv
convention, residual) and one transformer layer with self-attention, cross-attention only if
asked for, and a feed-forward of inner width ``round(D * ff_mult)``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from einops import rearrange
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock, check_bool, check_number
from tocsr_nas.surrogates.errors import SurrogateParamError
from tocsr_nas.surrogates.kinds import transformer_dims, transformer_output
from tocsr_nas.surrogates.registry import register_surrogate

__all__ = ["LightTransformer", "mask_to_bias"]


def mask_to_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Turn a ``(B, L)`` keep-mask into an additive ``(B, 1, L)`` bias, as ``Transformer2DModel`` does.

    ``bias = (1 - mask) * -10000``: kept tokens add 0, discarded ones -10000 to the attention scores.
    A mask that is already a bias (``ndim != 2``) or ``None`` is returned unchanged.
    """
    if mask is None or mask.ndim != 2:
        return mask
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)  # (B, 1, L)


@register_surrogate("light_transformer")
class LightTransformer(SurrogateBlock):
    """A one-layer transformer block with optional cross-attention and a narrower feed-forward.

    Built from diffusers' ``BasicTransformerBlock`` (``Attention`` + ``FeedForward``).

    Initialised from the teacher: ``norm``, ``proj_in``, ``proj_out`` and, from the teacher's FIRST
    layer, ``norm1``/``attn1`` (and ``norm2``/``attn2`` with cross-attention) and ``norm3`` are
    copied; the feed-forward is truncated to its first ``ff_inner_dim`` hidden units (for GEGLU, in
    both the value and the gate halves) when it is not wider than the teacher's, else left at
    random init. With ``ff_mult`` equal to the teacher's, ``cross_attention=True`` and a one-layer
    teacher the block computes exactly the teacher's function.

    Args:
        in_channels: channels of ``hidden_states`` (and of the output).
        num_attention_heads: attention heads.
        attention_head_dim: channels per head.
        norm_num_groups: GroupNorm groups of the input norm.
        cross_attention_dim: width of ``encoder_hidden_states``; ``None`` for no cross-attention.
        use_linear_projection: ``proj_in``/``proj_out`` are linear (else 1x1 convs).
        ff_inner_dim: inner width of the feed-forward.
        activation_fn: feed-forward activation (``"geglu"``, ``"gelu"``, ...).
        attention_bias: q/k/v projections have a bias.
        upcast_attention: compute attention in float32.
        norm_elementwise_affine: LayerNorms have weights.
        norm_eps: LayerNorm epsilon.
    """

    replaces = ("transformer",)
    # The default (ff_mult=4, no cross-attention) on a teacher WITHOUT cross-attention is the teacher's
    # size, so the conformance examples name narrower feed-forwards.
    example_params = ({"ff_mult": 2.0}, {"ff_mult": 1.0, "cross_attention": True}, {"ff_mult": 0.5})

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int,
        num_attention_heads: int,
        attention_head_dim: int,
        norm_num_groups: int = 32,
        cross_attention_dim: int | None = None,
        use_linear_projection: bool = False,
        ff_inner_dim: int = 1,
        activation_fn: str = "geglu",
        attention_bias: bool = False,
        upcast_attention: bool = False,
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner_dim)
            self.proj_out = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
            self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(
                    inner_dim,
                    num_attention_heads,
                    attention_head_dim,
                    cross_attention_dim=cross_attention_dim,
                    activation_fn=activation_fn,
                    attention_bias=attention_bias,
                    upcast_attention=upcast_attention,
                    norm_elementwise_affine=norm_elementwise_affine,
                    norm_eps=norm_eps,
                    ff_inner_dim=ff_inner_dim,
                )
            ]
        )

    @classmethod
    def from_teacher(
        cls, block: nn.Module, *, ff_mult: float = 4.0, cross_attention: bool = False
    ) -> LightTransformer:
        """Build from a ``Transformer2DModel``.

        Args:
            block: the teacher ``Transformer2DModel``.
            ff_mult: feed-forward inner width as a multiple of the token width ``heads * head_dim``
                (the teacher's is 4).
            cross_attention: keep cross-attention on ``encoder_hidden_states`` (the teacher must have it).

        Raises:
            SurrogateParamError: ``ff_mult <= 0``, or ``cross_attention`` on a teacher without it.
        """
        ff_mult = check_number("light_transformer", "ff_mult", ff_mult, low=0.0, low_open=True)
        cross_attention = check_bool("light_transformer", "cross_attention", cross_attention)
        dims = transformer_dims(block)
        if cross_attention and dims.cross_attention_dim is None:
            raise SurrogateParamError(
                "surrogate 'light_transformer': cross_attention=true, but the teacher block has no "
                "cross-attention (cross_attention_dim is None); use cross_attention=false"
            )
        ff_inner = max(1, round(dims.inner_dim * ff_mult))
        surrogate = cls(
            in_channels=dims.in_channels,
            num_attention_heads=dims.heads,
            attention_head_dim=dims.head_dim,
            norm_num_groups=dims.groups,
            cross_attention_dim=dims.cross_attention_dim if cross_attention else None,
            use_linear_projection=dims.use_linear_projection,
            ff_inner_dim=ff_inner,
            activation_fn=dims.activation_fn,
            attention_bias=dims.attention_bias,
            upcast_attention=dims.upcast_attention,
            norm_elementwise_affine=dims.norm_elementwise_affine,
            norm_eps=dims.norm_eps,
        )
        surrogate._copy_from(block, cross_attention=cross_attention, teacher_ff_inner=dims.ff_inner_dim)
        return surrogate

    @torch.no_grad()
    def _copy_from(self, block: nn.Module, *, cross_attention: bool, teacher_ff_inner: int) -> None:
        for name in ("norm", "proj_in", "proj_out"):
            getattr(self, name).load_state_dict(getattr(block, name).state_dict())
        ours, theirs = self.transformer_blocks[0], block.transformer_blocks[0]
        copied = ["norm1", "attn1", "norm3"] + (["norm2", "attn2"] if cross_attention else [])
        for name in copied:
            getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())
        k, big_k = self.config.ff_inner_dim, teacher_ff_inner
        if k > big_k:
            return
        act_in, act_out = ours.ff.net[0].proj, theirs.ff.net[0].proj  # Linear(D, K) or Linear(D, 2K) (GEGLU)
        if act_out.out_features == 2 * big_k:  # gated: [value (K) | gate (K)]
            rows = torch.cat([torch.arange(k), big_k + torch.arange(k)])
        else:
            rows = torch.arange(k)
        act_in.weight.copy_(act_out.weight[rows])
        if act_in.bias is not None:
            act_in.bias.copy_(act_out.bias[rows])
        out_ours, out_theirs = ours.ff.net[2], theirs.ff.net[2]  # Linear(K, D)
        out_ours.weight.copy_(out_theirs.weight[:, :k])
        if out_ours.bias is not None:
            out_ours.bias.copy_(out_theirs.bias)

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
        cfg = self.config
        height, width = hidden_states.shape[-2:]  # (B, C, H, W)
        residual = hidden_states
        x = self.norm(hidden_states)
        if cfg.use_linear_projection:
            x = rearrange(x, "b c h w -> b (h w) c")
            x = self.proj_in(x)  # (B, HW, D)
        else:
            x = self.proj_in(x)  # (B, D, H, W)
            x = rearrange(x, "b d h w -> b (h w) d")
        cross = cfg.cross_attention_dim is not None
        x = self.transformer_blocks[0](
            x,
            attention_mask=mask_to_bias(attention_mask, x.dtype),
            encoder_hidden_states=encoder_hidden_states if cross else None,
            encoder_attention_mask=mask_to_bias(encoder_attention_mask, x.dtype) if cross else None,
            cross_attention_kwargs=cross_attention_kwargs,
        )  # (B, HW, D)
        if cfg.use_linear_projection:
            x = self.proj_out(x)  # (B, HW, C)
            x = rearrange(x, "b (h w) c -> b c h w", h=height, w=width)
        else:
            x = rearrange(x, "b (h w) d -> b d h w", h=height, w=width)
            x = self.proj_out(x)  # (B, C, H, W)
        return transformer_output(x + residual, return_dict)
