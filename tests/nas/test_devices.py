"""``--device`` / ``--dtype``: one resolution for every command (:mod:`tocsr_nas.devices`), mixed
precision that keeps float32 weights, and bfloat16 runs on the CPU giving finite results."""

from __future__ import annotations

import copy
import json
import logging
import math

import pytest
import torch
from torch import nn

from tocsr_nas.cli import main
from tocsr_nas.devices import DeviceError, Placement, resolve
from tocsr_nas.surrogates.features import BlockFeatures
from tocsr_nas.training import run_steps

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU: auto picks it")
def test_auto_is_the_cpu_without_a_gpu():
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("an MPS device is present")
    assert resolve("auto", "float32") == Placement(torch.device("cpu"), torch.float32)
    assert resolve(None, None).is_default()


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA GPU is present")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_an_absent_gpu_is_a_device_error(name):
    with pytest.raises(DeviceError, match="no CUDA GPU on this machine"):
        resolve(name)


@pytest.mark.parametrize(
    ("device", "dtype", "match"),
    [("tpu", "float32", "unknown --device"), ("cuda:x", "float32", "cuda:N"), ("cpu", "float64", "unknown --dtype"),
     ("cpu", "float16", "float16 is not supported on the CPU")],
)
def test_bad_names_are_device_errors(device, dtype, match):
    with pytest.raises(DeviceError, match=match):
        resolve(device, dtype)


def test_auto_is_the_cpu_without_a_gpu_and_keeps_the_dtype():
    if NO_CUDA and not torch.backends.mps.is_available():
        assert resolve("auto", "bfloat16") == Placement(torch.device("cpu"), torch.bfloat16)
    assert resolve("cpu").is_default()


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA GPU is present")
@pytest.mark.parametrize(
    "argv",
    [
        ["distill", "--out", "{tmp}/lib", "--device", "cuda"],
        ["teacher", "train", "--out", "{tmp}/t", "--device", "cuda:1"],
        ["sr", "train", "--backbone", "{tmp}", "--out", "{tmp}/sr", "--device", "cuda"],
        ["sr", "distill", "--teacher", "{tmp}", "--out", "{tmp}/g", "--device", "cuda"],
        ["upscale", "--model", "{tmp}", "{tmp}/x.png", "--out", "{tmp}/up", "--device", "cuda"],
        ["evaluate", "--model", "{tmp}", "--out", "{tmp}/e", "--device", "cuda"],
        ["space", "--latency", "--device", "cuda"],
        ["run", "--out", "{tmp}/run", "--device", "cuda"],
    ],
)
def test_the_cli_reports_an_absent_gpu_in_one_line(argv, tmp_path, capsys):
    rc = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "no CUDA GPU on this machine" in err, err
    assert not any(tmp_path.iterdir()), "nothing is written before the device is checked"


def test_float32_autocast_changes_nothing():
    torch.manual_seed(0)
    layer, x = nn.Linear(8, 8), torch.randn(4, 8)
    with resolve("cpu", "float32").autocast():
        inside = layer(x)
    assert torch.equal(inside, layer(x))
    with resolve("cpu", "bfloat16").autocast():
        reduced = layer(x)
    assert reduced.dtype == torch.bfloat16


def test_block_features_move_once_with_their_flags():
    f = BlockFeatures("b", (torch.randn(3, 2), torch.tensor([1, 2, 3])), {"scale": 1.0}, {"arg.0": True, "arg.1": True},
                      torch.randn(3, 2))  # fmt: skip
    g = f.to("cpu", torch.bfloat16)
    assert g.args[0].dtype == torch.bfloat16 and g.target.dtype == torch.bfloat16
    assert g.args[1].dtype == torch.long, "integer tensors keep their dtype"
    assert g.kwargs == {"scale": 1.0} and len(g) == 3


def test_mixed_precision_training_keeps_float32_weights(tmp_path):
    from dataclasses import dataclass

    from tocsr_nas.training import open_run

    @dataclass(frozen=True)
    class Cfg:
        steps: int = 5

    torch.manual_seed(0)
    model, x, y = nn.Linear(8, 1), torch.randn(32, 8), torch.randn(32, 1)
    state = open_run(tmp_path / "run", Cfg(), resume=False, resumable=(), done_file="done.json")
    before = model.weight.detach().clone()
    run_steps(
        out=tmp_path / "run", state=state, module=model, parameters=list(model.parameters()),
        step_fn=lambda k: nn.functional.mse_loss(model(x), y), steps=5, lr=1e-2, warmup=0, checkpoint_every=100,
        desc="t", progress=False, autocast=resolve("cpu", "bfloat16").autocast,
    )  # fmt: skip
    assert model.weight.dtype == torch.float32
    assert torch.isfinite(model.weight).all() and not torch.equal(model.weight, before)


def test_distill_in_bfloat16_runs_and_saves_float32(tmp_path, capsys, trained_tiny_teacher):
    """``distill --dtype bfloat16`` on a micro space: the capture runs the teacher in bfloat16, the pairs
    train in mixed precision; finite losses, float32 weights, the compute recorded in the manifest."""
    from safetensors import safe_open

    space = tmp_path / "space.yaml"
    space.write_text('name: micro\nrules:\n  - name: down\n    match: "*downsamplers.*"\n    type: Downsample2D\n'
                     '    candidates: [pool_down]\n  - name: attn\n    match: "mid_block.attentions.*"\n'
                     '    candidates: [conv_mixer]\n')  # fmt: skip
    out = tmp_path / "lib"
    rc = main(["distill", "--out", str(out), "--space", str(space), "--steps", "3", "--samples", "8", "--val-samples", "4",
               "--batch-size", "4", "--dtype", "bfloat16", "--threads", "1", "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["compute"] == {"device": "cpu", "dtype": "bfloat16"}
    pairs = manifest["pairs"]
    assert pairs and all(math.isfinite(p["final_loss"]) and math.isfinite(p["initial_loss"]) for p in pairs)
    for p in pairs:
        with safe_open(out / p["file"], "pt") as fh:
            assert {fh.get_tensor(k).dtype for k in fh.keys()} <= {torch.float32}
    # the library names the float32 teacher, so a float32 search accepts it (on a GPU, `run --dtype
    # bfloat16` failed here: the fingerprint was taken of the bfloat16 copy)
    assert manifest["teacher_fingerprint"] == trained_tiny_teacher.fingerprint()


def test_a_teacher_in_lower_precision_keeps_its_fingerprint(tiny_teacher):
    teacher = copy.deepcopy(tiny_teacher)
    before = teacher.fingerprint()
    assert teacher.to("cpu", torch.bfloat16).dtype == torch.bfloat16
    assert teacher.fingerprint() == before
    other = copy.deepcopy(tiny_teacher)  # the recorded fingerprint is the float32 weights', not a constant
    with torch.no_grad():
        next(other.unet.parameters()).add_(1.0)
    assert other.fingerprint() != before and other.to(dtype=torch.bfloat16).fingerprint() != before


def test_teacher_train_in_bfloat16_runs_and_saves_float32(tmp_path, capsys):
    """``teacher train --dtype bfloat16``: mixed precision through the one training loop; finite metrics,
    float32 weights."""
    from safetensors import safe_open

    out = tmp_path / "teacher"
    rc = main(["teacher", "train", "--out", str(out), "--steps", "2", "--vae-steps", "2", "--batch-size", "2",
               "--vae-batch-size", "2", "--val-patches", "2", "--calibration-patches", "2", "--dtype", "bfloat16",
               "--threads", "1", "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["unet_val_loss"]) and math.isfinite(metrics["vae_psnr_db"])
    for part in ("unet", "vae"):
        for file in (out / part).glob("*.safetensors"):
            with safe_open(file, "pt") as fh:
                assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float32}, file


def test_moving_a_diffusers_model_to_bfloat16_prints_no_empty_float32_warning(capfd, caplog):
    """diffusers 0.42 warns 'modules ... should be kept in float32: []' at every ``.to(dtype)``; a
    bfloat16 distillation printed it once per pair. It is dropped when the list is empty."""
    from diffusers import UNet2DModel

    import tocsr_nas.devices  # noqa: F401  (installs the filter)

    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8,), layers_per_block=1,
                        down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",), norm_num_groups=4)
    with caplog.at_level(logging.WARNING):
        model.to(dtype=torch.bfloat16)
    out = capfd.readouterr()
    assert "should be kept in float32" not in out.err + out.out + caplog.text
    assert model.dtype == torch.bfloat16
