"""Blockwise distillation: the loss, feature capture, per-pair training, the pool, resume."""

from __future__ import annotations

import json

import pytest
import torch
from micro_distill import FINGERPRINT, build_library, capture, micro_space, micro_unet, shared_library

from tocsr_nas.executors import LocalExecutor
from tocsr_nas.searchspace import SearchSpace
from tocsr_nas.searchspace.candidates import Candidate
from tocsr_nas.surrogates.distill import (
    TrainSettings,
    distill,
    evaluate_loss,
    normalised_mse,
    output_energy,
    plan_jobs,
    train_pair,
)
from tocsr_nas.surrogates.errors import SurrogateError
from tocsr_nas.surrogates.library import LibraryMismatchError, SurrogateLibrary, pair_files

pytestmark = pytest.mark.usefixtures("one_thread")


def test_normalised_mse_is_relative_squared_error():
    y = torch.randn(4, 3, 5, 5)
    energy = float(y.pow(2).mean())
    assert float(normalised_mse(torch.zeros_like(y), y, energy)) == pytest.approx(1.0)
    assert float(normalised_mse(y, y, energy)) == 0.0
    assert float(normalised_mse(2 * y, y, energy)) == pytest.approx(1.0)
    with pytest.raises(SurrogateError, match="differs"):
        normalised_mse(y[:, :2], y, energy)


def test_captured_features_reproduce_the_teacher_block(tmp_path):
    unet = micro_unet()
    space = micro_space(unet)
    cache = capture(unet, space, tmp_path)
    for path in space.paths:
        feats = cache.read(path, "train")
        assert len(feats) == 64
        block = unet.get_submodule(path)
        with torch.no_grad():
            first_call = torch.arange(16, 32)  # exactly the second captured forward pass: bit for bit
            assert torch.equal(feats.call(block, first_call), feats.target[first_call]), path
            index = torch.tensor([3, 0, 63])  # any subset (other batch size: rounding may differ)
            torch.testing.assert_close(feats.call(block, index), feats.target[index], rtol=1e-5, atol=1e-6)
    # the context is per sample (batched) and temb too
    assert cache.read("down_blocks.1.attentions.0", "train").batched["kwarg.encoder_hidden_states"]
    assert cache.read("down_blocks.0.resnets.0", "train").batched["arg.1"]


def test_every_trainable_pair_improves_and_frozen_pairs_are_recorded():
    micro = shared_library()
    records = list(micro.library.records.values())
    assert len(records) == len(plan_jobs(micro.space))
    trainable = [r for r in records if r.trainable]
    frozen = [r for r in records if not r.trainable]
    assert trainable and frozen
    for r in trainable:
        assert r.steps == 30
        assert r.final_loss < r.initial_loss, (r.block, r.candidate, r.initial_loss, r.final_loss)
    for r in frozen:
        assert r.steps == 0 and r.final_loss == r.initial_loss
        assert r.type == "skip"  # skip on equal channels: nothing to train
    manifest = json.loads((micro.library.root / "manifest.json").read_text())
    assert {p["trainable"] for p in manifest["pairs"]} == {True, False}


def test_final_loss_is_the_held_out_loss_of_the_saved_weights():
    micro = shared_library()
    for (path, cand), rec in list(micro.library.records.items())[:6]:
        teacher_block = micro.unet.get_submodule(path)
        module = micro.library.load(path, cand, teacher_block)
        train, val = micro.features.read(path, "train"), micro.features.read(path, "val")
        assert evaluate_loss(module, val, output_energy(train)) == pytest.approx(rec.final_loss, rel=1e-5)


def test_train_pair_does_not_touch_the_teacher_block():
    micro = shared_library()
    path = "down_blocks.0.resnets.0"
    block = micro.unet.get_submodule(path)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    train_pair(
        block,
        Candidate("bottleneck_resnet", {"ratio": 0.5}),
        micro.features.read(path, "train"),
        micro.features.read(path, "val"),
        TrainSettings(steps=5),
        block=path,
    )
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())


def test_teacher_is_not_a_job():
    micro = shared_library()
    assert all(c.name != "teacher" for _, c in plan_jobs(micro.space))
    with pytest.raises(SurrogateError, match="teacher"):
        path = micro.space.paths[0]
        feats = micro.features.read(path, "train")
        train_pair(micro.unet.get_submodule(path), Candidate("teacher"), feats, feats, TrainSettings(steps=1))


def _sub_space(space: SearchSpace, paths: list[str]) -> SearchSpace:
    return SearchSpace([b for b in space.blocks if b.path in paths], name="sub")


def test_process_pool_gives_the_same_pairs_as_in_process(tmp_path):
    unet = micro_unet()
    space = _sub_space(micro_space(unet), ["down_blocks.0.resnets.0", "up_blocks.0.attentions.0", "up_blocks.0.upsamplers.0"])
    cache = capture(unet, space, tmp_path / "features")
    blocks = {p: unet.get_submodule(p) for p in space.paths}
    settings = TrainSettings(steps=10, batch_size=8)
    kw = dict(teacher_fingerprint=FINGERPRINT, resolution=64, settings=settings, progress=False)
    serial = distill(blocks, space, cache, tmp_path / "serial", **kw)
    pooled = distill(blocks, space, cache, tmp_path / "pooled", executor=LocalExecutor(workers=2), **kw)
    assert serial.records.keys() == pooled.records.keys()
    for key, rec in serial.records.items():
        other = pooled.records[key]
        assert other.steps == rec.steps
        assert other.final_loss == pytest.approx(rec.final_loss, rel=1e-4, abs=1e-7)


def test_existing_library_needs_resume_and_matching_teacher(tmp_path):
    unet = micro_unet()
    space = _sub_space(micro_space(unet), ["up_blocks.0.upsamplers.0"])
    lib = build_library(unet, space, tmp_path, steps=2)
    cache = tmp_path / "features"
    blocks = {p: unet.get_submodule(p) for p in space.paths}
    manifest = (lib.root / "manifest.json").read_bytes()
    with pytest.raises(LibraryMismatchError, match="--resume"):
        distill(blocks, space, cache, lib.root, teacher_fingerprint=FINGERPRINT, progress=False)
    with pytest.raises(LibraryMismatchError, match="another teacher"):
        distill(blocks, space, cache, lib.root, teacher_fingerprint="other", resume=True, progress=False)
    assert (lib.root / "manifest.json").read_bytes() == manifest  # nothing destroyed


def test_resume_after_interruption_skips_finished_pairs(tmp_path):
    unet = micro_unet()
    space = _sub_space(micro_space(unet), ["down_blocks.1.resnets.0", "up_blocks.0.attentions.1", "up_blocks.0.upsamplers.0"])
    cache = capture(unet, space, tmp_path / "features")
    blocks = {p: unet.get_submodule(p) for p in space.paths}
    out = tmp_path / "lib"
    kw = dict(teacher_fingerprint=FINGERPRINT, settings=TrainSettings(steps=5), progress=False)
    seen = []

    def interrupt_after_two(record):
        seen.append(record.key)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(blocks, space, cache, out, on_pair=interrupt_after_two, **kw)
    with pytest.raises(LibraryMismatchError, match=r"3 of 5 .*--resume"):
        SurrogateLibrary.open(out)
    stamps = {key: [p.stat().st_mtime_ns for p in pair_files(out, *key)] for key in seen}

    resumed = []
    lib = distill(blocks, space, cache, out, resume=True, on_pair=lambda r: resumed.append(r.key), **kw)
    assert sorted(resumed) == sorted(set(lib.records) - set(seen))
    assert len(resumed) == 3
    for key, times in stamps.items():
        assert [p.stat().st_mtime_ns for p in pair_files(out, *key)] == times
    assert lib.is_complete
