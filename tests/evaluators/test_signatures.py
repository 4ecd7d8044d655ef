"""Module and call signatures: equal exactly when a trace would count the same MACs."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from tocsr_nas.evaluators.signatures import call_signature, module_signature


def test_weights_do_not_matter_architecture_does():
    torch.manual_seed(0)
    a = ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=4, groups=4)
    torch.manual_seed(1)
    b = ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=4, groups=4)
    assert not torch.equal(a.conv1.weight, b.conv1.weight)
    assert module_signature(a) == module_signature(b)
    wider = ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=4, groups=4)
    assert module_signature(wider) != module_signature(a)


def test_flags_that_repr_hides_are_part_of_the_signature():
    # Upsample2D(interpolate=False) skips the 2x upsampling; its repr is the same
    plain, no_interp = Upsample2D(8, use_conv=True), Upsample2D(8, use_conv=True, interpolate=False)
    assert repr(plain) == repr(no_interp)
    assert module_signature(plain) != module_signature(no_interp)


def test_attention_processor_kind_is_part_of_the_signature():
    from diffusers.models.attention_processor import Attention

    sdpa, classic = Attention(8, heads=2, dim_head=4), Attention(8, heads=2, dim_head=4)
    sdpa.set_processor(AttnProcessor2_0())
    classic.set_processor(AttnProcessor())
    assert module_signature(sdpa) != module_signature(classic)
    other = Attention(8, heads=2, dim_head=4)
    other.set_processor(AttnProcessor2_0())
    assert module_signature(other) == module_signature(sdpa)  # no object address leaks in


class _WithBuffer(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.register_buffer("table", torch.zeros(n))


def test_buffers_are_part_of_the_signature():
    a, b = _WithBuffer(4), _WithBuffer(8)
    assert repr(a) == repr(b)
    assert module_signature(a) != module_signature(b)
    assert module_signature(a) == module_signature(_WithBuffer(4))


def test_call_signature_reads_shapes_dtypes_and_constants():
    x = torch.zeros(1, 4, 8, 8)
    same = call_signature((x,), {"temb": torch.ones(1, 3)})
    assert same == call_signature((torch.randn(1, 4, 8, 8),), {"temb": torch.randn(1, 3)})
    assert same != call_signature((x.double(),), {"temb": torch.ones(1, 3)})
    assert same != call_signature((torch.zeros(1, 4, 8, 9),), {"temb": torch.ones(1, 3)})
    assert same != call_signature((x,), {"temb": torch.ones(1, 3), "scale": 1.0})
    assert call_signature((x,), {"scale": 1.0}) != call_signature((x,), {"scale": 2.0})
