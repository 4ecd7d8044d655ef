"""``tocsr-nas sr train|distill``, ``upscale`` and ``evaluate`` through the CLI entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tocsr_nas.cli import main
from tocsr_nas.sr.model import SRModel


def _png(path, w, h, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_sr_train_and_distill_commands(teacher_dir, tmp_path, capsys):
    small = ["--steps", "1", "--batch-size", "2", "--pool-size", "1", "--no-progress", "--threads", "1"]
    assert main(["sr", "train", "--backbone", str(teacher_dir), "--out", str(tmp_path / "sr"), "--sampler-steps", "2", *small]) == 0
    assert "SR model saved to" in capsys.readouterr().out
    assert main(["sr", "distill", "--teacher", str(tmp_path / "sr"), "--out", str(tmp_path / "g"), *small]) == 0
    assert "one-step model saved to" in capsys.readouterr().out
    assert SRModel.load(tmp_path / "g").kind == "onestep"
    # a second run into the same folder is refused with one line, exit 2
    assert main(["sr", "train", "--backbone", str(teacher_dir), "--out", str(tmp_path / "sr"), *small]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tocsr-nas sr train: error:") and "not empty" in err and "\n" not in err


@pytest.mark.parametrize("which", ["sr_dir", "onestep_dir"])
def test_upscale_odd_size(which, request, tmp_path, capsys):
    model = request.getfixturevalue(which)
    src = _png(tmp_path / "odd.png", 123, 77)
    jpg = tmp_path / "photo.jpg"
    Image.open(_png(tmp_path / "p.png", 20, 12)).save(jpg)
    assert main(["upscale", "--model", str(model), str(src), str(jpg), "--out", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "odd.png") as img:
        assert img.size == (492, 308) and img.mode == "RGB"
    with Image.open(tmp_path / "out" / "photo.png") as img:
        assert img.size == (80, 48)


def test_upscale_unreadable_input_is_one_line_exit_2(sr_dir, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    code = main(["upscale", "--model", str(sr_dir), str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "broken.png" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["upscale", "--model", str(sr_dir), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_upscale_wrong_scale(sr_dir, tmp_path, capsys):
    src = _png(tmp_path / "a.png", 8, 8)
    assert main(["upscale", "--model", str(sr_dir), str(src), "--out", str(tmp_path / "o"), "--scale", "2"]) == 2
    assert "x4" in capsys.readouterr().err


def test_evaluate_json(onestep_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for i, (w, h) in enumerate([(50, 42), (37, 64)]):
        _png(images / f"im{i}.png", w, h, seed=i)
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(onestep_dir), "--images", str(images), "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"scale", "images", "methods", "vae_bound", "complexity", "speedup", "outputs"}
    assert set(report["methods"]) == {"bicubic", "multistep", "onestep"}
    for m in report["methods"].values():
        assert {"psnr_y", "ssim_y", "seconds_per_image", "per_image"} <= set(m)
        assert len(m["per_image"]) == 2
    assert [i["hr_size"] for i in report["images"]] == [[48, 40], [36, 64]]
    for kind in ("multistep", "onestep"):
        assert set(report["methods"][kind]["seconds_parts"]) == {"encode", "denoise", "decode"}
    assert report["speedup"] > 0 and report["denoise_speedup"] > 0
    assert {"psnr_y", "ssim_y", "per_image"} <= set(report["vae_bound"])
    c = report["complexity"]
    assert {"unet", "vae_encoder", "vae_decoder", "vae_share_onestep", "vae_share_multistep"} <= set(c)
    assert c["unet"]["gmacs"] > 0 and 0 < c["vae_share_multistep"] < 1 and 0 < c["vae_share_onestep"] < 1
    vae = c["vae_encoder"]["gmacs"] + c["vae_decoder"]["gmacs"]
    one = c["unet"]["gmacs"] + vae + c["refiner"]["gmacs"]  # the one-step model's luma refiner is counted
    assert c["onestep_gmacs_per_image"] == pytest.approx(one) and c["vae_share_onestep"] == pytest.approx(vae / one)
    assert (out / "comparison.png").is_file() and json.loads((out / "evaluation.json").read_text())["scale"] == 4


def test_evaluate_table_for_a_multistep_model(sr_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(sr_dir), "--max-side", "32", "--out", str(tmp_path / "e")]) == 0
    text = capsys.readouterr().out
    assert "bicubic" in text and "multistep" in text and "onestep" not in text
