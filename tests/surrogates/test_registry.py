"""The surrogate registry: names, lookup errors, duplicate names, and that new types join the suite."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.surrogates import (
    DuplicateSurrogateError,
    KINDS,
    SurrogateBlock,
    SurrogateParamError,
    UnknownSurrogateError,
    available_surrogates,
    build_surrogate,
    get_surrogate,
    register_surrogate,
    sampler_dims,
    surrogate_from_config,
    surrogates_for,
    unregister_surrogate,
)
from tocsr_nas.surrogates.testing import CHECKS, build_case, conformance_cases, run_conformance

BUILT_IN = [
    "bottleneck_resnet", "conv_mixer", "dwsep_resnet", "light_block", "light_transformer", "light_up", "mean_attention",
    "pool_down", "skip",
]  # fmt: skip


def test_built_in_types_are_registered_with_their_names():
    assert available_surrogates() == BUILT_IN
    for name in BUILT_IN:
        assert get_surrogate(name).type_name == name
    assert "teacher" not in available_surrogates()


@pytest.mark.parametrize(
    "kind, want",
    [
        ("resnet", ["bottleneck_resnet", "dwsep_resnet", "skip"]),
        ("transformer", ["conv_mixer", "light_transformer", "skip"]),
        ("downsample", ["pool_down", "skip"]),
        ("upsample", ["light_up", "skip"]),
        ("attention", ["mean_attention", "skip"]),
        ("basic_transformer", ["light_block", "skip"]),
    ],
)
def test_surrogates_for_kind(kind, want):
    assert surrogates_for(kind) == want


def test_surrogates_for_unknown_kind():
    with pytest.raises(ValueError, match="unknown block kind 'mlp'"):
        surrogates_for("mlp")


def test_star_means_any_block_and_skip_any_known_kind():
    """``replaces = ("*",)`` fits any block; ``skip`` fits every known kind, diffusers ``Attention`` included."""
    from diffusers.models.attention_processor import Attention
    from torch import nn

    class Anything(SurrogateBlock):
        replaces = ("*",)

    assert Anything.compatible(nn.Linear(2, 2)) and Anything.compatible(Attention(8, heads=1, dim_head=8))
    skip = build_surrogate("skip", Attention(8, heads=1, dim_head=8, norm_num_groups=2, residual_connection=True))
    x = torch.randn(1, 8, 3, 3)
    assert torch.equal(skip(x), x)
    with pytest.raises(TocsrError, match="skip"):
        build_surrogate("skip", nn.Linear(2, 2))


def test_unknown_name_lists_valid_names_and_how_to_register():
    with pytest.raises(UnknownSurrogateError) as info:
        get_surrogate("bottleneck")
    message = str(info.value)
    assert isinstance(info.value, TocsrError)
    assert "'bottleneck'" in message and "@register_surrogate" in message
    assert all(name in message for name in BUILT_IN)


def test_param_defaults():
    assert get_surrogate("bottleneck_resnet").param_defaults() == {"ratio": 0.5}
    assert get_surrogate("light_transformer").param_defaults() == {"ff_mult": 4.0, "cross_attention": False}
    assert get_surrogate("skip").param_defaults() == {}


# --- registering ------------------------------------------------------------------------------------


class _TinyDown(SurrogateBlock):
    """Average pool + 1x1 conv with a width parameter: the smallest useful downsample surrogate."""

    replaces = ("downsample",)
    example_params = ({}, {"bias": False})

    @register_to_config
    def __init__(self, *, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2, ceil_mode=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    @classmethod
    def from_teacher(cls, block: nn.Module, *, bias: bool = True) -> "_TinyDown":
        dims = sampler_dims(block)
        return cls(in_channels=dims.in_channels, out_channels=dims.out_channels, bias=bias)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.conv(self.pool(hidden_states))


class _WrongShape(_TinyDown):
    """Forgets to down-sample: the conformance suite must catch it."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.conv(hidden_states)


@pytest.fixture
def registered():
    """Register classes for one test and remove them afterwards, whatever happens."""
    names: list[str] = []

    def register(name: str, cls: type[SurrogateBlock]) -> type[SurrogateBlock]:
        register_surrogate(name)(cls)
        names.append(name)
        return cls

    yield register
    for name in names:
        unregister_surrogate(name)
    assert available_surrogates() == BUILT_IN


def test_new_type_joins_the_conformance_suite(registered, micro_blocks):
    registered("tiny_down", _TinyDown)
    assert "tiny_down" in surrogates_for("downsample")
    cases = [c for c in conformance_cases(blocks=micro_blocks) if c.type_name == "tiny_down"]
    assert {c.block_id for c in cases} == {"downsample", "downsample_wide"}
    assert {tuple(c.params.items()) for c in cases} == {(), (("bias", False),)}
    for case in cases:
        run_conformance(case, micro_blocks)
    block = build_surrogate("tiny_down", micro_blocks["downsample"], bias=False)
    assert type(surrogate_from_config(block.config, "tiny_down")) is _TinyDown
    assert type(surrogate_from_config(json.loads(block.to_json_string()))) is _TinyDown


def test_conformance_suite_catches_a_wrong_shape(registered, micro_blocks):
    registered("wrong_down", _WrongShape)
    case = next(c for c in conformance_cases(blocks=micro_blocks) if c.type_name == "wrong_down")
    surrogate, teacher = build_case(case, micro_blocks)
    with pytest.raises(TocsrError, match="'wrong_down' returns"):
        CHECKS["outputs"](surrogate, teacher)


def test_new_type_params_are_validated(registered, micro_blocks):
    registered("tiny_down", _TinyDown)
    with pytest.raises(SurrogateParamError, match=r"no parameter\(s\) \['bais'\]; valid parameters: bias=True"):
        build_surrogate("tiny_down", micro_blocks["downsample"], bais=False)


def test_duplicate_name_raises(registered):
    registered("tiny_down", _TinyDown)
    with pytest.raises(DuplicateSurrogateError, match="'tiny_down' is already registered"):
        register_surrogate("tiny_down")(_WrongShape)
    with pytest.raises(DuplicateSurrogateError, match="already registered"):
        register_surrogate("skip")(_WrongShape)
    assert get_surrogate("tiny_down") is _TinyDown


def test_teacher_is_reserved():
    with pytest.raises(DuplicateSurrogateError, match="reserved"):
        register_surrogate("teacher")(_TinyDown)


def test_only_surrogate_blocks_with_known_kinds_register():
    with pytest.raises(TypeError, match="SurrogateBlock subclasses"):
        register_surrogate("conv")(nn.Conv2d)

    class NoKind(SurrogateBlock):
        replaces = ("mlp",)

    with pytest.raises(TypeError, match="replaces must list kinds"):
        register_surrogate("no_kind")(NoKind)
    assert "no_kind" not in available_surrogates()
    assert set(KINDS) == {"resnet", "transformer", "downsample", "upsample", "attention", "basic_transformer"}


def test_positional_params_are_refused_at_class_definition():
    with pytest.raises(TypeError, match="keyword-only"):

        class Positional(SurrogateBlock):
            replaces = ("downsample",)

            @classmethod
            def from_teacher(cls, block, width=0.5):
                raise AssertionError("unreachable")


def test_unregister_unknown_raises():
    with pytest.raises(UnknownSurrogateError):
        unregister_surrogate("never_registered")


def test_surrogate_from_config_unknown_class():
    with pytest.raises(UnknownSurrogateError, match="no registered surrogate type has class 'Nope'"):
        surrogate_from_config({"_class_name": "Nope"})
