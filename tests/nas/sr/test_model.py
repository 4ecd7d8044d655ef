"""The conditioned SR UNet and the SR model folder."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tocsr_nas.sr.model import Backbone, SRModel, SRModelError, SRUNet, load_backbone, widen_conv_in
from tocsr_nas.sr.testing import micro_teacher, micro_unet
from tocsr_nas.teacher import NullContext


def test_zero_init_conv_in_reproduces_the_backbone():
    teacher = micro_teacher()
    net = SRUNet(copy.deepcopy(teacher.unet), teacher.context)
    z_t, z_lr = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        expected = teacher.unet(z_t, t, encoder_hidden_states=teacher.context(2), return_dict=False)[0]
        got = net(z_t, t, z_lr)
    assert net.backbone.conv_in.in_channels == 32
    assert torch.equal(net.backbone.conv_in.weight[:, 16:], torch.zeros_like(net.backbone.conv_in.weight[:, 16:]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_widened_conv_in_learns_from_the_condition():
    net = SRUNet(micro_unet(), NullContext(num_tokens=2, dim=8))
    z = torch.randn(1, 16, 8, 8)
    net(z, torch.tensor([10]), torch.randn(1, 16, 8, 8)).square().mean().backward()
    assert net.backbone.conv_in.weight.grad[:, 16:].abs().sum() > 0


def test_widen_conv_in_rejects_what_is_not_a_plain_conv():
    with pytest.raises(SRModelError, match="Conv2d"):
        widen_conv_in(torch.nn.Linear(4, 4), 4)
    with pytest.raises(SRModelError, match="conv_in"):
        SRUNet(torch.nn.Identity(), NullContext(num_tokens=2, dim=8))


def test_timestep_may_be_an_int():
    net = SRUNet(micro_unet(), NullContext(num_tokens=2, dim=8))
    z = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(z, 5, z), net(z, torch.tensor([5, 5]), z))


def test_save_load_round_trip(tmp_path):
    model = SRModel.from_backbone(Backbone.from_teacher(micro_teacher()), sampler_steps=3)
    with torch.no_grad():
        model.net.backbone.conv_in.weight[:, 16:].normal_()  # not the zero init any more
    model.save(tmp_path / "m")
    again = SRModel.load(tmp_path / "m")
    z = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(again.net(z, 10, z), model.net(z, 10, z), rtol=0, atol=0)
    assert again.config["sampler"]["steps"] == 3 and again.kind == "multistep"
    assert json.loads((tmp_path / "m" / "sr.json").read_text())["backbone"]["format"] == "diffusers-unet"
    again.save(tmp_path / "m")  # re-saving in place keeps a loadable folder
    SRModel.load(tmp_path / "m")


def test_load_backbone_from_a_teacher_folder(teacher_dir):
    bb = load_backbone(teacher_dir)
    assert bb.format == "diffusers-unet" and bb.unet.conv_in.in_channels == 16
    assert bb.source["teacher_fingerprint"]


def test_bad_folders_are_clear_errors(tmp_path, teacher_dir):
    with pytest.raises(SRModelError, match="not found"):
        load_backbone(tmp_path / "missing")
    with pytest.raises(SRModelError, match="teacher folder"):
        SRModel.load(teacher_dir)
    with pytest.raises(SRModelError, match="no sr.json"):
        SRModel.load(tmp_path)


def test_load_checks_the_kind(sr_dir):
    with pytest.raises(SRModelError, match="multistep model, expected a onestep"):
        SRModel.load(sr_dir, kind="onestep")
