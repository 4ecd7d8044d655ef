"""The supernet: bit-exact teacher, routing without copying, standalone assembly, tracing."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from micro_distill import shared_library, unet_calls

from tocsr_nas.searchspace import SearchSpace
from tocsr_nas.searchspace.errors import SearchSpaceError
from tocsr_nas.surrogates.errors import SurrogateError
from tocsr_nas.surrogates.library import LibraryMismatchError
from tocsr_nas.surrogates.supernet import SuperNet, Switch

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS, KWARGS = unet_calls(1, 3, seed=7)[0]


def _out(model) -> torch.Tensor:
    with torch.no_grad():
        return model(*ARGS, **KWARGS)[0]


@pytest.fixture()
def wrapped():
    """``(teacher copy run before wrapping, its output, supernet over a fresh copy)``."""
    micro = shared_library()
    teacher = copy.deepcopy(micro.unet)
    reference = _out(teacher)
    supernet = SuperNet(copy.deepcopy(micro.unet), micro.library)
    return micro, reference, supernet


def test_all_teacher_configuration_is_bit_exact(wrapped):
    micro, reference, supernet = wrapped
    assert supernet.configuration == micro.space.teacher_config()
    assert torch.equal(_out(supernet), reference)
    assert len(supernet.switches) == len(micro.space)
    assert all(isinstance(supernet.unet.get_submodule(p), Switch) for p in micro.space.paths)


def test_set_configuration_routes_and_comes_back(wrapped):
    micro, reference, supernet = wrapped
    for path in ("down_blocks.0.resnets.0", "up_blocks.0.attentions.0", "up_blocks.0.upsamplers.0"):
        for name in micro.space[path].names[1:]:
            supernet.set_configuration({path: name})
            assert supernet.configuration[path] == name
            assert not torch.equal(_out(supernet), reference), (path, name)
    supernet.set_configuration({})
    assert torch.equal(_out(supernet), reference)


def test_switching_copies_and_loads_nothing(wrapped, monkeypatch):
    micro, _, supernet = wrapped
    storage = {k: v.data_ptr() for k, v in supernet.state_dict().items()}
    monkeypatch.setattr(micro.library, "load", lambda *a, **k: pytest.fail("set_configuration reloaded weights"))
    rng = random.Random(0)
    for _ in range(20):
        supernet.set_configuration(micro.space.sample(rng))
    assert {k: v.data_ptr() for k, v in supernet.state_dict().items()} == storage


def test_assembled_is_standalone_and_matches_the_routed_supernet(wrapped):
    micro, reference, supernet = wrapped
    cfg = micro.space.sample(random.Random(3))
    supernet.set_configuration(cfg)
    routed = _out(supernet)
    model = supernet.assembled()
    assert type(model) is type(micro.unet)
    assert not any(isinstance(m, Switch) for m in model.modules())
    torch.testing.assert_close(_out(model), routed, rtol=0, atol=0)
    for path, name in cfg.items():
        module = model.get_submodule(path)
        expected = type(micro.unet.get_submodule(path)) if name == "teacher" else type(supernet.switches[path].module(name))
        assert type(module) is expected
        if name != "teacher":
            assert module is not supernet.switches[path].module(name)  # a copy, not shared
    # the supernet is unchanged
    assert all(isinstance(supernet.unet.get_submodule(p), Switch) for p in micro.space.paths)
    assert supernet.configuration == cfg
    teacher_model = supernet.assembled(micro.space.teacher_config())
    assert torch.equal(_out(teacher_model), reference)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_traceable_with_a_configuration(wrapped):
    micro, _, supernet = wrapped
    supernet.set_configuration(micro.space.sample(random.Random(5)))
    sample, t = ARGS

    class Wrapper(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, sample, t, context):
            return self.net(sample, t, encoder_hidden_states=context, return_dict=False)[0]

    wrapper = Wrapper(supernet).eval()
    context = KWARGS["encoder_hidden_states"]
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, (sample, t, context), check_trace=False)
        torch.testing.assert_close(traced(sample, t, context), wrapper(sample, t, context))


def test_invalid_configurations_are_refused(wrapped):
    _, _, supernet = wrapped
    with pytest.raises(SearchSpaceError, match="unknown candidate"):
        supernet.set_configuration({"down_blocks.0.resnets.0": "nope"})
    with pytest.raises(SearchSpaceError, match="not in the space"):
        supernet.set_configuration({"no.such.block": "teacher"})


def test_library_of_another_space_is_refused():
    micro = shared_library()
    other = SearchSpace(micro.space.blocks[:2], name="other")
    with pytest.raises(LibraryMismatchError, match="search space"):
        SuperNet(copy.deepcopy(micro.unet), micro.library, other)


def test_restore_unwraps_and_double_wrapping_is_refused():
    micro = shared_library()
    unet = copy.deepcopy(micro.unet)
    originals = {p: unet.get_submodule(p) for p in micro.space.paths}
    supernet = SuperNet(unet, micro.library)
    with pytest.raises(SurrogateError, match="already wrapped"):
        SuperNet(unet, micro.library)
    assert supernet.restore() is unet
    assert all(unet.get_submodule(p) is m for p, m in originals.items())
