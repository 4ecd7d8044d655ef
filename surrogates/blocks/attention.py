"""Cheap stand-ins for the transformer-layer kinds: ``mean_attention`` and ``light_block``.

* ``mean_attention`` replaces a diffusers ``Attention`` (kind ``attention``: the attention blocks
  of a ``UNet2DModel``, or the ``attn1``/``attn2`` of any transformer layer) by attention with
  UNIFORM weights: every query receives the mean of the values, ``to_out(to_v(mean_k kv))``. It
  keeps the teacher's input norm, value and output projections (copied), residual and rescale, and
  costs ``O(N D)`` instead of ``O(N^2 D)`` (the value projection is applied to the mean, one token).
* ``light_block`` replaces a ``BasicTransformerBlock`` (kind ``basic_transformer``: one layer of a
  DiT, of PixArt, or of a UNet's ``Transformer2DModel``) by the same layer with a feed-forward
  ``ff_ratio`` times as wide (truncated from the teacher's) and, with ``self_attention=False``,
  without its self-attention. Every other weight is copied, so ``ff_ratio=1`` with self-attention
  is the teacher layer.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock, check_bool, check_number
from tocsr_nas.surrogates.errors import IncompatibleBlockError
from tocsr_nas.surrogates.kinds import attention_dims
from tocsr_nas.surrogates.registry import register_surrogate

__all__ = ["MeanAttention", "LightBlock", "basic_block_args"]


@register_surrogate("mean_attention")
class MeanAttention(SurrogateBlock):
    """Attention with uniform weights: each query gets the mean value (see the module docstring).

    The attention mask, if any, is ignored (a mask is not used by the denoisers this replaces).

    Args:
        query_dim: channels of ``hidden_states``.
        kv_dim: channels of the key/value input.
        inner_dim: width of the value projection.
        out_dim: output channels.
        spatial: the input is ``(B, C, H, W)`` (else tokens ``(B, N, C)``).
        residual: add the input to the output.
        rescale: divide the output by this.
        norm_groups: groups of the input GroupNorm (``None``: no norm).
        norm_eps: its epsilon.
        bias: the value projection has a bias.
        out_bias: the output projection has a bias.
    """

    replaces = ("attention",)

    @register_to_config
    def __init__(
        self, *, query_dim: int, kv_dim: int, inner_dim: int, out_dim: int, spatial: bool = False, residual: bool = False,
        rescale: float = 1.0, norm_groups: int | None = None, norm_eps: float = 1e-5, bias: bool = False, out_bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.group_norm = nn.GroupNorm(norm_groups, query_dim, eps=norm_eps, affine=True) if norm_groups else None
        self.to_v = nn.Linear(kv_dim, inner_dim, bias=bias)
        self.to_out = nn.Linear(inner_dim, out_dim, bias=out_bias)

    @classmethod
    def from_teacher(cls, block: nn.Module) -> MeanAttention:
        """Build from an ``Attention``, copying its norm, value and output projections."""
        d = attention_dims(block)
        surrogate = cls(
            query_dim=d.query_dim, kv_dim=d.kv_dim, inner_dim=d.inner_dim, out_dim=d.out_dim, spatial=d.spatial,
            residual=d.residual, rescale=d.rescale, norm_groups=d.norm_groups, norm_eps=d.norm_eps, bias=d.bias,
            out_bias=d.out_bias,
        )  # fmt: skip
        if d.cross and d.spatial:
            raise IncompatibleBlockError("mean_attention: a spatial cross-attention block is not supported")
        with torch.no_grad():
            if surrogate.group_norm is not None:
                surrogate.group_norm.load_state_dict(block.group_norm.state_dict())
            surrogate.to_v.load_state_dict(block.to_v.state_dict())
            surrogate.to_out.load_state_dict(block.to_out[0].state_dict())
        return surrogate

    def forward(
        self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None, attention_mask: Any = None, **cross_attention_kwargs: Any
    ) -> torch.Tensor:
        cfg = self.config
        residual = hidden_states
        x = hidden_states
        if cfg.spatial:
            b, c, h, w = x.shape
            x = x.reshape(b, c, h * w).transpose(1, 2)  # (B, N, C)
        if self.group_norm is not None:
            x = self.group_norm(x.transpose(1, 2)).transpose(1, 2)  # (B, N, C)
        kv = x if encoder_hidden_states is None else encoder_hidden_states  # (B, L, C_kv)
        value = self.to_out(self.to_v(kv.mean(dim=1, keepdim=True)))  # (B, 1, C_out): linear maps commute with the mean
        out = value.expand(-1, x.shape[1], -1)  # (B, N, C_out)
        if cfg.spatial:
            out = out.transpose(1, 2).reshape(residual.shape[0], -1, *residual.shape[2:])  # (B, C_out, H, W)
        if cfg.residual:
            out = out + residual
        return out / cfg.rescale


def basic_block_args(block: nn.Module) -> dict[str, Any]:
    """The ``BasicTransformerBlock(**args)`` arguments that rebuild ``block``'s architecture.

    Raises:
        IncompatibleBlockError: not a ``BasicTransformerBlock``, or a form not rebuilt here (gated
            attention, positional embeddings, continuous adaLN, i2vgen norms).
    """
    if not isinstance(block, BasicTransformerBlock):
        raise IncompatibleBlockError(f"expected a BasicTransformerBlock, got {type(block).__name__}")
    if block.norm_type in ("ada_norm_continuous", "layer_norm_i2vgen") or block.pos_embed is not None or hasattr(block, "fuser"):
        raise IncompatibleBlockError(f"BasicTransformerBlock with norm_type={block.norm_type!r} / gated attention / positions is not supported")
    ff_out = block.ff.net[2]
    return {
        "dim": int(block.dim),
        "num_attention_heads": int(block.num_attention_heads),
        "attention_head_dim": int(block.attention_head_dim),
        "cross_attention_dim": None if block.cross_attention_dim is None else int(block.cross_attention_dim),
        "activation_fn": str(block.activation_fn),
        "num_embeds_ada_norm": None if block.num_embeds_ada_norm is None else int(block.num_embeds_ada_norm),
        "attention_bias": bool(block.attention_bias),
        "only_cross_attention": bool(block.only_cross_attention),
        "double_self_attention": bool(block.double_self_attention),
        "upcast_attention": bool(block.attn1.upcast_attention),
        "norm_elementwise_affine": bool(block.norm_elementwise_affine),
        "norm_type": str(block.norm_type),
        "norm_eps": _layer_norm_eps(block),
        "ff_inner_dim": int(ff_out.in_features),
        "ff_bias": ff_out.bias is not None,
        "attention_out_bias": block.attn1.to_out[0].bias is not None,
    }


def _layer_norm_eps(block: nn.Module) -> float:
    for name in ("norm3", "norm2"):  # plain LayerNorms built with norm_eps (PixArt has no norm3)
        norm = getattr(block, name, None)
        if isinstance(norm, nn.LayerNorm):
            return float(norm.eps)
    return 1e-5


class _NoAttention(nn.Module):
    """Stands for a dropped attention inside a transformer layer: adds nothing."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.zeros_like(hidden_states)


@register_surrogate("light_block")
class LightBlock(SurrogateBlock):
    """A transformer layer with a narrower feed-forward and optionally no self-attention.

    Args:
        block_args: the teacher layer's ``BasicTransformerBlock`` arguments (:func:`basic_block_args`)
            with ``ff_inner_dim`` set to the narrower width.
        self_attention: keep ``attn1``.
    """

    replaces = ("basic_transformer",)
    example_params = ({"ff_ratio": 0.5}, {"ff_ratio": 0.25, "self_attention": False})

    @register_to_config
    def __init__(self, *, block_args: dict[str, Any], self_attention: bool = True) -> None:
        super().__init__()
        self.block = BasicTransformerBlock(**block_args)
        if not self_attention:
            self.block.attn1 = _NoAttention()

    @classmethod
    def from_teacher(cls, block: nn.Module, *, ff_ratio: float = 0.5, self_attention: bool = True) -> LightBlock:
        """Build from a ``BasicTransformerBlock``; ``ff_ratio`` in (0, 1] scales the feed-forward width."""
        ff_ratio = check_number("light_block", "ff_ratio", ff_ratio, low=0.0, low_open=True, high=1.0)
        self_attention = check_bool("light_block", "self_attention", self_attention)
        args = basic_block_args(block)
        teacher_k = args["ff_inner_dim"]
        k = max(1, round(ff_ratio * teacher_k))
        surrogate = cls(block_args={**args, "ff_inner_dim": k}, self_attention=self_attention)
        own, theirs = surrogate.block.state_dict(), block.state_dict()
        with torch.no_grad():
            for key, value in own.items():
                src = theirs[key]
                if key == "ff.net.0.proj.weight" or key == "ff.net.0.proj.bias":
                    halves = src.shape[0] // teacher_k  # 2 for GEGLU (value and gate), else 1
                    src = torch.cat([src[i * teacher_k : i * teacher_k + k] for i in range(halves)])  # (h k, D)
                elif key == "ff.net.2.weight":
                    src = src[:, :k]  # (D, K) -> (D, k)
                value.copy_(src)
        return surrogate

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: Any = None, encoder_hidden_states: Any = None,
        encoder_attention_mask: Any = None, timestep: Any = None, cross_attention_kwargs: Any = None,
        class_labels: Any = None, added_cond_kwargs: Any = None,
    ) -> torch.Tensor:  # fmt: skip
        return self.block(
            hidden_states, attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, timestep=timestep, cross_attention_kwargs=cross_attention_kwargs,
            class_labels=class_labels, added_cond_kwargs=added_cond_kwargs,
        )  # fmt: skip
