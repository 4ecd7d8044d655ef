"""Block input/output capture: exact calls, hook hygiene, errors, streaming over batches."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.surrogates.capture import BlockIO, CaptureError, capture_block_io, iter_capture

BLOCK_TYPES = ("ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D")


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=8,
        attention_head_dim=4,
    ).eval()


@pytest.fixture(scope="module")
def call():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10, 500]), torch.randn(2, 4, 16, generator=g))


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def test_every_block_reproduces_its_captured_output(unet, call):
    paths = [n for n, m in unet.named_modules() if type(m).__name__ in BLOCK_TYPES]
    captured = capture_block_io(unet, paths, call)
    assert list(captured) == paths
    for path, io in captured.items():
        assert isinstance(io, BlockIO)
        with torch.no_grad():
            again = io.call(unet.get_submodule(path))
        torch.testing.assert_close(_first(again), _first(io.output), rtol=0, atol=0)
    # transformer blocks receive their context and return_dict as keyword arguments
    attn = captured["down_blocks.0.attentions.0"]
    assert torch.equal(attn.kwargs["encoder_hidden_states"], call[2])
    assert attn.kwargs["return_dict"] is False
    # resnets receive the time embedding positionally
    assert captured["mid_block.resnets.0"].args[1].shape == (2, unet.config.block_out_channels[0] * 4)
    assert _hook_count(unet) == 0


def test_captured_last_block_is_the_model_output(unet, call):
    with torch.no_grad():
        expected = unet(*call).sample
    captured = capture_block_io(unet, ["conv_out"], call)["conv_out"]
    torch.testing.assert_close(captured.output, expected, rtol=0, atol=0)


def test_inputs_only_capture(unet, call):
    captured = capture_block_io(unet, ["down_blocks.1.resnets.0"], call, outputs=False)
    io = captured["down_blocks.1.resnets.0"]
    assert io.output is None
    assert io.args[0].shape == (2, 16, 4, 4)  # (B, C, H, W) after the first downsampler


def test_unknown_path_is_named(unet, call):
    with pytest.raises(CaptureError, match="down_blocks.7.resnets.0") as info:
        capture_block_io(unet, ["down_blocks.0.resnets.0", "down_blocks.7.resnets.0"], call)
    assert isinstance(info.value, TocsrError)
    assert _hook_count(unet) == 0


def test_block_that_never_runs_is_an_error():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    model = Unused()
    with pytest.raises(CaptureError, match="spare"):
        capture_block_io(model, ["used", "spare"], (torch.ones(1, 2),))
    assert _hook_count(model) == 0


def test_hooks_removed_after_an_exception(unet):
    wrong = (torch.randn(1, 3, 8, 8), torch.tensor([1]), torch.randn(1, 4, 16))  # 3 != 4 channels
    with pytest.raises(RuntimeError):
        capture_block_io(unet, ["conv_in", "mid_block.resnets.0"], wrong)
    assert _hook_count(unet) == 0


def test_in_place_modification_is_detected_and_clone_fixes_it():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True), nn.Linear(3, 1))
    x = torch.randn(4, 3)
    with pytest.raises(CaptureError, match="clone=True"):
        capture_block_io(model, ["0", "2"], (x,))
    captured = capture_block_io(model, ["0", "2"], (x,), clone=True)
    with torch.no_grad():
        before_relu = model[0](x)
    torch.testing.assert_close(captured["0"].output, before_relu)
    assert (captured["0"].output < 0).any()  # the ReLU did not touch the stored copy
    torch.testing.assert_close(captured["2"].args[0], before_relu.clamp_min(0))


def test_iter_capture_streams_batches_and_cleans_up(unet):
    g = torch.Generator().manual_seed(2)
    batches = [
        ((torch.randn(1, 4, 8, 8, generator=g), torch.tensor([t]), torch.randn(1, 4, 16, generator=g)), {})
        for t in (1, 400, 999)
    ]
    paths = ["down_blocks.0.resnets.0", "up_blocks.1.attentions.1"]
    stream = iter_capture(unet, paths, batches)
    first = next(stream)
    assert _hook_count(unet) > 0  # installed once for the whole stream
    rest = list(stream)
    assert _hook_count(unet) == 0
    captured = [first, *rest]
    assert len(captured) == 3
    for (args, _), io in zip(batches, captured):
        with torch.no_grad():
            expected = unet.get_submodule(paths[0])(*io[paths[0]].args)
        torch.testing.assert_close(io[paths[0]].output, expected, rtol=0, atol=0)
    # different batches give different inputs
    assert not torch.equal(captured[0][paths[0]].args[0], captured[1][paths[0]].args[0])

    # closing a stream early also removes the hooks
    stream = iter_capture(unet, paths, batches)
    next(stream)
    stream.close()
    assert _hook_count(unet) == 0


def test_block_io_to_moves_tensors():
    io = BlockIO(args=(torch.ones(1), 3), kwargs={"ctx": torch.zeros(2)}, output=(torch.ones(2),))
    moved = io.to("cpu")
    assert moved.args[1] == 3 and moved.kwargs["ctx"].shape == (2,) and isinstance(moved.output, tuple)
