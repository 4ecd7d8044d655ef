"""Surrogate block types: the conformance suite over every registered type, then each type's own promises."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.surrogates import (
    IncompatibleBlockError,
    available_surrogates,
    SurrogateParamError,
    SurrogateShapeError,
    block_kind,
    block_output,
    build_surrogate,
    example_inputs,
    get_surrogate,
)
from tocsr_nas.surrogates.blocks.resnet import bottleneck_width, divisor_groups
from tocsr_nas.surrogates.testing import CHECKS, build_case, conformance_cases
from tocsr_nas.surrogates.verify import verify_surrogate

CASES = conformance_cases()


# --- conformance: every registered type x every compatible micro block x every check -------------


def test_conformance_covers_every_type_and_kind():
    covered = {c.type_name for c in CASES}
    assert covered == set(available_surrogates())  # every registered type has cases
    kinds_per_type = {}
    blocks = {c.block_id for c in CASES}
    assert {"resnet", "transformer_linear", "transformer_conv", "downsample", "upsample"} <= blocks
    for c in CASES:
        kinds_per_type.setdefault(c.type_name, set()).add(c.block_id.split("_")[0])
    assert kinds_per_type["skip"] == {"resnet", "transformer", "downsample", "upsample", "attention", "basic"}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case, check, micro_blocks):
    surrogate, teacher = build_case(case, micro_blocks)
    CHECKS[check](surrogate, teacher)


def test_transformer_surrogates_answer_both_return_dict_forms(micro_blocks):
    teacher = micro_blocks["transformer_linear"]
    args, kwargs = example_inputs(teacher)
    for name in ("skip", "light_transformer", "conv_mixer"):
        block = build_surrogate(name, teacher)
        assert isinstance(block(*args, **kwargs), Transformer2DModelOutput)
        out = block(*args, **kwargs, return_dict=False)
        assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == args[0].shape


def test_verify_rejects_a_wrong_shape(micro_blocks):
    wrong = build_surrogate("skip", micro_blocks["resnet_same"])  # 32 -> 32 identity
    with pytest.raises(SurrogateShapeError, match="skip"):
        verify_surrogate(wrong, micro_blocks["resnet"])  # teacher takes 16 channels, returns 32


def test_conformance_checks_can_fail(micro_blocks):
    teacher = micro_blocks["resnet"]
    fat = get_surrogate("bottleneck_resnet").from_teacher(teacher, ratio=1.0)  # as big as the teacher
    with pytest.raises(AssertionError, match="parameters"):
        CHECKS["cheaper"](fat, teacher)


# --- skip -------------------------------------------------------------------------------------------


@torch.no_grad()
def test_skip_is_parameter_free_identity_on_equal_channels(micro_blocks):
    for block_id in ("resnet_same", "transformer_conv", "downsample", "upsample"):
        skip = build_surrogate("skip", micro_blocks[block_id])
        assert sum(p.numel() for p in skip.parameters()) == 0, block_id
    x, temb = example_inputs(micro_blocks["resnet_same"])[0]
    assert torch.equal(build_surrogate("skip", micro_blocks["resnet_same"])(x, temb), x)
    assert torch.equal(build_surrogate("skip", micro_blocks["resnet_same"])(input_tensor=x, temb=temb), x)


@torch.no_grad()
def test_skip_projection_starts_as_the_teacher_shortcut(micro_blocks):
    teacher = micro_blocks["resnet"]
    x, temb = example_inputs(teacher)[0]
    skip = build_surrogate("skip", teacher)
    assert torch.allclose(skip(x, temb), teacher.conv_shortcut(x))


@torch.no_grad()
def test_skip_samplers_pool_and_upsample(micro_blocks):
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, 16, 1, 1)
    down = build_surrogate("skip", micro_blocks["downsample"])(x)
    assert torch.allclose(down[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    up = build_surrogate("skip", micro_blocks["upsample"])
    assert torch.equal(up(x)[0, 0, ::2, ::2], x[0, 0])
    assert up(x, (7, 9)).shape == (1, 16, 7, 9)
    assert up(x, output_size=(7, 9)).shape == (1, 16, 7, 9)


# --- ResNets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "out, ratio, want", [(320, 0.25, 80), (320, 0.5, 160), (64, 0.125, 8), (32, 0.1, 3), (4, 0.1, 1), (32, 1.0, 32)]
)
def test_bottleneck_width(out, ratio, want):
    assert bottleneck_width(out, ratio) == want


@pytest.mark.parametrize(
    "channels, groups, want", [(320, 32, 32), (80, 32, 20), (40, 32, 20), (8, 32, 8), (16, 16, 16), (7, 4, 1), (1, 32, 1)]
)
def test_divisor_groups(channels, groups, want):
    assert divisor_groups(channels, groups) == want


@torch.no_grad()
def test_bottleneck_ratios_are_distinct_blocks_on_a_64_channel_32_group_block():
    # before: widths rounded to multiples of the 32 groups made ratios 0.125, 0.25 and 0.5 one block
    teacher = ResnetBlock2D(in_channels=64, out_channels=64, temb_channels=32, groups=32).eval()
    args, _ = example_inputs(teacher)
    widths, groups = [], []
    for ratio in (0.125, 0.25, 0.5):
        block = build_surrogate("bottleneck_resnet", teacher, ratio=ratio).eval()
        widths.append(block.conv1.out_channels)
        groups.append(block.norm2.num_groups)
        assert block.config.inner_channels == widths[-1] and block.config.groups_out == groups[-1]
        again = type(block).from_config(block.config)  # the config alone rebuilds the same block
        again.load_state_dict(block.state_dict())
        assert torch.equal(again(*args), block(*args))
        assert torch.equal(block.conv1.weight, teacher.conv1.weight[: widths[-1]])  # truncated teacher weights
    assert widths == [8, 16, 32] and groups == [8, 16, 32]


def test_bottleneck_groups_out_default_divides_the_width():
    block = get_surrogate("bottleneck_resnet")(in_channels=8, out_channels=8, inner_channels=12, groups=8)
    assert block.norm2.num_groups == 6
    with pytest.raises(ValueError):
        get_surrogate("bottleneck_resnet")(in_channels=8, out_channels=8, inner_channels=12, groups=8, groups_out=8)


@torch.no_grad()
@pytest.mark.parametrize("norm", ["default", "scale_shift"])
def test_bottleneck_full_ratio_is_the_teacher(norm):
    torch.manual_seed(0)
    teacher = ResnetBlock2D(
        in_channels=16, out_channels=32, temb_channels=32, groups=8, time_embedding_norm=norm,
        output_scale_factor=2.0,
    ).eval()
    args, _ = example_inputs(teacher)
    surrogate = build_surrogate("bottleneck_resnet", teacher, ratio=1.0)
    assert torch.allclose(surrogate(*args), teacher(*args), atol=1e-5)


def test_bottleneck_inner_width_and_cost(micro_blocks):
    teacher = micro_blocks["resnet"]
    block = build_surrogate("bottleneck_resnet", teacher, ratio=0.25)
    assert block.config.inner_channels == 8 and block.conv1.out_channels == 8
    assert block.time_emb_proj.out_features == 8  # time embedding projects into the bottleneck
    assert block.conv_shortcut is not None
    same = build_surrogate("bottleneck_resnet", micro_blocks["resnet_same"], ratio=0.5)
    assert same.conv_shortcut is None


def test_dwsep_uses_depthwise_and_pointwise_convs(micro_blocks):
    block = build_surrogate("dwsep_resnet", micro_blocks["resnet"])
    assert block.depthwise1.groups == 16 and block.depthwise1.kernel_size == (3, 3)
    assert block.pointwise1.kernel_size == (1, 1) and block.pointwise1.out_channels == 32
    assert torch.equal(block.time_emb_proj.weight, micro_blocks["resnet"].time_emb_proj.weight)


def test_resampling_resnet_is_rejected():
    teacher = ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=8, groups=4, down=True)
    with pytest.raises(IncompatibleBlockError, match="up=True or down=True"):
        build_surrogate("bottleneck_resnet", teacher, ratio=0.5)


# --- transformers -----------------------------------------------------------------------------------


@torch.no_grad()
@pytest.mark.parametrize("block_id", ["transformer_linear", "transformer_conv"])
def test_light_transformer_with_teacher_widths_is_the_teacher(block_id, micro_blocks):
    teacher = micro_blocks[block_id]
    args, kwargs = example_inputs(teacher)
    light = build_surrogate("light_transformer", teacher, ff_mult=4, cross_attention=True).eval()
    assert torch.allclose(block_output(light(*args, **kwargs)), block_output(teacher(*args, **kwargs)), atol=1e-5)


@torch.no_grad()
def test_light_transformer_drops_cross_attention_and_truncates_ff(micro_blocks):
    teacher = micro_blocks["transformer_linear"]
    light = build_surrogate("light_transformer", teacher, ff_mult=1.0)
    layer, theirs = light.transformer_blocks[0], teacher.transformer_blocks[0]
    assert layer.attn2 is None
    assert torch.equal(layer.attn1.to_q.weight, theirs.attn1.to_q.weight)
    assert layer.ff.net[2].in_features == 16  # 16 = heads * head_dim * ff_mult
    assert torch.equal(layer.ff.net[2].weight, theirs.ff.net[2].weight[:, :16])
    # without cross-attention the context is ignored
    x, = example_inputs(teacher)[0]
    a = block_output(light(x, encoder_hidden_states=torch.randn(2, 3, 16)))
    assert torch.equal(a, block_output(light(x)))


def test_light_transformer_default_is_cheaper_than_a_cross_attention_teacher(micro_blocks):
    teacher = micro_blocks["transformer_conv"]
    light = build_surrogate("light_transformer", teacher)
    assert sum(p.numel() for p in light.parameters()) < sum(p.numel() for p in teacher.parameters())


@torch.no_grad()
def test_light_transformer_accepts_masks(micro_blocks):
    teacher = micro_blocks["transformer_linear"]
    light = build_surrogate("light_transformer", teacher, ff_mult=2.0, cross_attention=True).eval()
    x, = example_inputs(teacher)[0]
    context = torch.randn(2, 5, 16)
    plain = block_output(light(x, context))
    masked = block_output(light(x, context, encoder_attention_mask=torch.ones(2, 5)))
    assert torch.allclose(plain, masked, atol=1e-6)


def test_light_transformer_cross_attention_needs_a_cross_attention_teacher(micro_blocks):
    with pytest.raises(SurrogateParamError, match="no cross-attention"):
        build_surrogate("light_transformer", micro_blocks["transformer_self"], cross_attention=True)


@torch.no_grad()
def test_conv_mixer_starts_as_identity(micro_blocks):
    teacher = micro_blocks["transformer_conv"]
    mixer = build_surrogate("conv_mixer", teacher, kernel_size=5, expansion=2)
    assert mixer.depthwise.kernel_size == (5, 5) and mixer.pw_in.out_channels == 32
    x, = example_inputs(teacher)[0]
    assert torch.equal(mixer(x, return_dict=False)[0], x)
    assert torch.equal(mixer.norm.weight, teacher.norm.weight)


# --- samplers ---------------------------------------------------------------------------------------


def _locally_constant(channels: int) -> torch.Tensor:
    return torch.randn(1, channels, 1, 1).expand(1, channels, 8, 8).contiguous()  # (1, C, 8, 8)


@torch.no_grad()
@pytest.mark.parametrize("name", ["pool_down", "skip"])
def test_pool_down_matches_the_teacher_on_constant_features(name, micro_blocks):
    teacher = micro_blocks["downsample_wide"]
    x = _locally_constant(16)
    ours, theirs = build_surrogate(name, teacher)(x), teacher(x)
    assert ours.shape == theirs.shape == (1, 32, 4, 4)
    assert torch.allclose(ours[..., 1:, 1:], theirs[..., 1:, 1:], atol=1e-5)  # away from the zero padding


@torch.no_grad()
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_light_up_matches_the_teacher_on_constant_features(kernel_size, micro_blocks):
    teacher = micro_blocks["upsample_wide"]
    x = _locally_constant(16)
    ours, theirs = build_surrogate("light_up", teacher, kernel_size=kernel_size)(x), teacher(x)
    assert ours.shape == theirs.shape == (1, 32, 16, 16)
    assert torch.allclose(ours[..., 1:-1, 1:-1], theirs[..., 1:-1, 1:-1], atol=1e-5)


def test_light_up_respects_output_size(micro_blocks):
    up = build_surrogate("light_up", micro_blocks["upsample"], kernel_size=3)
    x = torch.randn(1, 16, 5, 5)
    assert up(x).shape == (1, 16, 10, 10)
    assert up(x, (9, 9)).shape == (1, 16, 9, 9)


@pytest.mark.parametrize("padding, size, want", [(1, 7, 4), (0, 7, 3), (1, 8, 4), (0, 8, 4)])
def test_pool_down_rounds_odd_sizes_like_the_teacher(padding, size, want):
    teacher = Downsample2D(8, use_conv=True, padding=padding)
    x = torch.randn(1, 8, size, size)
    assert teacher(x).shape[-1] == want
    assert build_surrogate("pool_down", teacher)(x).shape[-1] == want


# --- parameters, compatibility, persistence -----------------------------------------------------


@pytest.mark.parametrize(
    "name, block_id, params, match",
    [
        ("bottleneck_resnet", "resnet", {"ratoi": 0.5}, r"no parameter\(s\) \['ratoi'\]; valid parameters: ratio=0.5"),
        ("bottleneck_resnet", "resnet", {"ratio": 0}, "ratio must be > 0"),
        ("bottleneck_resnet", "resnet", {"ratio": 1.5}, "ratio must be <= 1"),
        ("bottleneck_resnet", "resnet", {"ratio": "half"}, "ratio must be a number"),
        ("bottleneck_resnet", "resnet", {"ratio": True}, "ratio must be a number"),
        ("conv_mixer", "transformer_conv", {"kernel_size": 4}, "kernel_size must be odd"),
        ("conv_mixer", "transformer_conv", {"kernel_size": 3.0}, "kernel_size must be an integer"),
        ("conv_mixer", "transformer_conv", {"expansion": -1}, "expansion must be > 0"),
        ("light_transformer", "transformer_conv", {"cross_attention": "yes"}, "cross_attention must be true or false"),
        ("light_transformer", "transformer_conv", {"ff_mult": 0}, "ff_mult must be > 0"),
        ("light_up", "upsample", {"kernel_size": 0}, "kernel_size must be >= 1"),
        ("skip", "resnet", {"ratio": 0.5}, "valid parameters: none"),
        ("pool_down", "downsample", {"kernel_size": 3}, r"'pool_down' has no parameter"),
    ],
)
def test_bad_params_raise(name, block_id, params, match, micro_blocks):
    with pytest.raises(SurrogateParamError, match=match) as info:
        build_surrogate(name, micro_blocks[block_id], **params)
    assert isinstance(info.value, TocsrError)


@pytest.mark.parametrize(
    "name, block_id",
    [("bottleneck_resnet", "downsample"), ("light_transformer", "resnet"), ("pool_down", "upsample"),
     ("light_up", "downsample"), ("conv_mixer", "resnet_same"), ("dwsep_resnet", "transformer_conv")],
)
def test_incompatible_block_raises(name, block_id, micro_blocks):
    with pytest.raises(IncompatibleBlockError, match=f"{name!r} replaces"):
        build_surrogate(name, micro_blocks[block_id])


def test_skip_rejects_a_non_block():
    with pytest.raises(IncompatibleBlockError, match="Conv2d"):
        build_surrogate("skip", nn.Conv2d(4, 4, 3))


def test_block_kind_table(micro_blocks):
    kinds = {k: block_kind(b) for k, b in micro_blocks.items()}
    assert kinds["resnet"] == "resnet" and kinds["transformer_conv"] == "transformer"
    assert kinds["downsample_wide"] == "downsample" and kinds["upsample"] == "upsample"
    assert block_kind(nn.Conv2d(4, 4, 1)) is None
    assert block_kind(build_surrogate("skip", micro_blocks["resnet"])) is None


@torch.no_grad()
def test_save_and_load_pretrained_as_safetensors(tmp_path, micro_blocks):
    teacher = micro_blocks["transformer_conv"]
    block = build_surrogate("light_transformer", teacher, ff_mult=2.0, cross_attention=True).eval()
    block.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists() and (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = type(block).from_pretrained(tmp_path).eval()
    args, kwargs = example_inputs(teacher)
    assert torch.equal(block_output(loaded(*args, **kwargs)), block_output(block(*args, **kwargs)))


def test_from_teacher_leaves_the_teacher_unchanged(micro_blocks):
    for case in CASES:
        teacher = micro_blocks[case.block_id]
        before = copy.deepcopy(teacher.state_dict())
        build_case(case, micro_blocks)
        after = teacher.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), case.id


# --- complexity as the evaluators count it (fvcore, SDPA included) ----------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fvcore_counts_every_op_and_macs_are_below_the_teacher(case, micro_blocks):
    from tocsr_nas.evaluators.complexity import count_complexity  # the test, not the package, joins the two

    surrogate, teacher = build_case(case, micro_blocks)
    args, kwargs = example_inputs(teacher, batch=1, height=8, width=8)
    if block_kind(teacher) == "transformer":
        kwargs = {**kwargs, "return_dict": False}
    ours, theirs = count_complexity(surrogate, args, kwargs), count_complexity(teacher, args, kwargs)
    assert ours.macs < theirs.macs, f"{case.id}: {ours.macs} MACs, teacher {theirs.macs}"
