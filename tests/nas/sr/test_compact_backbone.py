"""An exported compact UNet as the SR backbone (``tocsr-nas export`` -> ``sr train`` -> ``upscale``)."""

from __future__ import annotations

import random

import pytest
import torch

from tocsr_nas.stages.distill import DistillConfig, distill_teacher
from tocsr_nas.stages.export import export_compact, load_compact
from tocsr_nas.stages.space import build_space
from tocsr_nas.searchspace import SpaceSpec
from tocsr_nas.sr.model import SRModel, load_backbone
from tocsr_nas.sr.testing import micro_teacher
from tocsr_nas.sr.train import SRTrainConfig, train_sr
from tocsr_nas.sr.upscale import super_resolve

from .conftest import SMALL_SR

SPACE = """
name: sr-compact-test
rules:
  - name: resnets
    match: "*resnets.*"
    type: ResnetBlock2D
    candidates: [{type: bottleneck_resnet, grid: {ratio: [0.5]}}]
"""


@pytest.fixture(scope="module")
def compact_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("compact")
    teacher = micro_teacher()
    space = build_space(teacher.unet, SpaceSpec.from_yaml(SPACE), probe=teacher.unet_example_inputs(1, resolution=32))
    cfg = DistillConfig(steps=1, samples=2, val_samples=2, batch_size=2, capture_batch=2, resolution=32)
    library = distill_teacher(teacher, space, root / "lib", cfg, progress=False)
    config = space.sample(random.Random(0))
    export_compact(teacher, space, library, config, root / "compact", resolution=32)
    return root / "compact"


def test_compact_backbone_trains_saves_and_upscales(compact_dir, tmp_path):
    bb = load_backbone(compact_dir)
    assert bb.format == "compact"
    z = torch.randn(1, 16, 8, 8)
    compact = load_compact(compact_dir)
    model = train_sr(bb, tmp_path / "sr", SRTrainConfig(**{**SMALL_SR, "steps": 0}), progress=False)
    ctx = bb.context(1)
    with torch.no_grad():  # zero steps: the SR model is the compact UNet
        expected = compact(z, torch.tensor([30]), encoder_hidden_states=ctx, return_dict=False)[0]
        torch.testing.assert_close(model.net(z, 30, torch.randn_like(z)), expected, rtol=0, atol=1e-6)
    again = SRModel.load(tmp_path / "sr")
    assert again.config["backbone"]["format"] == "compact"
    assert sorted(p.name for p in (tmp_path / "sr" / "backbone").iterdir()) == ["compact.json", "unet.safetensors"]
    assert super_resolve(again, torch.zeros(1, 3, 9, 6)).shape == (1, 3, 36, 24)
