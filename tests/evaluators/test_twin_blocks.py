"""Identical teacher blocks run once in the whole-model trace, and the table does not change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import nn

from tocsr_nas.evaluators import CostTable, count_complexity
from tocsr_nas.evaluators.twin_blocks import TwinBlocks
from tocsr_nas.surrogates.capture import capture_block_io

BLOCK_TYPES = ("ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D")


class CountedConv(nn.Module):
    """A 3x3 conv block that counts how often its real forward ran."""

    def __init__(self, channels: int, output: str = "tensor"):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.output = output
        self.runs = 0

    def forward(self, x, scale=1.0):
        self.runs += 1
        y = self.conv(x) * scale  # (B, C, H, W)
        if self.output == "tuple":
            return (y, None)
        if self.output == "base_output":
            return Transformer2DModelOutput(sample=y)
        return y


class Repeats(nn.Module):
    """Three identical blocks of each output kind, one that differs, and a matmul between blocks.

    The matmul feeding ``b`` runs outside every block: when ``b`` is a stand-in, the matmul must
    still be counted (the stand-in keeps its inputs in the traced graph).
    """

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = CountedConv(4), CountedConv(4), CountedConv(4)
        self.t1, self.t2 = CountedConv(4, "tuple"), CountedConv(4, "tuple")
        self.o1, self.o2 = CountedConv(4, "base_output"), CountedConv(4, "base_output")
        self.wide = CountedConv(8)
        self.mix = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        x = self.a(x)
        x = torch.einsum("bchw,cd->bdhw", x, self.mix)  # (B, C, H, W): 4*4*H*W MACs, no module
        x = self.b(x) + self.c(x)
        x = self.t1(x)[0] + self.t2(x)[0]
        x = self.o1(x).sample + self.o2(x).sample
        return self.wide(torch.cat([x, x], dim=1))


PATHS = ["a", "b", "c", "t1", "t2", "o1", "o2", "wide"]


def _half(path, name, block):
    return nn.Conv2d(block.conv.in_channels, block.conv.out_channels, 1)


def _build(model, x, dedupe):
    choices = {p: ["teacher", "half"] for p in PATHS}
    return CostTable.build(model, (x,), {}, choices, _half, dedupe_blocks=dedupe)


def test_repeated_blocks_give_the_same_table_with_and_without_dedupe():
    torch.manual_seed(0)
    model, x = Repeats().eval(), torch.randn(1, 4, 6, 6)
    plain = _build(model, x, dedupe=False)
    assert [model.get_submodule(p).runs for p in PATHS] == [1] * len(PATHS)
    deduped = _build(model, x, dedupe=True)
    # a, t1, o1 and wide ran again; b and c, t2, o2 were stand-ins
    assert [model.get_submodule(p).runs for p in PATHS] == [2, 1, 1, 2, 1, 2, 1, 2]
    assert deduped.to_dict() == plain.to_dict()
    assert deduped.teacher() == count_complexity(model, (x,))
    for twin, first in {"b": "a", "c": "a", "t2": "t1", "o2": "o1"}.items():
        assert deduped.cell(twin, "teacher") == deduped.cell(first, "teacher")


def test_stand_ins_keep_the_ops_that_feed_them():
    # Without the matmul's cost the base would shrink when b and c are stand-ins.
    torch.manual_seed(0)
    model, x = Repeats().eval(), torch.randn(1, 4, 6, 6)
    table = _build(model, x, dedupe=True)
    assert table.base.macs == 4 * 4 * 6 * 6


def test_stand_ins_mirror_the_output_structure():
    torch.manual_seed(0)
    model = nn.ModuleDict({"one": CountedConv(4, "base_output"), "two": CountedConv(4, "base_output")})
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad(), TwinBlocks(model, ["one", "two"]) as twins:
        real = model["one"](x)
        stand_in = model["two"](x)
        other_call = model["two"](x, scale=2.0)  # a different call signature runs for real
    assert twins.twin_of == {"two": "one"}
    assert type(stand_in) is Transformer2DModelOutput and list(stand_in) == ["sample"]
    assert stand_in.sample.shape == real.sample.shape and stand_in.sample.dtype == real.sample.dtype
    assert not stand_in.sample.any()
    assert other_call.sample.abs().sum() > 0 and model["two"].runs == 1
    assert "forward" not in vars(model["one"]) and "forward" not in vars(model["two"])


def test_forward_is_restored_after_an_error():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    with pytest.raises(RuntimeError, match="boom"), TwinBlocks(model, ["0", "1"]):
        assert "forward" in vars(model[0])
        raise RuntimeError("boom")
    assert "forward" not in vars(model[0]) and "forward" not in vars(model[1])


def test_outputs_with_unknown_objects_are_never_imitated():
    class Opaque:
        def __init__(self, tensor):
            self.tensor = tensor

    class Block(nn.Module):
        def forward(self, x):
            return Opaque(x + 1)

    model = nn.ModuleDict({"one": Block(), "two": Block()})
    with torch.no_grad(), TwinBlocks(model, ["one", "two"]) as twins:
        model["one"](torch.zeros(2))
        out = model["two"](torch.zeros(2))
    assert twins.twin_of == {}
    assert torch.equal(out.tensor, torch.ones(2))


def test_blocks_that_differ_only_in_a_flag_are_not_twins():
    class Flagged(nn.Module):
        def __init__(self, square):
            super().__init__()
            self.square = square

        def forward(self, x):
            return x @ x.transpose(-1, -2) if self.square else x

    model = nn.ModuleDict({"one": Flagged(False), "two": Flagged(True)})
    with torch.no_grad(), TwinBlocks(model, ["one", "two"]) as twins:
        model["one"](torch.ones(3, 3))
        out = model["two"](torch.ones(3, 3))
    assert twins.twin_of == {} and out.sum() == 27


def test_unet_with_repeated_blocks_gets_the_same_table(repeating_unet, unet_call):
    model = repeating_unet
    args, kwargs = unet_call
    paths = [n for n, m in model.named_modules() if type(m).__name__ in BLOCK_TYPES]
    choices = {p: ["teacher", "half"] for p in paths}

    def half(path, name, block):
        # a 1x1 conv on the hidden states with the block's output shape, whatever the block
        io_ = io[path]
        out = io_.output[0] if isinstance(io_.output, tuple) else io_.output
        return _OneByOne(io_.args[0].shape[1], out.shape[1], out.shape[-1] / io_.args[0].shape[-1])

    io = capture_block_io(model, paths, args, kwargs)
    with torch.no_grad(), TwinBlocks(model, paths) as twins:
        model(*args, **kwargs)
    assert {"down_blocks.0.resnets.1", "down_blocks.0.attentions.1"} <= set(twins.twin_of)
    plain = CostTable.build(model, args, kwargs, choices, half, dedupe_blocks=False)
    deduped = CostTable.build(model, args, kwargs, choices, half)
    assert deduped.to_dict() == plain.to_dict()
    assert deduped.teacher() == count_complexity(model, args, kwargs)
    for path in paths:
        alone = count_complexity(model.get_submodule(path), io[path].args, io[path].kwargs)
        assert deduped.cell(path, "teacher").complexity() == alone, path


class _OneByOne(nn.Module):
    def __init__(self, cin, cout, scale):
        super().__init__()
        self.conv, self.scale = nn.Conv2d(cin, cout, 1), scale

    def forward(self, hidden_states, *args, return_dict=None, **kwargs):
        y = F.interpolate(self.conv(hidden_states), scale_factor=self.scale) if self.scale != 1 else self.conv(hidden_states)
        return (y,) if return_dict is False else y
