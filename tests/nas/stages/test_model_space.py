"""Building a checked search space for a real UNet, and exact cost tables."""

import logging
import random

import pytest
import torch
from diffusers.configuration_utils import register_to_config

from tocsr_nas.stages.costs import cost_table_for
from tocsr_nas.evaluators import count_complexity
from tocsr_nas.stages.space import CandidateCache, assemble, build_space, default_space_file, load_space_spec
from tocsr_nas.searchspace import Rule, SearchSpaceError, SpaceSpec
from tocsr_nas.surrogates import SurrogateBlock, register_surrogate
from tocsr_nas.surrogates.registry import unregister_surrogate
from tocsr_nas.teacher import build_teacher


@pytest.fixture(scope="module")
def teacher():
    return build_teacher("tiny", seed=0).eval()


@pytest.fixture(scope="module")
def probe(teacher):
    return teacher.unet_example_inputs(1, resolution=32)


@pytest.fixture(scope="module")
def space(teacher, probe):
    return build_space(teacher.unet, "unet", probe=probe)


def test_default_space_covers_resnets_attention_and_samplers(space):
    kinds = {b.module_type for b in space.blocks}
    assert kinds == {"ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D"}
    assert all(b.names[0] == "teacher" and len(b.names) >= 2 for b in space.blocks)
    assert default_space_file().is_file()
    assert load_space_spec("unet") == load_space_spec(str(default_space_file()))


def test_user_yaml_space_round_trips_through_nni(teacher, probe, tmp_path):
    text = """
name: my-tiny
rules:
  - name: inner-resnets
    match: "down_blocks.*.resnets.*"
    type: ResnetBlock2D
    candidates: [{type: bottleneck_resnet, grid: {ratio: [0.25, 0.5]}}]
  - name: attn
    match: "*attentions.*"
    candidates: [conv_mixer]
constraints:
  - {type: max_count, candidate: "conv_mixer", count: 2}
"""
    path = tmp_path / "space.yaml"
    path.write_text(text)
    spec = SpaceSpec.load(str(path))
    assert SpaceSpec.from_yaml(spec.to_yaml()) == spec
    space = build_space(teacher.unet, spec, probe=probe)
    assert space.size == 3**3 * 2**7  # 3 down resnets x 3, 7 attention blocks x 2
    from tocsr_nas.searchspace import SearchSpace

    back = SearchSpace.from_nni(space.to_nni())
    cfg = space.sample(1)
    assert back.decode_nni(dict(cfg)) == cfg


class _HalfChannels(SurrogateBlock):
    """A deliberately wrong surrogate: returns half the channels."""

    replaces = ("resnet",)

    @register_to_config
    def __init__(self, *, channels: int = 8):
        super().__init__()
        self.proj = torch.nn.Conv2d(channels, channels // 2, 1)

    @classmethod
    def from_teacher(cls, block):
        return cls(channels=block.conv1.in_channels)

    def forward(self, input_tensor, temb, *args, **kwargs):
        return self.proj(input_tensor)


@pytest.fixture
def half_channels():
    """Registered only while a test needs it, so other tests' registries stay clean."""
    register_surrogate("test_half_channels")(_HalfChannels)
    yield
    unregister_surrogate("test_half_channels")


@pytest.mark.parametrize(
    "rule, fragment",
    [
        (Rule("bad-shape", "*resnets.*", ["test_half_channels"]), "returns"),
        (Rule("wrong-kind", "*resnets.*", ["conv_mixer"]), "cannot be built"),
        (Rule("bad-param", "*resnets.*", [{"type": "bottleneck_resnet", "params": {"ratoi": 0.5}}]), "ratoi"),
        (Rule("nothing", "encoder.*", ["skip"]), "matches no module"),
        (Rule("unknown", "*resnets.*", ["warp_drive"]), "unknown candidate type"),
    ],
)
def test_bad_candidates_name_rule_and_path(teacher, probe, rule, fragment, half_channels):
    with pytest.raises(SearchSpaceError) as info:
        build_space(teacher.unet, SpaceSpec([rule]), probe=probe)
    msg = str(info.value)
    assert fragment in msg and f"rule {rule.name!r}" in msg and "\n" not in msg


def _modules(model):
    return [(name, type(module).__name__) for name, module in model.named_modules()]


@pytest.mark.parametrize("preset", ["tiny", "sd21-vae16"])
def test_default_space_has_no_duplicate_candidates(preset):
    # architectures only: the teacher and every candidate are built on the meta device (no weights)
    with torch.device("meta"):
        unet = build_teacher(preset).unet
        space = build_space(unet, "unet")
    unmerged = load_space_spec("unet").resolve(_modules(unet))
    assert space.merged == {}
    assert space.hash == unmerged.hash and space.size == unmerged.size


def test_candidates_that_build_the_same_block_are_merged(teacher, probe, caplog):
    # round(0.51 * 32) = round(0.5 * 32) = 16, but round(0.51 * 64) = 33 != 32
    grid = {"type": "bottleneck_resnet", "grid": {"ratio": [0.5, 0.51]}}
    spec = SpaceSpec([Rule("res", "*resnets.*", [grid], module_type="ResnetBlock2D")])
    with caplog.at_level(logging.WARNING, logger="tocsr_nas.stages.space"):
        space = build_space(teacher.unet, spec, probe=probe)
    narrow = [p for p in space.paths if teacher.unet.get_submodule(p).conv2.out_channels == 32]
    assert 0 < len(narrow) < len(space)
    assert space.merged == {p: {"bottleneck_resnet(ratio=0.51)": "bottleneck_resnet(ratio=0.5)"} for p in narrow}
    for block in space.blocks:
        want = ["teacher", "bottleneck_resnet(ratio=0.5)"] + ([] if block.path in narrow else ["bottleneck_resnet(ratio=0.51)"])
        assert block.names == want, block.path
    assert f"{narrow[0]}: bottleneck_resnet(ratio=0.51) = bottleneck_resnet(ratio=0.5)" in caplog.text
    unmerged = spec.resolve(_modules(teacher.unet))
    assert space.hash != unmerged.hash and space.size * 3 ** len(narrow) == unmerged.size * 2 ** len(narrow)


def _assert_lookup_matches_trace(teacher, space, table, configs, resolution):
    args, kwargs = teacher.unet_example_inputs(1, resolution=resolution)
    for cfg in configs:
        model = assemble(teacher.unet, space, cfg).eval()
        traced = count_complexity(model, args, kwargs)
        assert table.cost(cfg) == traced, cfg
        assert table.cost(cfg, count_attention=False).macs == count_complexity(
            model, args, kwargs, count_attention=False
        ).macs


def test_tiny_cost_lookup_equals_whole_model_trace(teacher, probe, tmp_path):
    cache = CandidateCache()
    space = build_space(teacher.unet, "unet", probe=probe, candidates=cache)
    table = cost_table_for(teacher, space, 64, cache=tmp_path, candidates=cache)
    rng = random.Random(0)
    configs = [space.default_config()] + [space.sample(rng) for _ in range(4)]
    configs.append(table.min_cost("gmacs")[0])
    _assert_lookup_matches_trace(teacher, space, table, configs, 64)
    # the second call reads the cache file instead of tracing
    again = cost_table_for(teacher, space, 64, cache=tmp_path)
    assert again.traces == 0 and again.cost(configs[1]) == table.cost(configs[1])


def test_sd21_cost_lookup_equals_whole_model_trace(tmp_path):
    teacher = build_teacher("sd21-vae16").eval()
    cache = CandidateCache()
    space = build_space(teacher.unet, "unet", probe=teacher.unet_example_inputs(1, resolution=64), candidates=cache)
    table = cost_table_for(teacher, space, 128, cache=False, candidates=cache)
    assert table.teacher().params == 865_979_856
    rng = random.Random(1)
    _assert_lookup_matches_trace(teacher, space, table, [space.sample(rng)], 128)
