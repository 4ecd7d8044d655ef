"""The kinds of teacher blocks a surrogate can replace, and how to read their dimensions.

A *kind* is a short name for a family of diffusers blocks that share one call signature:

========== ================================================ ==========================================
kind       teacher class                                    call signature -> result
========== ================================================ ==========================================
resnet     ``diffusers.models.resnet.ResnetBlock2D``        ``(input_tensor, temb) -> Tensor``
transformer ``...transformers.transformer_2d.Transformer2DModel`` ``(hidden_states, encoder_hidden_states=None,
                                                            ..., return_dict=True) -> Transformer2DModelOutput``
downsample ``diffusers.models.downsampling.Downsample2D``   ``(hidden_states) -> Tensor`` (2x smaller)
upsample   ``diffusers.models.upsampling.Upsample2D``       ``(hidden_states, output_size=None) -> Tensor``
========== ================================================ ==========================================

A new kind is one line in ``_KIND_TABLE`` (plus, if surrogates need them, a dimension reader and an
entry in :func:`example_inputs`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.upsampling import Upsample2D
from torch import nn

from tocsr_nas.surrogates.errors import IncompatibleBlockError

__all__ = [
    "KINDS",
    "ANY_KIND",
    "block_kind",
    "call_signature",
    "bind_call",
    "transformer_output",
    "ResnetDims",
    "TransformerDims",
    "SamplerDims",
    "resnet_dims",
    "transformer_dims",
    "AttentionDims",
    "attention_dims",
    "sampler_dims",
    "example_inputs",
    "block_output",
]

#: (teacher class, kind). The first class the module is an instance of decides its kind.
_KIND_TABLE: tuple[tuple[type[nn.Module], str], ...] = (
    (ResnetBlock2D, "resnet"),
    (Transformer2DModel, "transformer"),
    (Downsample2D, "downsample"),
    (Upsample2D, "upsample"),
    (Attention, "attention"),
    (BasicTransformerBlock, "basic_transformer"),
)

#: Every kind, in table order.
KINDS: tuple[str, ...] = tuple(kind for _, kind in _KIND_TABLE)

#: The wildcard in ``SurrogateBlock.replaces``: the type can stand in for a block of any kind.
ANY_KIND = "*"


def block_kind(module: nn.Module) -> str | None:
    """The kind of a teacher block, or ``None`` if no surrogate type can replace it.

    Args:
        module: any module, typically one of ``unet.named_modules()``.

    Returns:
        ``"resnet"``, ``"transformer"``, ``"downsample"``, ``"upsample"``, ``"attention"`` (diffusers
        ``Attention``: the attention blocks of ``UNet2DModel``, or the ``attn1``/``attn2`` of a
        transformer layer), ``"basic_transformer"`` (``BasicTransformerBlock``: one layer of a
        UNet's ``Transformer2DModel``, of a DiT or of PixArt) or ``None``.

    Example:
        >>> from diffusers.models.downsampling import Downsample2D
        >>> block_kind(Downsample2D(8, use_conv=True))
        'downsample'
    """
    for cls, kind in _KIND_TABLE:
        if isinstance(module, cls):
            return kind
    return None


def call_signature(kind: str) -> inspect.Signature:
    """The call signature of the teacher blocks of ``kind`` (their ``forward`` without ``self``).

    A surrogate replacing ``kind`` must accept exactly these arguments.

    Raises:
        ValueError: unknown kind.
    """
    for cls, k in _KIND_TABLE:
        if k == kind:
            sig = inspect.signature(cls.forward)
            return sig.replace(parameters=list(sig.parameters.values())[1:])
    raise ValueError(f"unknown block kind {kind!r}; kinds: {list(KINDS)}")


def bind_call(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind a call to the signature of ``kind`` and return every named argument (defaults applied).

    Used by surrogates that accept several kinds (``skip``) to read e.g. ``return_dict`` or
    ``output_size`` wherever the caller put it.

    Raises:
        TypeError: the call does not fit the signature, as it would for the teacher block.
    """
    bound = call_signature(kind).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def transformer_output(sample: torch.Tensor, return_dict: bool) -> Transformer2DModelOutput | tuple[torch.Tensor]:
    """Package a transformer-kind result the way ``Transformer2DModel.forward`` does.

    Args:
        sample: the output tensor ``(B, C, H, W)``.
        return_dict: the caller's ``return_dict``.

    Returns:
        ``Transformer2DModelOutput(sample=sample)`` or ``(sample,)``.
    """
    if not return_dict:
        return (sample,)
    return Transformer2DModelOutput(sample=sample)


def _require_kind(block: nn.Module, kind: str) -> None:
    found = block_kind(block)
    if found != kind:
        raise IncompatibleBlockError(
            f"expected a {kind} block ({dict((k, c.__name__) for c, k in _KIND_TABLE)[kind]}), "
            f"got {type(block).__name__} (kind {found!r})"
        )


def _activation_name(module: nn.Module) -> str:
    names = {nn.SiLU: "silu", nn.Mish: "mish", nn.GELU: "gelu", nn.ReLU: "relu"}
    for cls, name in names.items():
        if isinstance(module, cls):
            return name
    raise IncompatibleBlockError(
        f"unsupported activation {type(module).__name__} in the teacher block; "
        f"supported: {sorted(names.values())}"
    )


@dataclass(frozen=True)
class ResnetDims:
    """What a surrogate needs to know about a teacher ``ResnetBlock2D``.

    Attributes:
        in_channels: channels of ``input_tensor``.
        out_channels: channels of the output.
        temb_channels: width of ``temb``; ``None`` when the block ignores the time embedding.
        groups: GroupNorm groups of the first norm (over ``in_channels``).
        groups_out: GroupNorm groups of the second norm (over ``out_channels``).
        eps: GroupNorm epsilon.
        non_linearity: activation name for ``diffusers.models.activations.get_activation``.
        time_embedding_norm: ``"default"`` (add) or ``"scale_shift"`` (FiLM after the second norm).
        skip_time_act: whether ``temb`` goes into the projection without the activation.
        output_scale_factor: the output is ``(shortcut + residual) / output_scale_factor``.
    """

    in_channels: int
    out_channels: int
    temb_channels: int | None
    groups: int
    groups_out: int
    eps: float
    non_linearity: str
    time_embedding_norm: str
    skip_time_act: bool
    output_scale_factor: float


def resnet_dims(block: nn.Module) -> ResnetDims:
    """Read the dimensions of a ``ResnetBlock2D``.

    Raises:
        IncompatibleBlockError: not a ResnetBlock2D, or one that resamples (``up``/``down``).
    """
    _require_kind(block, "resnet")
    if block.up or block.down:
        raise IncompatibleBlockError(
            "ResnetBlock2D with up=True or down=True changes the resolution; surrogates only replace "
            "resolution-preserving ResNet blocks (use a sampler rule for resampling)"
        )
    proj = block.time_emb_proj
    return ResnetDims(
        in_channels=int(block.in_channels),
        out_channels=int(block.conv2.out_channels),
        temb_channels=None if proj is None else int(proj.in_features),
        groups=int(block.norm1.num_groups),
        groups_out=int(block.norm2.num_groups),
        eps=float(block.norm1.eps),
        non_linearity=_activation_name(block.nonlinearity),
        # without a time embedding the norm mode has no effect (a VAE's blocks say "group")
        time_embedding_norm="default" if proj is None else str(block.time_embedding_norm),
        skip_time_act=bool(block.skip_time_act),
        output_scale_factor=float(block.output_scale_factor),
    )


@dataclass(frozen=True)
class TransformerDims:
    """What a surrogate needs to know about a teacher ``Transformer2DModel`` (continuous input).

    Attributes:
        in_channels: channels of ``hidden_states`` (the output has the same, it is a residual block).
        heads: attention heads.
        head_dim: channels per head.
        inner_dim: ``heads * head_dim``, the token width between ``proj_in`` and ``proj_out``.
        groups: GroupNorm groups of the input norm.
        cross_attention_dim: width of ``encoder_hidden_states``; ``None`` without cross-attention.
        use_linear_projection: ``proj_in``/``proj_out`` are ``nn.Linear`` (else 1x1 ``nn.Conv2d``).
        activation_fn: feed-forward activation (``"geglu"`` in SD).
        ff_inner_dim: inner width of the teacher's feed-forward.
        attention_bias: q/k/v projections have a bias.
        upcast_attention: attention computed in float32.
        norm_eps: LayerNorm epsilon.
        norm_elementwise_affine: LayerNorms have weights.
        num_layers: number of ``BasicTransformerBlock`` in the teacher.
    """

    in_channels: int
    heads: int
    head_dim: int
    inner_dim: int
    groups: int
    cross_attention_dim: int | None
    use_linear_projection: bool
    activation_fn: str
    ff_inner_dim: int
    attention_bias: bool
    upcast_attention: bool
    norm_eps: float
    norm_elementwise_affine: bool
    num_layers: int


def transformer_dims(block: nn.Module) -> TransformerDims:
    """Read the dimensions of a continuous-input ``Transformer2DModel``.

    Raises:
        IncompatibleBlockError: not a Transformer2DModel, or a patched/vectorised/ada-norm one.
    """
    _require_kind(block, "transformer")
    cfg = block.config
    if not block.is_input_continuous or cfg.norm_type != "layer_norm":
        raise IncompatibleBlockError(
            "only continuous-input Transformer2DModel blocks with norm_type='layer_norm' (the UNet's "
            f"attention blocks) can be replaced; got norm_type={cfg.norm_type!r}, patch_size={cfg.patch_size}"
        )
    if block.out_channels != block.in_channels:
        raise IncompatibleBlockError("Transformer2DModel with out_channels != in_channels is not supported")
    first = block.transformer_blocks[0]
    return TransformerDims(
        in_channels=int(block.in_channels),
        heads=int(cfg.num_attention_heads),
        head_dim=int(cfg.attention_head_dim),
        inner_dim=int(block.inner_dim),
        groups=int(cfg.norm_num_groups),
        cross_attention_dim=None if cfg.cross_attention_dim is None else int(cfg.cross_attention_dim),
        use_linear_projection=bool(cfg.use_linear_projection),
        activation_fn=str(cfg.activation_fn),
        ff_inner_dim=int(first.ff.net[2].in_features),
        attention_bias=bool(cfg.attention_bias),
        upcast_attention=bool(cfg.upcast_attention),
        norm_eps=float(cfg.norm_eps),
        norm_elementwise_affine=bool(cfg.norm_elementwise_affine),
        num_layers=int(cfg.num_layers),
    )


@dataclass(frozen=True)
class AttentionDims:
    """What a surrogate needs to know about a diffusers ``Attention``.

    Attributes:
        query_dim: channels of ``hidden_states``.
        kv_dim: channels the keys/values are computed from (``cross_attention_dim`` or ``query_dim``).
        inner_dim: width of the value projection.
        out_dim: channels of the output.
        cross: it attends to ``encoder_hidden_states``.
        spatial: it takes ``(B, C, H, W)`` maps (a group-normed UNet attention block) rather than tokens.
        residual: the output adds the input (``residual_connection``).
        rescale: the output is divided by this (``rescale_output_factor``).
        norm_groups: groups of its input GroupNorm, or ``None``.
        norm_eps: that GroupNorm's epsilon.
        bias: the value projection has a bias.
        out_bias: the output projection has a bias.
    """

    query_dim: int
    kv_dim: int
    inner_dim: int
    out_dim: int
    cross: bool
    spatial: bool
    residual: bool
    rescale: float
    norm_groups: int | None
    norm_eps: float
    bias: bool
    out_bias: bool


def attention_dims(block: nn.Module) -> AttentionDims:
    """Read the dimensions of a diffusers ``Attention``.

    Raises:
        IncompatibleBlockError: not an ``Attention``, or one with a spatial norm, a cross-attention
            norm or added key/value projections (joint attention).
    """
    _require_kind(block, "attention")
    if block.spatial_norm is not None or block.norm_cross is not None or getattr(block, "add_v_proj", None) is not None:
        raise IncompatibleBlockError("Attention with a spatial norm, a cross norm or added k/v projections is not supported")
    norm = block.group_norm
    return AttentionDims(
        query_dim=int(block.query_dim),
        kv_dim=int(block.to_v.in_features),
        inner_dim=int(block.to_v.out_features),
        out_dim=int(block.to_out[0].out_features),
        cross=bool(block.is_cross_attention),
        spatial=norm is not None,
        residual=bool(block.residual_connection),
        rescale=float(block.rescale_output_factor),
        norm_groups=None if norm is None else int(norm.num_groups),
        norm_eps=1e-5 if norm is None else float(norm.eps),
        bias=block.to_v.bias is not None,
        out_bias=block.to_out[0].bias is not None,
    )


@dataclass(frozen=True)
class SamplerDims:
    """What a surrogate needs to know about a teacher ``Downsample2D`` / ``Upsample2D``.

    Attributes:
        in_channels: input channels.
        out_channels: output channels.
        ceil_mode: (downsample) an odd side ``n`` becomes ``ceil(n / 2)`` (a padded 3x3 stride-2 conv)
            rather than ``floor(n / 2)`` (average pooling, unpadded conv).
        conv_weight: the teacher's convolution weight ``(out, in, k, k)`` (``ConvTranspose2d``:
            ``(in, out, k, k)``), or ``None`` when it has no convolution. Used to initialise
            the cheaper 1x1 convolutions.
        conv_bias: the teacher's convolution bias, or ``None``.
        transposed: the teacher's conv is a ``ConvTranspose2d``.
    """

    in_channels: int
    out_channels: int
    ceil_mode: bool
    conv_weight: torch.Tensor | None
    conv_bias: torch.Tensor | None
    transposed: bool = False


def _conv_out(n: int, kernel: int, padding: int) -> int:
    # Downsample2D pads (0, 1, 0, 1) itself when padding == 0: n -> n + 1, then a stride-2 conv.
    if padding == 0:
        n, padding = n + 1, 0
    return (n + 2 * padding - kernel) // 2 + 1


def sampler_dims(block: nn.Module) -> SamplerDims:
    """Read the dimensions of a ``Downsample2D`` or ``Upsample2D``.

    Raises:
        IncompatibleBlockError: not a sampler, one with a norm, or one whose size rule is not
            ``ceil(n/2)`` / ``floor(n/2)`` (downsample) or ``2n`` (upsample).
    """
    kind = block_kind(block)
    if kind not in ("downsample", "upsample"):
        raise IncompatibleBlockError(
            f"expected a Downsample2D or Upsample2D, got {type(block).__name__} (kind {kind!r})"
        )
    if getattr(block, "norm", None) is not None:
        raise IncompatibleBlockError(f"{type(block).__name__} with a norm layer is not supported")
    conv = block.conv if kind == "downsample" or block.name == "conv" else block.Conv2d_0
    weight = bias = None
    if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = conv.weight.detach()
        bias = None if conv.bias is None else conv.bias.detach()
    ceil_mode = False
    if kind == "downsample":
        if block.use_conv:
            k, p = conv.kernel_size[0], block.padding
            sizes = {n: _conv_out(n, k, p) for n in (7, 8)}
            if sizes == {7: 4, 8: 4}:
                ceil_mode = True
            elif sizes != {7: 3, 8: 4}:
                raise IncompatibleBlockError(
                    f"Downsample2D with kernel {k} and padding {p} does not halve the resolution"
                )
    elif not block.interpolate and not block.use_conv_transpose:
        raise IncompatibleBlockError("Upsample2D with interpolate=False does not double the resolution")
    return SamplerDims(
        in_channels=int(block.channels),
        out_channels=int(block.out_channels),
        ceil_mode=ceil_mode,
        conv_weight=weight,
        conv_bias=bias,
        transposed=isinstance(conv, nn.ConvTranspose2d),
    )


def example_inputs(
    block: nn.Module,
    *,
    batch: int = 2,
    height: int = 8,
    width: int = 8,
    seq_len: int = 5,
    generator: torch.Generator | None = None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Random inputs with which a teacher block (and so any of its surrogates) can be called.

    Args:
        block: a teacher block of a known kind.
        batch: batch size.
        height: input height.
        width: input width.
        seq_len: length of ``encoder_hidden_states`` for cross-attention.
        generator: random generator, for reproducible inputs.

    Returns:
        ``(args, kwargs)`` such that ``block(*args, **kwargs)`` runs.

    Raises:
        IncompatibleBlockError: the block is of no known kind.

    Example:
        >>> from diffusers.models.downsampling import Downsample2D
        >>> args, kwargs = example_inputs(Downsample2D(8, use_conv=True), height=6, width=4)
        >>> tuple(args[0].shape)
        (2, 8, 6, 4)
    """
    kind = block_kind(block)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    if kind == "resnet":
        dims = resnet_dims(block)
        temb = None if dims.temb_channels is None else randn(batch, dims.temb_channels)  # (B, T)
        return (randn(batch, dims.in_channels, height, width), temb), {}
    if kind == "transformer":
        dims = transformer_dims(block)
        context = None
        if dims.cross_attention_dim is not None:
            context = randn(batch, seq_len, dims.cross_attention_dim)  # (B, L, D)
        return (randn(batch, dims.in_channels, height, width),), {"encoder_hidden_states": context}
    if kind in ("downsample", "upsample"):
        return (randn(batch, int(block.channels), height, width),), {}
    if kind == "attention":
        dims = attention_dims(block)
        x = randn(batch, dims.query_dim, height, width) if dims.spatial else randn(batch, height * width, dims.query_dim)
        context = randn(batch, seq_len, dims.kv_dim) if dims.cross else None
        return (x,), {"encoder_hidden_states": context}
    if kind == "basic_transformer":
        dim = int(block.dim)
        kwargs: dict[str, Any] = {}
        if block.attn2 is not None and block.cross_attention_dim is not None:
            kwargs["encoder_hidden_states"] = randn(batch, seq_len, int(block.cross_attention_dim))  # (B, L, D)
        if block.norm_type in ("ada_norm", "ada_norm_zero"):
            kwargs["timestep"] = torch.randint(0, 1000, (batch,), generator=generator)  # (B,)
        if block.norm_type == "ada_norm_zero":
            kwargs["class_labels"] = torch.zeros(batch, dtype=torch.long)  # (B,)
        if block.norm_type == "ada_norm_single":
            kwargs["timestep"] = randn(batch, 6 * dim)  # (B, 6 D): PixArt's adaLN-single embedding
        return (randn(batch, height * width, dim),), kwargs
    raise IncompatibleBlockError(f"{type(block).__name__} is not a block of a known kind {list(KINDS)}")


def block_output(output: Any) -> torch.Tensor:
    """The tensor a block returned, whatever structure it came in.

    Args:
        output: a tensor, a ``(tensor, ...)`` tuple, or a diffusers ``BaseOutput`` with ``sample``.

    Returns:
        The output tensor.
    """
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "sample"):
        return output.sample
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"cannot find the output tensor in a {type(output).__name__}")
