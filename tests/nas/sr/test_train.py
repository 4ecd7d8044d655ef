"""SR training: outputs, determinism, resume and its guards."""

from __future__ import annotations

import pytest
import torch

from tocsr_nas._io import load_safetensors
from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.model import SRModel
from tocsr_nas.sr.train import SRTrainConfig, train_sr

from .conftest import SMALL_SR


def _weights(folder):
    return load_safetensors(folder / "weights.safetensors")


def test_trained_folder_is_complete(sr_dir, teacher_dir):
    model = SRModel.load(sr_dir, kind="multistep")
    m = model.config["metrics"]
    assert {"val_loss_init", "val_loss", "seconds"} <= set(m)
    assert model.config["source"]["teacher"] == str(teacher_dir.resolve())
    assert not (sr_dir / "checkpoints").exists()
    assert model.net.backbone.conv_in.weight[:, 16:].abs().sum() > 0  # the condition weights were trained


def test_crash_then_resume_matches_an_uninterrupted_run(teacher_dir, tmp_path):
    cfg = SRTrainConfig(**{**SMALL_SR, "steps": 3, "checkpoint_every": 1})
    train_sr(teacher_dir, tmp_path / "full", cfg, progress=False)
    assert train_sr(teacher_dir, tmp_path / "cut", cfg, progress=False, stop_after=2) is None
    assert not (tmp_path / "cut" / "sr.json").exists()
    train_sr(teacher_dir, tmp_path / "cut", cfg, resume=True, progress=False)
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert full.keys() == cut.keys()
    for key in full:
        torch.testing.assert_close(cut[key], full[key], rtol=0, atol=0, msg=key)


def test_extending_a_finished_run(teacher_dir, tmp_path):
    cfg = SRTrainConfig(**{**SMALL_SR, "steps": 1})
    train_sr(teacher_dir, tmp_path / "sr", cfg, progress=False, keep_checkpoints=True)
    model = train_sr(teacher_dir, tmp_path / "sr", SRTrainConfig(**{**SMALL_SR, "steps": 2}), resume=True, progress=False)
    assert model.config["train"]["steps"] == 2


def test_guards(teacher_dir, sr_dir, tmp_path):
    with pytest.raises(TocsrError, match="not empty"):
        train_sr(teacher_dir, sr_dir, SRTrainConfig(**SMALL_SR), progress=False)
    with pytest.raises(TocsrError, match="already trained"):
        train_sr(teacher_dir, sr_dir, SRTrainConfig(**SMALL_SR), resume=True, progress=False)
    with pytest.raises(TocsrError, match="nothing to resume"):
        train_sr(teacher_dir, tmp_path / "new", SRTrainConfig(**SMALL_SR), resume=True, progress=False)
    train_sr(teacher_dir, tmp_path / "cut", SRTrainConfig(**SMALL_SR), progress=False, stop_after=1)
    with pytest.raises(TocsrError, match="different settings: lr"):
        train_sr(teacher_dir, tmp_path / "cut", SRTrainConfig(**{**SMALL_SR, "lr": 1.0}), resume=True, progress=False)
    with pytest.raises(TocsrError, match="--batch-size must be >= 1"):
        SRTrainConfig(batch_size=0)


def test_a_bad_backbone_leaves_no_output(tmp_path):
    from tocsr_nas.sr.model import SRModelError

    with pytest.raises(SRModelError, match="not found"):
        train_sr(tmp_path / "missing", tmp_path / "out", SRTrainConfig(**SMALL_SR), progress=False)
    assert not (tmp_path / "out").exists()
