"""SR training, one-step distillation, upscaling and evaluation on ``--device`` / ``--dtype``.

Without a GPU the device path is exercised on the CPU: an explicit ``device`` gives bit-for-bit the
weights of the default, every denoiser call sees its inputs on the model's device, and
``--dtype bfloat16`` runs each command in mixed precision with finite results and float32 weights.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from tocsr_nas.cli import main
from tocsr_nas.sr.model import SRModel
from tocsr_nas.sr.onestep import DistillConfig, distill_onestep
from tocsr_nas.sr.train import SRTrainConfig, train_sr
from tocsr_nas.sr.upscale import super_resolve

from .conftest import SMALL_DISTILL, SMALL_SR


def _float32_only(path):
    with safe_open(path, "pt") as fh:
        return {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float32}


def _watch_devices(net):
    """A pre-hook on ``net`` recording (input devices, weight device) of every call."""
    seen = []

    def hook(module, args):
        weight = next(module.parameters()).device
        seen.append(({a.device for a in args if isinstance(a, torch.Tensor)}, weight))

    return seen, net.register_forward_pre_hook(hook)


def test_an_explicit_cpu_device_changes_nothing(teacher_dir, sr_dir, tmp_path, monkeypatch):
    """The device path (model, pool and validation set moved, each step's draws moved) on ``cpu``
    gives the default run's weights bit for bit, and every denoiser call has its inputs where the
    weights are."""
    placed = train_sr(teacher_dir, tmp_path / "a", SRTrainConfig(**SMALL_SR), progress=False, device=torch.device("cpu"))
    assert placed.device == torch.device("cpu"), "the trained model comes back on the CPU"
    for name in ("weights.safetensors",):
        a = safe_open(tmp_path / "a" / name, "pt")
        b = safe_open(sr_dir / name, "pt")
        assert set(a.keys()) == set(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())

    from tocsr_nas.sr import onestep

    calls = []
    real_load = onestep.SRModel.load

    def load(*args, **kwargs):  # watch the distillation's denoiser
        model = real_load(*args, **kwargs)
        calls.append(_watch_devices(model.net)[0])
        return model

    monkeypatch.setattr(onestep.SRModel, "load", load)
    one = distill_onestep(sr_dir, tmp_path / "g", DistillConfig(**SMALL_DISTILL), progress=False, device="cpu")
    assert one.device == torch.device("cpu") and one.kind == "onestep"
    seen = calls[0]
    assert seen and all(devices == {weight} for devices, weight in seen), seen


def test_super_resolve_returns_float32_on_the_cpu(onestep_dir):
    model = SRModel.load(onestep_dir).to("cpu")
    lr = torch.rand(1, 3, 9, 7) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hr = super_resolve(model, lr)
    assert hr.dtype == torch.float32 and hr.device == torch.device("cpu") and hr.shape == (1, 3, 36, 28)
    assert torch.isfinite(hr).all()


def test_sr_commands_in_bfloat16_on_the_cpu(teacher_dir, tmp_path, capsys):
    """``sr train``, ``sr distill``, ``upscale`` and ``evaluate`` with ``--device cpu --dtype bfloat16``:
    finite metrics, float32 weights saved."""
    placed = ["--device", "cpu", "--dtype", "bfloat16", "--threads", "1"]
    small = ["--steps", "2", "--batch-size", "2", "--pool-size", "2", "--no-progress", *placed]
    sr, g = tmp_path / "sr", tmp_path / "g"
    assert main(["sr", "train", "--backbone", str(teacher_dir), "--out", str(sr), "--sampler-steps", "2", *small]) == 0
    assert main(["sr", "distill", "--teacher", str(sr), "--out", str(g), *small]) == 0
    capsys.readouterr()
    for folder in (sr, g):
        config = json.loads((folder / "sr.json").read_text())
        finite = [v for v in config["metrics"].values() if isinstance(v, float)]
        assert finite and all(math.isfinite(v) for v in finite), config["metrics"]
        assert _float32_only(folder / "weights.safetensors")
    assert _float32_only(g / "refiner.safetensors")

    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(src)
    assert main(["upscale", "--model", str(g), str(src), "--out", str(tmp_path / "up"), *placed]) == 0
    assert Image.open(tmp_path / "up" / "in.png").size == (96, 80)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(g), "--max-side", "32", "--json", "--out", str(tmp_path / "e"), *placed]) == 0
    report = json.loads(capsys.readouterr().out)
    for kind in ("multistep", "onestep"):
        assert math.isfinite(report["methods"][kind]["psnr_y"]), report["methods"][kind]
