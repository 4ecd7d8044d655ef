"""One-step distillation."""

from __future__ import annotations

import pytest
import torch

from tocsr_nas._io import load_safetensors
from tocsr_nas.errors import TocsrError
from tocsr_nas.sr.model import SRModel, SRModelError
from tocsr_nas.sr.onestep import DistillConfig, auto_timestep, distill_onestep, sigma

from .conftest import SMALL_DISTILL


def test_onestep_folder_records_its_source(onestep_dir, sr_dir):
    g = SRModel.load(onestep_dir, kind="onestep")
    assert g.config["source"]["sr_model"] == str(sr_dir.resolve())
    spec = g.config["onestep"]
    assert spec["start"] == "lr" and 0 <= spec["timestep"] < 1000
    assert {"val_psnr_init", "val_psnr", "target_steps"} <= set(g.config["metrics"])
    # initialised from the SR model, then trained: the weights moved
    a, b = load_safetensors(onestep_dir / "weights.safetensors"), load_safetensors(sr_dir / "weights.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_auto_timestep_matches_the_noise_level(sr_dir):
    model = SRModel.load(sr_dir)
    z = torch.randn(4, 16, 4, 4)
    for rms in (0.05, 0.3, 1.0):
        t = auto_timestep(model, z, z + rms)
        s = sigma(model)
        assert abs(float(s[t]) - rms) <= min(abs(float(s[t - 1]) - rms), abs(float(s[t + 1]) - rms)) + 1e-12


def test_noise_start_defaults_to_the_last_timestep(sr_dir, tmp_path):
    g = distill_onestep(sr_dir, tmp_path / "g", DistillConfig(**{**SMALL_DISTILL, "start": "noise", "steps": 1}), progress=False)
    assert g.config["onestep"] == {"timestep": 999, "start": "noise", "seed": 0}


def test_resume_matches_an_uninterrupted_run(sr_dir, tmp_path):
    cfg = DistillConfig(**{**SMALL_DISTILL, "steps": 3, "checkpoint_every": 1})
    distill_onestep(sr_dir, tmp_path / "full", cfg, progress=False)
    assert distill_onestep(sr_dir, tmp_path / "cut", cfg, progress=False, stop_after=2) is None
    assert (tmp_path / "cut" / "checkpoints" / "pool.safetensors").is_file()  # DDIM outputs cached
    distill_onestep(sr_dir, tmp_path / "cut", cfg, resume=True, progress=False)
    full = load_safetensors(tmp_path / "full" / "weights.safetensors")
    cut = load_safetensors(tmp_path / "cut" / "weights.safetensors")
    for key in full:
        torch.testing.assert_close(cut[key], full[key], rtol=0, atol=0, msg=key)


def test_guards(sr_dir, onestep_dir, tmp_path):
    with pytest.raises(SRModelError, match="expected a multistep"):
        distill_onestep(onestep_dir, tmp_path / "x", DistillConfig(**SMALL_DISTILL), progress=False)
    with pytest.raises(TocsrError, match="--timestep must be in"):
        distill_onestep(sr_dir, tmp_path / "y", DistillConfig(**{**SMALL_DISTILL, "timestep": 1000}), progress=False)
    with pytest.raises(TocsrError, match="--start"):
        DistillConfig(start="middle")
