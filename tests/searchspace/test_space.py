"""The search-space DSL: resolution, errors, encodings, sampling, YAML and NNI round trips."""

import json
import random
import subprocess
import sys

import pytest

from tocsr_nas.searchspace import (
    Candidate,
    CandidateSpec,
    Configuration,
    MaxCount,
    Rule,
    SearchSpace,
    SearchSpaceError,
    SpaceSpec,
    parse_candidate_name,
)

MODULES = [
    ("conv_in", "Conv2d"),
    ("down_blocks.0.resnets.0", "ResnetBlock2D"),
    ("down_blocks.0.resnets.0.conv1", "Conv2d"),
    ("down_blocks.0.downsamplers.0", "Downsample2D"),
    ("down_blocks.1.attentions.0", "Transformer2DModel"),
    ("down_blocks.1.attentions.0.transformer_blocks.0", "BasicTransformerBlock"),
    ("down_blocks.1.resnets.0", "ResnetBlock2D"),
    ("mid_block.resnets.0", "ResnetBlock2D"),
    ("up_blocks.0.upsamplers.0", "Upsample2D"),
]

YAML = """
name: user-space
rules:
  - name: resnets
    match: "*.resnets.*"
    type: ResnetBlock2D
    candidates:
      - skip
      - type: bottleneck_resnet
        grid: {ratio: [0.25, 0.5]}
  - name: attention
    match: "*.attentions.*"
    candidates: [conv_mixer, "light_transformer(ff_mult=2)"]
  - name: samplers
    match: "*samplers.*"
    type: [Downsample2D, Upsample2D]
    candidates: [skip]
constraints:
  - {type: max_count, candidate: skip, count: 2}
  - {type: forbid, when: {"mid_block.*": skip}}
"""


@pytest.fixture
def spec():
    return SpaceSpec.from_yaml(YAML)


@pytest.fixture
def space(spec):
    return spec.resolve(MODULES, known_types={"skip", "bottleneck_resnet", "conv_mixer", "light_transformer"})


def test_resolution_selects_outermost_blocks_in_model_order(space):
    assert space.paths == [
        "down_blocks.0.resnets.0",
        "down_blocks.0.downsamplers.0",
        "down_blocks.1.attentions.0",
        "down_blocks.1.resnets.0",
        "mid_block.resnets.0",
        "up_blocks.0.upsamplers.0",
    ]
    assert space["down_blocks.0.resnets.0"].names == [
        "teacher",
        "skip",
        "bottleneck_resnet(ratio=0.25)",
        "bottleneck_resnet(ratio=0.5)",
    ]
    assert space["down_blocks.1.attentions.0"].names == ["teacher", "conv_mixer", "light_transformer(ff_mult=2)"]
    assert space.size == 4 * 2 * 3 * 4 * 4 * 2


def test_yaml_python_yaml_round_trip(spec):
    again = SpaceSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.to_yaml() == spec.to_yaml()
    python_built = SpaceSpec(
        name="user-space",
        rules=[
            Rule("resnets", "*.resnets.*", ["skip", CandidateSpec("bottleneck_resnet", grid={"ratio": [0.25, 0.5]})],
                 module_type="ResnetBlock2D"),
            Rule("attention", "*.attentions.*", ["conv_mixer", {"type": "light_transformer", "params": {"ff_mult": 2}}]),
            Rule("samplers", "*samplers.*", ["skip"], module_type=["Downsample2D", "Upsample2D"]),
        ],
        constraints=[MaxCount(candidate="skip", count=2), {"type": "forbid", "when": {"mid_block.*": "skip"}}],
    )
    assert python_built.resolve(MODULES).hash == spec.resolve(MODULES).hash


def test_nni_round_trip(space):
    nni_json = json.loads(json.dumps(space.to_nni()))
    back = SearchSpace.from_nni(nni_json)
    assert back.paths == space.paths and back.cardinalities == space.cardinalities
    cfg = space.sample(0)
    assert space.decode_nni(dict(cfg)) == cfg
    assert back.decode_nni(dict(cfg)) == cfg


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("rules: [{name: r, match: 'nothing.*', candidates: [skip]}]", "rule 'r'"),
        ("rules: [{name: r, match: '*.resnets.*', candidates: [warp_drive]}]", "unknown candidate type 'warp_drive'"),
        ("rules: [{name: r, match: '*.resnets.*', candidates: [skip], colour: red}]", "unknown key(s) ['colour']"),
        ("rules: [{name: r, match: '*.resnets.*'", "malformed YAML"),
        ("rulez: []", "unknown top-level key"),
        ("rules: [{name: r, match: '*.resnets.*', candidates: [skip, skip]}]", "listed twice"),
        ("rules: [{name: r, match: '*', candidates: [skip]}]\nconstraints: [{type: nope}]", "unknown constraint type"),
    ],
)
def test_bad_spaces_give_one_clear_error(text, fragment):
    with pytest.raises(SearchSpaceError) as info:
        SpaceSpec.from_yaml(text).resolve(MODULES, known_types={"skip"})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_rule_that_matches_nothing_names_rule_and_pattern():
    spec = SpaceSpec([Rule("ghost", "encoder.*", ["skip"])])
    with pytest.raises(SearchSpaceError, match=r"matches no module.*rule 'ghost'"):
        spec.resolve(MODULES)


def test_encodings_round_trip(space):
    rng = random.Random(3)
    for _ in range(20):
        cfg = space.sample(rng)
        idx = space.encode(cfg)
        assert space.decode(idx) == cfg
        oh = space.one_hot(cfg)
        assert len(oh) == space.one_hot_dim and sum(oh) == len(space)


def test_sampling_respects_constraints_and_is_seeded(space):
    a = [space.sample(random.Random(7)) for _ in range(3)]
    b = [space.sample(random.Random(7)) for _ in range(3)]
    assert a == b
    rng = random.Random(0)
    for _ in range(200):
        cfg = space.sample(rng)
        assert sum(v == "skip" for v in cfg.values()) <= 2
        assert cfg["mid_block.resnets.0"] != "skip"


def test_enumerate_small_space_counts_valid_configs():
    space = SearchSpace.from_choices({"a": ["x", "y"], "b": ["x", "y", "z"]}, [MaxCount(candidate="z", count=0)])
    cfgs = list(space.enumerate())
    assert len(cfgs) == 4 and len(set(cfgs)) == 4
    with pytest.raises(SearchSpaceError, match="more than limit"):
        list(space.enumerate(limit=3))


def test_validate_rejects_unknown_candidate_and_constraint_violations(space):
    with pytest.raises(SearchSpaceError, match="unknown candidate 'banana'.*path: mid_block.resnets.0"):
        space.validate({"mid_block.resnets.0": "banana"})
    with pytest.raises(SearchSpaceError, match="violates constraint"):
        space.validate({"mid_block.resnets.0": "skip"})
    full = space.validate({"down_blocks.0.resnets.0": "skip"})
    assert full["mid_block.resnets.0"] == "teacher" and len(full) == len(space)


def test_neighbours_differ_in_one_block(space):
    cfg = space.default_config()
    for n in space.neighbours(cfg):
        assert sum(n[p] != cfg[p] for p in space.paths) == 1
        assert space.is_valid(n)


def test_configuration_canonical_json_and_hash():
    a = Configuration({"b": "skip", "a": "teacher"})
    b = Configuration.from_json('{"a": "teacher", "b": "skip"}')
    assert a == b and a.hash == b.hash and a.to_json() == '{"a":"teacher","b":"skip"}'
    assert a.with_choice("a", "skip").hash != a.hash
    with pytest.raises(SearchSpaceError):
        Configuration.from_json("{not json")


def test_candidate_names_parse_back():
    for cand in [Candidate("skip"), Candidate("light_transformer", {"ff_mult": 2.5, "cross_attention": True})]:
        assert parse_candidate_name(cand.name) == cand


def test_model_free_space_from_nni_rejects_continuous():
    with pytest.raises(SearchSpaceError, match="not categorical.*path: lr"):
        SearchSpace.from_nni({"lr": {"_type": "uniform", "_value": [0, 1]}})
    space = SearchSpace.from_nni({"n": {"_type": "randint", "_value": [1, 4]}, "act": {"_type": "choice", "_value": ["relu", "gelu"]}})
    assert space["n"].names == ["1", "2", "3"] and space.values(space.default_config()) == {"n": 1, "act": "relu"}


def test_space_dict_round_trip_keeps_hash(space):
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))).hash == space.hash


def test_merge_drops_duplicates_records_them_and_changes_the_hash_only_then(space):
    assert space.merged == {} and "merged" not in space.to_dict()
    assert space.merge({}).hash == space.hash
    path = "down_blocks.0.resnets.0"
    merged = space.merge({path: {"bottleneck_resnet(ratio=0.5)": "bottleneck_resnet(ratio=0.25)"}})
    assert merged[path].names == ["teacher", "skip", "bottleneck_resnet(ratio=0.25)"]
    assert merged["mid_block.resnets.0"].names == space["mid_block.resnets.0"].names
    assert merged.merged == {path: {"bottleneck_resnet(ratio=0.5)": "bottleneck_resnet(ratio=0.25)"}}
    assert merged.hash != space.hash and merged.size * 4 == space.size * 3
    # a dropped name reads as the kept one; the record survives the dict round trip
    assert merged.validate({path: "bottleneck_resnet(ratio=0.5)"})[path] == "bottleneck_resnet(ratio=0.25)"
    back = SearchSpace.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert back.merged == merged.merged and back.hash == merged.hash
    with pytest.raises(SearchSpaceError, match="bad merge record"):
        space.merge({path: {"skip": "bottleneck_resnet(ratio=0.5)", "bottleneck_resnet(ratio=0.5)": "teacher"}})


def test_searchspace_imports_no_torch():
    code = "import sys, tocsr_nas.searchspace; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
