"""Cheaper ResNet blocks: ``bottleneck_resnet`` and ``dwsep_resnet``.

Both keep the teacher ``ResnetBlock2D``'s layout and time conditioning,

    h = conv_a(act(norm1(x)))                               # (B, C_mid, H, W)
    h = norm2(h + proj(act(temb)))             "default"    # shift
    h = norm2(h) * (1 + scale) + shift         "scale_shift" # FiLM, (scale, shift) = proj(act(temb))
    y = (shortcut(x) + conv_b(act(h))) / output_scale_factor

and change only the convolutions ``conv_a`` / ``conv_b`` (teacher: two full 3x3 convs, in -> out
-> out).
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.activations import get_activation
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock, check_number
from tocsr_nas.surrogates.blocks.samplers import init_depthwise_identity
from tocsr_nas.surrogates.kinds import ResnetDims, resnet_dims
from tocsr_nas.surrogates.registry import register_surrogate

__all__ = ["BottleneckResnet", "DwsepResnet", "bottleneck_width", "divisor_groups"]


def bottleneck_width(out_channels: int, ratio: float) -> int:
    """Inner width of a bottleneck: ``out * ratio`` rounded to the nearest integer, at least 1.

    Args:
        out_channels: the block's output channels.
        ratio: the bottleneck ratio in ``(0, 1]``.

    Returns:
        ``max(1, floor(out * ratio + 1/2))`` (halves round up), so different ratios give different
        widths wherever ``out * ratio`` differs by a channel or more.

    Example:
        >>> bottleneck_width(320, 0.25), bottleneck_width(64, 0.125), bottleneck_width(4, 0.1)
        (80, 8, 1)
    """
    return max(1, math.floor(out_channels * ratio + 0.5))


def divisor_groups(channels: int, groups: int) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of ``channels`` not above ``groups``.

    Args:
        channels: channels the norm normalises.
        groups: the most groups wanted (the teacher's group count).

    Returns:
        ``groups`` itself when it divides ``channels``, else the next smaller divisor (1 at worst).

    Example:
        >>> divisor_groups(320, 32), divisor_groups(40, 32), divisor_groups(8, 32), divisor_groups(7, 4)
        (32, 20, 8, 1)
    """
    return next(g for g in range(min(groups, channels), 0, -1) if channels % g == 0)


class _ResnetLike(SurrogateBlock):
    """Shared forward of the ResNet surrogates (not registered; subclasses define the convs)."""

    def _build_common(self, *, mid_channels: int, groups_out: int) -> None:
        """Norms, time projection, activation and shortcut around a ``mid_channels`` wide middle.

        Everything else (channels, groups, eps, activation, time-embedding norm) is read from
        ``self.config``, which ``@register_to_config`` fills before ``__init__`` runs.
        """
        cfg = self.config
        if cfg.time_embedding_norm not in ("default", "scale_shift"):
            raise ValueError(f"time_embedding_norm must be 'default' or 'scale_shift', got {cfg.time_embedding_norm!r}")
        self.norm1 = nn.GroupNorm(cfg.groups, cfg.in_channels, eps=cfg.eps, affine=True)
        self.time_emb_proj = None
        if cfg.temb_channels is not None:
            width = 2 * mid_channels if cfg.time_embedding_norm == "scale_shift" else mid_channels
            self.time_emb_proj = nn.Linear(cfg.temb_channels, width)
        self.norm2 = nn.GroupNorm(groups_out, mid_channels, eps=cfg.eps, affine=True)
        self.nonlinearity = get_activation(cfg.non_linearity)
        self.conv_shortcut = None
        if cfg.in_channels != cfg.out_channels:
            self.conv_shortcut = nn.Conv2d(cfg.in_channels, cfg.out_channels, kernel_size=1)

    def _conv_a(self, h: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_mid, H, W)
        raise NotImplementedError

    def _conv_b(self, h: torch.Tensor) -> torch.Tensor:  # (B, C_mid, H, W) -> (B, C_out, H, W)
        raise NotImplementedError

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        cfg = self.config
        h = self._conv_a(self.nonlinearity(self.norm1(input_tensor)))  # (B, C_mid, H, W)
        t = None
        if self.time_emb_proj is not None and temb is not None:
            if not cfg.skip_time_act:
                temb = self.nonlinearity(temb)
            t = self.time_emb_proj(temb)[:, :, None, None]  # (B, C_mid or 2 C_mid, 1, 1)
        if cfg.time_embedding_norm == "default":
            if t is not None:
                h = h + t
            h = self.norm2(h)
        else:
            h = self.norm2(h)
            if t is not None:
                scale, shift = t.chunk(2, dim=1)
                h = h * (1 + scale) + shift
        h = self._conv_b(self.nonlinearity(h))  # (B, C_out, H, W)
        shortcut = input_tensor if self.conv_shortcut is None else self.conv_shortcut(input_tensor)
        return (shortcut + h) / cfg.output_scale_factor

    @torch.no_grad()
    def _copy_shared_from(self, block: nn.Module, mid: int) -> None:
        """Copy norm1, the first ``mid`` channels of norm2 / time_emb_proj, and the shortcut."""
        self.norm1.load_state_dict(block.norm1.state_dict())
        self.norm2.weight.copy_(block.norm2.weight[:mid])
        self.norm2.bias.copy_(block.norm2.bias[:mid])
        if self.time_emb_proj is not None:
            w, b = block.time_emb_proj.weight, block.time_emb_proj.bias
            if self.config.time_embedding_norm == "scale_shift":
                out = block.norm2.num_channels  # teacher layout: [scale (out) | shift (out)]
                rows = torch.cat([torch.arange(mid), out + torch.arange(mid)])
                w, b = w[rows], b[rows]
            else:
                w, b = w[:mid], b[:mid]
            self.time_emb_proj.weight.copy_(w)
            self.time_emb_proj.bias.copy_(b)
        if self.conv_shortcut is not None and block.conv_shortcut is not None:
            self.conv_shortcut.weight.copy_(block.conv_shortcut.weight)
            if self.conv_shortcut.bias is not None:
                teacher_bias = block.conv_shortcut.bias
                self.conv_shortcut.bias.copy_(0 if teacher_bias is None else teacher_bias)


def _common_config(dims: ResnetDims) -> dict:
    return dict(
        in_channels=dims.in_channels,
        out_channels=dims.out_channels,
        temb_channels=dims.temb_channels,
        groups=dims.groups,
        groups_out=dims.groups_out,
        eps=dims.eps,
        non_linearity=dims.non_linearity,
        time_embedding_norm=dims.time_embedding_norm,
        skip_time_act=dims.skip_time_act,
        output_scale_factor=dims.output_scale_factor,
    )


@register_surrogate("bottleneck_resnet")
class BottleneckResnet(_ResnetLike):
    """A ResNet block whose middle is ``inner_channels`` wide instead of ``out_channels``.

    ``conv1``: 3x3 in -> inner, the time embedding projects into the inner width, ``conv2``: 3x3
    inner -> out; 1x1 shortcut when in != out. Weights ``9 inner (in + out)`` instead of
    ``9 out (in + out)``.

    ``from_teacher(block, ratio=r)`` makes the bottleneck ``inner = round(r * out)`` channels wide
    (:func:`bottleneck_width`, at least 1), so each ratio means what it says and different ratios
    give different blocks whenever they differ by a channel. The norm over the bottleneck uses the
    largest divisor of ``inner`` not above the teacher's group count (:func:`divisor_groups`; the
    teacher's own count when it divides ``inner``, e.g. 32 groups at ``inner = 160``, 20 at 40).

    Initialised from the teacher by truncation: ``norm1`` and the shortcut are copied; ``conv1``,
    ``norm2`` and ``time_emb_proj`` keep the teacher's first ``inner`` output channels and
    ``conv2`` its first ``inner`` input channels (``ratio=1`` reproduces the teacher exactly).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        inner_channels: bottleneck width.
        temb_channels: time-embedding width, ``None`` for none.
        groups: GroupNorm groups over the input.
        groups_out: GroupNorm groups over the bottleneck (must divide ``inner_channels``);
            ``None``: ``divisor_groups(inner_channels, groups)``.
        eps: GroupNorm epsilon.
        non_linearity: activation name.
        time_embedding_norm: ``"default"`` or ``"scale_shift"``.
        skip_time_act: feed ``temb`` to the projection without the activation.
        output_scale_factor: divides the output.
    """

    replaces = ("resnet",)
    example_params = ({"ratio": 0.5}, {"ratio": 0.25})

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        inner_channels: int,
        temb_channels: int | None = None,
        groups: int = 32,
        groups_out: int | None = None,
        eps: float = 1e-6,
        non_linearity: str = "silu",
        time_embedding_norm: str = "default",
        skip_time_act: bool = False,
        output_scale_factor: float = 1.0,
    ) -> None:
        super().__init__()
        groups_out = divisor_groups(inner_channels, groups) if groups_out is None else groups_out
        self._build_common(mid_channels=inner_channels, groups_out=groups_out)
        self.conv1 = nn.Conv2d(in_channels, inner_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(inner_channels, out_channels, kernel_size=3, padding=1)

    @classmethod
    def from_teacher(cls, block: nn.Module, *, ratio: float = 0.5) -> BottleneckResnet:
        """Build from a ``ResnetBlock2D``, truncating its weights to the bottleneck.

        Args:
            block: the teacher ``ResnetBlock2D``.
            ratio: inner width / out channels, in ``(0, 1]``; see :func:`bottleneck_width` and
                :func:`divisor_groups` for the width and groups it resolves to.
        """
        ratio = check_number("bottleneck_resnet", "ratio", ratio, low=0.0, low_open=True, high=1.0)
        dims = resnet_dims(block)
        inner = bottleneck_width(dims.out_channels, ratio)
        config = _common_config(dims)
        config["groups_out"] = divisor_groups(inner, dims.groups_out)
        surrogate = cls(inner_channels=inner, **config)
        if inner <= dims.out_channels:
            with torch.no_grad():
                surrogate._copy_shared_from(block, inner)
                surrogate.conv1.weight.copy_(block.conv1.weight[:inner])
                surrogate.conv1.bias.copy_(block.conv1.bias[:inner])
                surrogate.conv2.weight.copy_(block.conv2.weight[:, :inner])
                surrogate.conv2.bias.copy_(block.conv2.bias)
        return surrogate

    def _conv_a(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv1(h)

    def _conv_b(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(h)


@register_surrogate("dwsep_resnet")
class DwsepResnet(_ResnetLike):
    """A ResNet block with depthwise-separable convolutions.

    Each 3x3 full convolution (``9 C_in C_out`` weights) becomes a depthwise 3x3 (``9 C_in``)
    followed by a pointwise 1x1 (``C_in C_out``); time conditioning and shortcut as the teacher's.

    Initialised from the teacher: ``norm1``, ``norm2``, ``time_emb_proj`` and the shortcut are
    copied; each depthwise conv starts as the identity and each pointwise conv as the teacher's
    3x3 kernel summed over space (the teacher's response to locally constant features).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        temb_channels: time-embedding width, ``None`` for none.
        groups: GroupNorm groups over the input.
        groups_out: GroupNorm groups over the output.
        eps: GroupNorm epsilon.
        non_linearity: activation name.
        time_embedding_norm: ``"default"`` or ``"scale_shift"``.
        skip_time_act: feed ``temb`` to the projection without the activation.
        output_scale_factor: divides the output.
    """

    replaces = ("resnet",)

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        temb_channels: int | None = None,
        groups: int = 32,
        groups_out: int | None = None,
        eps: float = 1e-6,
        non_linearity: str = "silu",
        time_embedding_norm: str = "default",
        skip_time_act: bool = False,
        output_scale_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self._build_common(mid_channels=out_channels, groups_out=groups if groups_out is None else groups_out)
        self.depthwise1 = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise1 = nn.Conv2d(in_channels, out_channels, 1)
        self.depthwise2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels)
        self.pointwise2 = nn.Conv2d(out_channels, out_channels, 1)

    @classmethod
    def from_teacher(cls, block: nn.Module) -> DwsepResnet:
        """Build from a ``ResnetBlock2D`` (see the class docstring for the initialisation)."""
        dims = resnet_dims(block)
        surrogate = cls(**_common_config(dims))
        with torch.no_grad():
            surrogate._copy_shared_from(block, dims.out_channels)
            for dw, pw, conv in (
                (surrogate.depthwise1, surrogate.pointwise1, block.conv1),
                (surrogate.depthwise2, surrogate.pointwise2, block.conv2),
            ):
                init_depthwise_identity(dw)
                pw.weight.copy_(conv.weight.sum(dim=(2, 3), keepdim=True))  # (out, in, 1, 1)
                pw.bias.copy_(conv.bias)
        return surrogate

    def _conv_a(self, h: torch.Tensor) -> torch.Tensor:
        return self.pointwise1(self.depthwise1(h))

    def _conv_b(self, h: torch.Tensor) -> torch.Tensor:
        return self.pointwise2(self.depthwise2(h))
