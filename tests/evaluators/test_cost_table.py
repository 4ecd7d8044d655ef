"""Cost tables: lookups equal whole-model traces of assembled models, exactly."""

from __future__ import annotations

import copy
import itertools
import json
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators import BlockCost, Complexity, CostTable, CostTableError, count_complexity
from tocsr_nas.evaluators import cost_table as cost_table_module
from tocsr_nas.surrogates.capture import capture_block_io

# ----------------------------------------------------------------------------- stand-in blocks
# Simple candidates with the call signature and output shape of the blocks they replace.


class ConvResnet(nn.Module):
    """A ResnetBlock2D stand-in: 1x1 conv plus a projected time embedding."""

    def __init__(self, block):
        super().__init__()
        self.conv = nn.Conv2d(block.in_channels, block.out_channels, 1)
        self.time = nn.Linear(block.time_emb_proj.in_features, block.out_channels)

    def forward(self, input_tensor, temb, *args, **kwargs):
        return self.conv(input_tensor) + self.time(F.silu(temb))[:, :, None, None]  # (B, C, H, W)


class SkipResnet(nn.Module):
    """Identity, or a 1x1 projection when the channels change."""

    def __init__(self, block):
        super().__init__()
        changes = block.in_channels != block.out_channels
        self.proj = nn.Conv2d(block.in_channels, block.out_channels, 1) if changes else nn.Identity()

    def forward(self, input_tensor, temb, *args, **kwargs):
        return self.proj(input_tensor)


class SelfAttentionOnly(nn.Module):
    """A Transformer2DModel stand-in: single-head self-attention over the pixels, no context."""

    def __init__(self, block):
        super().__init__()
        channels = block.config.in_channels
        self.qkv = nn.Linear(channels, 3 * channels)

    def forward(self, hidden_states, encoder_hidden_states=None, return_dict=True, **kwargs):
        b, c, h, w = hidden_states.shape
        tokens = hidden_states.flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return ((hidden_states + out),)


class PoolDown(nn.Module):
    def __init__(self, block):
        super().__init__()

    def forward(self, hidden_states, *args, **kwargs):
        return F.avg_pool2d(hidden_states, 2)


class NearestUp(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.conv = nn.Conv2d(block.channels, block.out_channels, 1)

    def forward(self, hidden_states, output_size=None, *args, **kwargs):
        return self.conv(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))


CANDIDATES = {
    "ResnetBlock2D": {"conv1x1": ConvResnet, "skip": SkipResnet},
    "Transformer2DModel": {"self_attention": SelfAttentionOnly},
    "Downsample2D": {"pool": PoolDown},
    "Upsample2D": {"nearest": NearestUp},
}


def instantiate(path: str, name: str, block: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return CANDIDATES[type(block).__name__][name](block)


def assemble(model: nn.Module, config: dict[str, str]) -> nn.Module:
    """A copy of ``model`` with the configured blocks actually swapped in."""
    model = copy.deepcopy(model)
    for path, name in config.items():
        if name == "teacher":
            continue
        parent_path, _, child = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        setattr(parent, child, instantiate(path, name, getattr(parent, child)))
    return model


@pytest.fixture(scope="module")
def choices(tiny_unet, block_paths):
    return {
        p: ["teacher", *CANDIDATES[type(tiny_unet.get_submodule(p)).__name__]] for p in block_paths
    }


@pytest.fixture(scope="module")
def table(tiny_unet, unet_call, choices):
    args, kwargs = unet_call
    block_io = capture_block_io(tiny_unet, list(choices), args, kwargs, outputs=False)
    return CostTable.build(
        tiny_unet, args, kwargs, choices, instantiate, block_io, resolution=64,
        metadata={"teacher": "tiny-test", "space": "stand-ins"},
    )


# ----------------------------------------------------------------------------- tests


def test_teacher_equals_whole_model_trace(table, tiny_unet, unet_call):
    args, kwargs = unet_call
    for mode in (True, False):
        assert table.teacher(count_attention=mode) == count_complexity(
            tiny_unet, args, kwargs, count_attention=mode
        )


@pytest.mark.parametrize("seed", range(3))
def test_random_configurations_equal_assembled_model_traces(table, tiny_unet, unet_call, choices, seed):
    args, kwargs = unet_call
    rng = random.Random(seed)
    config = {p: rng.choice(names) for p, names in choices.items()}
    assert any(name != "teacher" for name in config.values())
    assembled = assemble(tiny_unet, config)
    for mode in (True, False):
        expected = count_complexity(assembled, args, kwargs, count_attention=mode)
        assert table.cost(config, count_attention=mode) == expected


def test_all_cheapest_configuration_equals_its_trace(table, tiny_unet, unet_call):
    args, kwargs = unet_call
    config, cost = table.min_cost("gmacs")
    assert cost == count_complexity(assemble(tiny_unet, config), args, kwargs)
    assert cost.macs < table.teacher().macs


def test_min_cost_is_the_brute_force_minimum():
    cells = {
        "a": {"teacher": BlockCost(10, 8, 5), "skip": BlockCost(0, 0, 0), "small": BlockCost(4, 4, 9)},
        "b": {"teacher": BlockCost(7, 7, 7), "small": BlockCost(3, 1, 8)},
        "c": {"teacher": BlockCost(9, 2, 1), "skip(proj=true)": BlockCost(1, 1, 1), "wide": BlockCost(2, 2, 0)},
    }
    table = CostTable(cells, base=BlockCost(100, 90, 50))
    for objective, exclude, attn in itertools.product(("gmacs", "params"), ((), ("skip",)), (True, False)):
        rows = [
            [(n, c) for n, c in cells[p].items() if n.split("(")[0] not in exclude] for p in cells
        ]
        field = "params" if objective == "params" else "macs"
        best = min(
            getattr(table.cost({p: n for p, (n, _) in zip(cells, combo)}, count_attention=attn), field)
            for combo in itertools.product(*rows)
        )
        config, cost = table.min_cost(objective, exclude=exclude, count_attention=attn)
        assert getattr(cost, field) == best
        assert cost == table.cost(config, count_attention=attn)
        assert not any(n.startswith("skip") for n in config.values()) or not exclude


def test_identical_signatures_are_traced_once(tiny_unet, unet_call, monkeypatch):
    # Three identical linear blocks (same class, config and input shape) and one different one.
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)
            self.d = nn.Linear(4, 2)

        def forward(self, x):
            return self.d(self.c(self.b(self.a(x))))

    traced = []
    real = cost_table_module.count_macs
    monkeypatch.setattr(
        cost_table_module, "count_macs", lambda m, *a, **k: traced.append(m) or real(m, *a, **k)
    )
    model = Stack()
    x = torch.randn(3, 4)
    choices = {p: ["teacher", "half"] for p in "abcd"}
    make = lambda path, name, block: nn.Linear(block.in_features, block.out_features, bias=False)  # noqa: E731
    io = capture_block_io(model, list(choices), (x,), outputs=False)
    table = CostTable.build(model, (x,), {}, choices, make, io)
    # the whole model (which yields the teacher blocks too) + candidates {a=b=c, d}
    assert len(traced) == 2
    assert table.traces == 1 + 2
    for path in "abcd":
        assert table.cell(path, "teacher") == table.cell("a" if path != "d" else "d", "teacher")
    assert table.cost({"b": "half"}) == count_complexity(model, (x,)) - Complexity(0, 4)


def test_unet_table_dedupes(table, choices):
    candidates = sum(len(names) - 1 for names in choices.values())
    # identical stand-ins on identical inputs (e.g. up_blocks.1.attentions.0 and .1) share a trace
    assert table.traces < 1 + candidates


def test_teacher_cells_equal_isolated_traces(table, tiny_unet, unet_call):
    args, kwargs = unet_call
    io = capture_block_io(tiny_unet, table.paths, args, kwargs, outputs=False)
    for path in table.paths:
        alone = count_complexity(tiny_unet.get_submodule(path), io[path].args, io[path].kwargs)
        assert table.cell(path, "teacher").complexity() == alone, path


def test_save_load_round_trip(table, tmp_path):
    path = table.save(tmp_path / "tables" / "cost.json")
    assert [p.name for p in path.parent.iterdir()] == ["cost.json"]  # no temporary file left
    loaded = CostTable.load(path, expect={"teacher": "tiny-test", "resolution": 64})
    assert loaded.to_dict() == table.to_dict()
    assert loaded.paths == table.paths
    config = {p: table.candidates(p)[-1] for p in table.paths}
    assert loaded.cost(config) == table.cost(config)
    assert json.loads(path.read_text())["base"] == table.base.to_dict()


def test_load_rejects_stale_or_broken_tables(table, tmp_path):
    path = table.save(tmp_path / "cost.json")
    with pytest.raises(CostTableError, match="teacher"):
        CostTable.load(path, expect={"teacher": "another-teacher"})
    with pytest.raises(CostTableError, match="resolution"):
        CostTable.load(path, expect={"resolution": 512})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TocsrError, match="JSON"):
        CostTable.load(tmp_path / "bad.json")
    with pytest.raises(CostTableError, match="cannot read"):
        CostTable.load(tmp_path / "missing.json")


def test_unknown_block_or_candidate_is_named(table):
    with pytest.raises(CostTableError, match="down_blocks.9"):
        table.cost({"down_blocks.9.resnets.0": "teacher"})
    with pytest.raises(CostTableError, match="wide"):
        table.cost({"mid_block.resnets.0": "wide"})


def test_build_rejects_nested_and_uncaptured_blocks(tiny_unet, unet_call):
    args, kwargs = unet_call
    paths = ["down_blocks.0", "down_blocks.0.resnets.0"]
    io = capture_block_io(tiny_unet, paths, args, kwargs, outputs=False)
    with pytest.raises(CostTableError, match="nested"):
        CostTable.build(tiny_unet, args, kwargs, {p: ["teacher"] for p in paths}, instantiate, io)
    with pytest.raises(CostTableError, match="no captured inputs"):
        CostTable.build(tiny_unet, args, kwargs, {"mid_block": ["teacher"]}, instantiate, io)


def test_block_table_lists_every_cell(table, choices):
    frame = table.block_table()
    assert list(frame.columns[:4]) == ["path", "candidate", "gmacs", "params"]
    assert len(frame) == sum(len(n) for n in choices.values())
    row = frame[(frame.path == "mid_block.attentions.0") & (frame.candidate == "teacher")].iloc[0]
    cell = table.cell("mid_block.attentions.0", "teacher")
    assert row.gmacs == cell.macs / 1e9 and row.params == cell.params
    assert cell.macs > cell.macs_no_attention  # attention is stored in both modes


def test_inputs_recorded_during_the_trace_give_the_same_table(table, tiny_unet, unet_call, choices):
    args, kwargs = unet_call
    own = CostTable.build(
        tiny_unet, args, kwargs, choices, instantiate, resolution=64,
        metadata={"teacher": "tiny-test", "space": "stand-ins"},
    )
    assert own.to_dict() == table.to_dict()
    assert own.traces == table.traces


def test_block_running_twice_is_an_error():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(3, 3)

        def forward(self, x):
            return self.block(self.block(x))

    with pytest.raises(CostTableError, match="'block' ran 2 times"):
        CostTable.build(Twice(), (torch.randn(1, 3),), {}, {"block": ["teacher"]}, instantiate)
