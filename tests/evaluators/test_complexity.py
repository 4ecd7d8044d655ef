"""fvcore complexity: the SDPA handle, the zero-cost op list, parameters, the SD2.1 teacher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators import Complexity, UnsupportedOpError, count_complexity, count_macs


class Attend(nn.Module):
    """One SDPA call on given tensors, nothing else."""

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_counted_as_two_matmuls():
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 6)
    # Q K^T: (2*3) * 5 * 7 * 4 ; softmax(.) V: (2*3) * 5 * 7 * 6
    expected = 2 * 3 * 5 * 7 * 4 + 2 * 3 * 5 * 7 * 6
    assert count_complexity(Attend(), (q, k, v)).macs == expected
    assert count_complexity(Attend(), (q, k, v), count_attention=False).macs == 0
    assert count_macs(Attend(), (q, k, v)) == (expected, expected)


def test_linear_and_conv_follow_fvcore_convention():
    lin = nn.Linear(8, 4)
    assert count_complexity(lin, (torch.zeros(3, 8),)) == Complexity(macs=3 * 8 * 4, params=36)
    conv = nn.Conv2d(2, 5, 3, padding=1)
    # one MAC per weight element per output pixel: 5 * 2 * 3 * 3 * (6 * 6)
    assert count_complexity(conv, torch.zeros(1, 2, 6, 6)).macs == 5 * 2 * 9 * 36


def test_unet_attention_counted_exactly(tiny_unet, unet_call):
    args, kwargs = unet_call
    with_attn = count_complexity(tiny_unet, args, kwargs)
    without = count_complexity(tiny_unet, args, kwargs, count_attention=False)
    # Each Transformer2DModel with C channels on an N-token map attends N queries to N tokens
    # (self) and to L=4 context tokens (cross); heads * head_dim = C, so per transformer
    #   self:  N * N * (C + C)      cross: N * L * (C + C)     ->  2 * C * N * (N + L).
    per = lambda c, n: 2 * c * n * (n + 4)  # noqa: E731
    # down_blocks.0 and up_blocks.1 (x2) at 8x8 with 16 channels; the mid block at 4x4 with 32
    expected = 3 * per(16, 64) + per(32, 16)
    assert with_attn.macs - without.macs == expected
    assert with_attn.params == without.params == sum(p.numel() for p in tiny_unet.parameters())


def test_default_figure_equals_plain_fvcore(tiny_unet, unet_call):
    from fvcore.nn import FlopCountAnalysis

    args, kwargs = unet_call

    class Positional(nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, *a):
            return self.unet(*a, return_dict=False)

    plain = FlopCountAnalysis(Positional(tiny_unet), args)
    plain.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert count_complexity(tiny_unet, args, kwargs, count_attention=False).macs == plain.total()


class Spectral(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        return self.proj(torch.fft.fft2(x).real)


class Decompose(nn.Module):
    def forward(self, x):
        return torch.linalg.svd(x).S


@pytest.mark.parametrize(("module", "op"), [(Spectral(), "fft"), (Decompose(), "svd")])
def test_unsupported_op_is_an_error_naming_it(module, op):
    with pytest.raises(UnsupportedOpError, match=op) as info:
        count_complexity(module, (torch.randn(2, 4, 4),))
    assert isinstance(info.value, TocsrError)
    assert any(op in name for name in info.value.ops)


def test_zero_cost_ops_do_not_raise():
    class Elementwise(nn.Module):
        def forward(self, x):
            return torch.softmax(F.silu(x) * 2 + x.exp() - x.sin() / 3, dim=-1).mean(dim=0)

    assert count_complexity(Elementwise(), (torch.randn(3, 4),)).macs == 0


def test_kwargs_and_dataclass_outputs_are_traced(tiny_unet, unet_call):
    args, _ = unet_call
    # return_dict=True gives a UNet2DConditionOutput dataclass: it must be flattened
    as_dataclass = count_complexity(tiny_unet, args[:2], {"encoder_hidden_states": args[2]})
    assert as_dataclass == count_complexity(tiny_unet, args, {"return_dict": False})


def test_complexity_arithmetic():
    a, b = Complexity(macs=3_000_000_000, params=2_000_000), Complexity(macs=1, params=1)
    assert a + b == Complexity(3_000_000_001, 2_000_001)
    assert (a + b) - b == a
    assert sum([a, b]) == a + b
    assert a.gmacs == 3.0 and a.mparams == 2.0


def test_sd21_vae16_unet_has_paper_parameter_count():
    # SD2.1's UNet config with 16 latent channels; built on the meta device (no memory, same
    # constructors) because only the parameter count is checked here.
    with torch.device("meta"):
        unet = UNet2DConditionModel(
            sample_size=64,
            in_channels=16,
            out_channels=16,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            attention_head_dim=(5, 10, 20, 20),
            cross_attention_dim=1024,
            use_linear_projection=True,
        )
    assert sum(p.numel() for p in unet.parameters()) == 865_979_856
