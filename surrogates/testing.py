"""A conformance kit for surrogate block types: micro teacher blocks, the cases, and the checks.

Every registered type is checked against every micro teacher block it can replace, with each of
its ``example_params``. A researcher's new type is picked up automatically; to check one type
by hand::

    from tocsr_nas.surrogates.testing import conformance_cases, run_conformance
    for case in conformance_cases(types=["my_block"]):
        run_conformance(case)

The checks (each raises ``AssertionError`` with a message saying what differs):

* :func:`check_signature`: ``forward`` takes the teacher kind's arguments, by the same names.
* :func:`check_outputs`: same structure and shape as the teacher for every call
  (:func:`~tocsr_nas.surrogates.verify.verify_surrogate`).
* :func:`check_config_roundtrip`: ``to_json_string`` -> ``from_config`` -> same state dict
  keys, and identical outputs after loading the original's weights.
* :func:`check_cheaper`: strictly fewer parameters than the teacher block (or none at all).
* :func:`check_traceable`: ``torch.jit.trace`` works (fvcore traces blocks) and the trace
  computes what the module computes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.upsampling import Upsample2D
from torch import nn

from tocsr_nas.surrogates.base import SurrogateBlock
from tocsr_nas.surrogates.errors import SurrogateParamError
from tocsr_nas.surrogates.kinds import ANY_KIND, block_kind, block_output, call_signature, example_inputs
from tocsr_nas.surrogates.registry import available_surrogates, get_surrogate, surrogate_from_config
from tocsr_nas.surrogates.verify import verify_surrogate

__all__ = [
    "micro_teacher_blocks",
    "ConformanceCase",
    "conformance_cases",
    "build_case",
    "check_signature",
    "check_outputs",
    "check_config_roundtrip",
    "check_cheaper",
    "check_traceable",
    "CHECKS",
    "run_conformance",
]

#: Spatial size of the conformance inputs: odd, to exercise the samplers' rounding.
HEIGHT, WIDTH = 7, 6


def micro_teacher_blocks(seed: int = 0) -> dict[str, nn.Module]:
    """Small real diffusers blocks, one or more per kind, in eval mode with seeded random weights.

    Returns:
        ``{id: block}`` with ids ``resnet`` (16 -> 32 channels, temb 32, 8 groups), ``resnet_same``
        (32 -> 32), ``transformer_linear`` / ``transformer_conv`` (2 heads x 8, 16 channels,
        cross-attention 16, linear or 1x1-conv projections), ``transformer_self`` (no
        cross-attention), ``downsample`` (16, 3x3 conv), ``downsample_wide`` (16 -> 32),
        ``upsample`` (16, 3x3 conv), ``upsample_wide`` (16 -> 32); ``attention_spatial`` (a
        UNet2DModel attention block), ``attention_tokens`` / ``attention_cross`` (a transformer
        layer's self-/cross-attention), ``basic_layer`` / ``basic_dit`` / ``basic_pixart``
        (``BasicTransformerBlock`` s: UNet, DiT adaLN-Zero and PixArt adaLN-single forms).
    """
    torch.manual_seed(seed)

    def transformer(linear: bool, cross: int | None) -> Transformer2DModel:
        return Transformer2DModel(
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=16,
            norm_num_groups=8,
            cross_attention_dim=cross,
            use_linear_projection=linear,
        )

    blocks: dict[str, nn.Module] = {
        "resnet": ResnetBlock2D(in_channels=16, out_channels=32, temb_channels=32, groups=8),
        "resnet_same": ResnetBlock2D(in_channels=32, out_channels=32, temb_channels=32, groups=8),
        "transformer_linear": transformer(True, 16),
        "transformer_conv": transformer(False, 16),
        "transformer_self": transformer(True, None),
        "downsample": Downsample2D(16, use_conv=True, padding=1),
        "downsample_wide": Downsample2D(16, use_conv=True, out_channels=32, padding=1),
        "upsample": Upsample2D(16, use_conv=True),
        "upsample_wide": Upsample2D(16, use_conv=True, out_channels=32),
        # UNet2DModel's attention block: (B, C, H, W) in, group norm, residual
        "attention_spatial": Attention(16, heads=2, dim_head=8, norm_num_groups=8, bias=True, residual_connection=True,
                                       rescale_output_factor=1.0, _from_deprecated_attn_block=True),
        "attention_tokens": Attention(16, heads=2, dim_head=8),  # attn1 of a transformer layer
        "attention_cross": Attention(16, cross_attention_dim=12, heads=2, dim_head=8),  # attn2
        "basic_layer": BasicTransformerBlock(16, 2, 8, cross_attention_dim=12),  # a UNet transformer layer
        "basic_dit": BasicTransformerBlock(16, 2, 8, activation_fn="gelu-approximate", num_embeds_ada_norm=3,
                                           norm_type="ada_norm_zero", norm_elementwise_affine=False),
        "basic_pixart": BasicTransformerBlock(16, 2, 8, cross_attention_dim=16, activation_fn="gelu-approximate",
                                              norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6),
    }
    for block in blocks.values():
        block.eval()
    return blocks


@dataclass(frozen=True)
class ConformanceCase:
    """One (surrogate type, teacher block, parameters) combination.

    Attributes:
        type_name: registered surrogate type.
        block_id: key into :func:`micro_teacher_blocks`.
        params: parameters for ``from_teacher``.
    """

    type_name: str
    block_id: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A pytest id, e.g. ``bottleneck_resnet(ratio=0.5)-resnet``."""
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.type_name}({args})-{self.block_id}" if args else f"{self.type_name}-{self.block_id}"


def conformance_cases(
    types: Iterable[str] | None = None, blocks: Mapping[str, nn.Module] | None = None
) -> list[ConformanceCase]:
    """Every registered type x every compatible micro block x each of the type's ``example_params``.

    Args:
        types: restrict to these type names (default: every registered type, at call time).
        blocks: teacher blocks (default :func:`micro_teacher_blocks`).

    Returns:
        The cases, in a stable order. A parameter set the block does not admit (``from_teacher``
        raises :class:`~tocsr_nas.surrogates.errors.SurrogateParamError`, e.g. cross-attention on a
        teacher without it) is not applicable and yields no case.
    """
    blocks = micro_teacher_blocks() if blocks is None else blocks
    names = available_surrogates() if types is None else list(types)
    cases = []
    for name in names:
        cls = get_surrogate(name)
        for block_id, block in blocks.items():
            if not cls.compatible(block):
                continue
            for params in cls.example_params:
                try:
                    cls.from_teacher(block, **params)
                except SurrogateParamError:
                    continue
                cases.append(ConformanceCase(name, block_id, dict(params)))
    return cases


def build_case(case: ConformanceCase, blocks: Mapping[str, nn.Module] | None = None) -> tuple[SurrogateBlock, nn.Module]:
    """Build ``(surrogate, teacher)`` for a case, both in eval mode."""
    blocks = micro_teacher_blocks() if blocks is None else blocks
    teacher = blocks[case.block_id]
    surrogate = get_surrogate(case.type_name).from_teacher(teacher, **case.params)
    return surrogate.eval(), teacher


def check_signature(surrogate: SurrogateBlock, teacher: nn.Module) -> None:
    """``forward`` accepts the teacher kind's arguments under the same names and in the same order."""
    kind = block_kind(teacher)
    if ANY_KIND in type(surrogate).replaces:
        return  # generic stand-ins bind the call themselves (see Skip.forward)
    want = [p.name for p in call_signature(kind).parameters.values()]
    got = [p.name for p in list(inspect.signature(type(surrogate).forward).parameters.values())[1:]]
    named_want = [n for n in want if n not in ("args", "kwargs")]
    assert got[: len(named_want)] == named_want, (
        f"{type(surrogate).__name__}.forward takes {got}; a {kind} surrogate must take {want}"
    )


def check_outputs(surrogate: SurrogateBlock, teacher: nn.Module) -> None:
    """Same output structure and shape as the teacher for every call (odd sizes included)."""
    verify_surrogate(surrogate, teacher, height=HEIGHT, width=WIDTH)
    verify_surrogate(surrogate, teacher, height=8, width=8)


@torch.no_grad()
def check_config_roundtrip(surrogate: SurrogateBlock, teacher: nn.Module) -> None:
    """JSON config -> ``from_config`` -> load the same weights -> identical outputs."""
    config = json.loads(surrogate.to_json_string())
    rebuilt = type(surrogate).from_config(config).eval()
    assert dict(rebuilt.config) == dict(surrogate.config), "from_config changed the config"
    assert type(surrogate_from_config(config)) is type(surrogate), "surrogate_from_config picked another class"
    missing = set(surrogate.state_dict()) ^ set(rebuilt.state_dict())
    assert not missing, f"rebuilt block has other parameters: {sorted(missing)}"
    rebuilt.load_state_dict(surrogate.state_dict())
    args, kwargs = example_inputs(teacher, batch=2, height=HEIGHT, width=WIDTH, generator=torch.Generator().manual_seed(1))
    a, b = block_output(surrogate(*args, **kwargs)), block_output(rebuilt(*args, **kwargs))
    assert torch.equal(a, b), "rebuilt block computes something else"


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_cheaper(surrogate: SurrogateBlock, teacher: nn.Module) -> None:
    """Strictly fewer parameters than the teacher block, unless it has none at all."""
    n_s, n_t = _n_params(surrogate), _n_params(teacher)
    assert n_s == 0 or n_s < n_t, f"{type(surrogate).__name__} has {n_s} parameters, the teacher block {n_t}"


class _Traceable(nn.Module):
    """Calls a block with fixed non-tensor arguments and returns its output tensor."""

    def __init__(self, block: nn.Module, tensor_names: list[str], static: dict[str, Any]) -> None:
        super().__init__()
        self.block, self.tensor_names, self.static = block, tensor_names, static

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return block_output(self.block(**dict(zip(self.tensor_names, tensors)), **self.static))


def _traceable_calls(surrogate: nn.Module, teacher: nn.Module) -> list[tuple[_Traceable, tuple[torch.Tensor, ...]]]:
    args, kwargs = example_inputs(teacher, batch=2, height=HEIGHT, width=WIDTH, generator=torch.Generator().manual_seed(2))
    kind = block_kind(teacher)
    names = [p.name for p in call_signature(kind).parameters.values()]
    given = {**dict(zip(names, args)), **kwargs}
    tensors = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
    statics: list[dict[str, Any]] = [{k: v for k, v in given.items() if k not in tensors}]
    if kind == "transformer":
        statics = [{**statics[0], "return_dict": False}]
    if kind == "upsample":
        statics.append({"output_size": (2 * HEIGHT - 1, 2 * WIDTH + 1)})
    return [(_Traceable(surrogate, list(tensors), s), tuple(tensors.values())) for s in statics]


@torch.no_grad()
def check_traceable(surrogate: SurrogateBlock, teacher: nn.Module) -> None:
    """``torch.jit.trace`` works and the trace computes the module's outputs."""
    for wrapper, tensors in _traceable_calls(surrogate, teacher):
        traced = torch.jit.trace(wrapper, tensors, check_trace=False)
        assert torch.allclose(traced(*tensors), wrapper(*tensors), atol=1e-6), "the trace computes something else"


#: Every check, by name (the conformance suite parametrises over these).
CHECKS: dict[str, Callable[[SurrogateBlock, nn.Module], None]] = {
    "signature": check_signature,
    "outputs": check_outputs,
    "config_roundtrip": check_config_roundtrip,
    "cheaper": check_cheaper,
    "traceable": check_traceable,
}


def run_conformance(case: ConformanceCase, blocks: Mapping[str, nn.Module] | None = None) -> None:
    """Run every check on one case; raises ``AssertionError`` (or a surrogate error) on the first failure."""
    surrogate, teacher = build_case(case, blocks)
    for check in CHECKS.values():
        check(surrogate, teacher)
