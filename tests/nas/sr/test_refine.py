"""The luma refiner, the colour metrics and the wider evaluation (issue 17)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from tocsr_nas.cli import main
from tocsr_nas.sr.evaluate import model_complexity
from tocsr_nas.sr.metrics import ciede2000, psnr_rgb, sr_metrics
from tocsr_nas.sr.model import SRModel, SRModelError, bicubic_upsample
from tocsr_nas.sr.refine import LumaRefiner, luma, train_refiner
from tocsr_nas.sr.upscale import super_resolve
from tocsr_nas.teacher.data import DEFAULT_VAL_PHOTOS, EVAL_ONLY_PHOTOS, PhotoDataset, downscale


# ---------------------------------------------------------------------- metrics
def test_rgb_psnr_and_ciede2000_on_known_inputs():
    ref = np.full((20, 20, 3), 100, np.uint8)
    test = ref.copy()
    test[..., 0] += 10  # red +10 levels everywhere: RGB MSE = 100 / 3
    assert psnr_rgb(ref, test, border=2) == pytest.approx(10 * math.log10(255**2 * 3 / 100), abs=1e-9)
    expected = float(deltaE_ciede2000(rgb2lab(ref[:1, :1]), rgb2lab(test[:1, :1]))[0, 0])
    assert ciede2000(ref, test, border=2) == pytest.approx(expected)
    assert 1.0 < expected < 10.0  # a visible, moderate shift
    assert ciede2000(ref, ref) == 0.0 and psnr_rgb(ref, ref) == math.inf
    # a red -> orange shift (the motorcycle) is a large one
    red, orange = np.zeros((12, 12, 3), np.uint8), np.zeros((12, 12, 3), np.uint8)
    red[..., 0], orange[..., 0], orange[..., 1] = 200, 200, 100
    assert ciede2000(red, orange, border=0) > 15
    assert set(sr_metrics(ref, test, 2)) == {"psnr_y", "ssim_y", "psnr_rgb", "ciede2000"}


# ---------------------------------------------------------------------- the refiner
def test_untrained_refiner_is_bicubic_and_keeps_chroma():
    torch.manual_seed(0)
    lr = torch.rand(2, 3, 6, 7) * 1.6 - 0.8
    up = bicubic_upsample(lr, 4)
    gen = torch.rand_like(up) * 2 - 1
    net = LumaRefiner(scale=4, width=8, depth=1, bound=0.1)
    assert torch.equal(net(lr, up, gen), up)
    with torch.no_grad():  # random weights, large outputs: bounded luma change, chroma unchanged
        for p in net.parameters():
            p.normal_(0, 1.0)
        r = net.residual(lr, up, gen)
        out = net(lr, up, gen)
    assert r.shape == (2, 1, 24, 28) and 0.05 < float(r.abs().max()) <= 0.1 + 1e-6
    inside = (out.abs() < 1).all(1)  # (B, H, W): pixels the clamp did not touch
    assert inside.float().mean() > 0.5
    diff = out - up  # the same change on R, G and B: luma moves by r, B - Y and R - Y stay bicubic's
    assert torch.allclose((luma(diff) - r)[:, 0][inside], torch.zeros(1), atol=1e-5)
    assert torch.allclose((diff[:, 0] - diff[:, 1])[inside], torch.zeros(1), atol=1e-5)
    assert torch.allclose((diff[:, 2] - diff[:, 1])[inside], torch.zeros(1), atol=1e-5)


def test_refiner_training_lowers_the_luma_error_in_seconds():
    hr = PhotoDataset.from_skimage("train").random_batch(4, 32, seed=0)
    lr = downscale(hr, 4)
    up = bicubic_upsample(lr, 4)
    net = LumaRefiner(scale=4, width=8, depth=1)
    losses = train_refiner(net, lr, hr, hr, steps=30, batch_size=4, crop=8, lr_rate=3e-3)  # generator = the truth
    assert len(losses) == 30 and losses[-1] < losses[0]
    with torch.no_grad():
        err = torch.nn.functional.mse_loss(luma(net(lr, up, hr)), luma(hr))
    assert float(err) < float(torch.nn.functional.mse_loss(luma(up), luma(hr)))


def test_onestep_model_saves_loads_and_counts_its_refiner(onestep_dir):
    model = SRModel.load(onestep_dir)
    meta = json.loads((onestep_dir / "sr.json").read_text())
    assert isinstance(model.refiner, LumaRefiner) and meta["version"] == 2
    assert meta["refiner"] == model.refiner.spec() and "refiner.safetensors" in meta["files"]
    lr = torch.rand(1, 3, 9, 11) * 2 - 1
    out = super_resolve(model, lr)
    assert out.shape == (1, 3, 36, 44)
    c = model_complexity(model, steps=3)
    assert c["refiner"]["gmacs"] > 0 and c["refiner"]["params"] == sum(p.numel() for p in model.refiner.parameters())
    total = c["unet"]["gmacs"] + c["vae_encoder"]["gmacs"] + c["vae_decoder"]["gmacs"] + c["refiner"]["gmacs"]
    assert c["onestep_gmacs_per_image"] == pytest.approx(total)


def test_sr_format_versions(sr_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(sr_dir, old)
    meta = json.loads((old / "sr.json").read_text())
    meta["version"] = 1
    (old / "sr.json").write_text(json.dumps(meta))
    assert SRModel.load(old).refiner is None  # a version-1 folder (no refiner) still loads
    meta["version"] = 99
    (old / "sr.json").write_text(json.dumps(meta))
    with pytest.raises(SRModelError, match="version 99.*reads versions 1 to 2") as err:
        SRModel.load(old)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- the wider evaluation
def test_heldout_suite_is_disjoint_from_training():
    train = set(PhotoDataset.from_skimage("train").names)
    suite = PhotoDataset.heldout_suite(min_size=16).names
    assert suite[: len(DEFAULT_VAL_PHOTOS)] == list(DEFAULT_VAL_PHOTOS) and set(EVAL_ONLY_PHOTOS) <= set(suite)
    assert not train & set(suite) and len(suite) == len(set(suite))


def test_evaluate_images_folder_per_photo_table_and_crops(onestep_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 256, (5, 6, 3)), np.ones((10, 10, 1))).astype(np.uint8)  # flat blocks
    Image.fromarray(smooth).save(images / "blocks.png")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(images / "noise.png")
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(onestep_dir), "--images", str(images), "--out", str(out), "--threads", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("photo"))
    assert header.split() == ["photo", "method", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "dE00", "dY", "vs", "bic"]
    assert sum(line.startswith(("blocks.png", "noise.png")) for line in text.splitlines()) == 6  # 2 photos x 3 methods
    report = json.loads((out / "evaluation.json").read_text())
    for name, m in report["methods"].items():
        assert {"psnr_y", "ssim_y", "psnr_rgb", "ciede2000", "worst"} <= set(m)
        assert m["worst"]["name"] in {str(images / "blocks.png"), str(images / "noise.png")}
        if name != "bicubic":
            gains = [r["gain_y"] for r in m["per_image"]]
            assert m["worst"]["gain_y"] == min(gains) and m["gain_y"] == pytest.approx(np.mean(gains))
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["blocks.png.png", "noise.png.png"]
    with Image.open(out / "crops" / "blocks.png.png") as img:
        assert min(img.size) >= 700  # large enough to see the detail


def test_report_md_shows_colour_metrics_per_photo_and_the_worst_photo(tmp_path):
    from tocsr_nas.stages.report import write_report

    def row(name, y, de):
        return {"name": name, "psnr_y": y, "ssim_y": 0.8, "psnr_rgb": y - 1, "ciede2000": de, "seconds": 0.1}

    bic = [row("a", 30.0, 3.0), row("b", 25.0, 5.0)]
    one = [{**row("a", 30.5, 2.9), "gain_y": 0.5}, {**row("b", 24.9, 4.9), "gain_y": -0.1}]
    methods = {
        "bicubic": {"psnr_y": 27.5, "ssim_y": 0.8, "psnr_rgb": 26.5, "ciede2000": 4.0, "seconds_per_image": 0.1,
                    "worst": {"name": "b", "psnr_y": 25.0}, "per_image": bic},
        "onestep": {"psnr_y": 27.7, "ssim_y": 0.8, "psnr_rgb": 26.7, "ciede2000": 3.9, "seconds_per_image": 0.1,
                    "gain_y": 0.2, "worst": {"name": "b", "psnr_y": 24.9, "gain_y": -0.1}, "per_image": one},
    }
    (tmp_path / "evaluate").mkdir()
    report = {"scale": 4, "images": [{"name": "a"}, {"name": "b"}], "methods": methods, "vae_bound": {}}
    (tmp_path / "evaluate" / "evaluation.json").write_text(json.dumps(report))
    terminal = write_report(tmp_path, {})
    md = (tmp_path / "report.md").read_text()
    assert "| method | PSNR-Y (dB) | SSIM-Y | PSNR-RGB (dB) | dE00 | dY | worst photo (dY) | s / image |" in md
    assert "| onestep | 27.70 | 0.8000 | 26.70 | 3.90 | +0.20 | b (-0.10) | 0.100 |" in md
    assert "| photo | bicubic | onestep |" in md and "| b | 25.00 / 5.00 | 24.90 / 4.90 |" in md
    assert "SR onestep: PSNR-Y 27.70 dB" in terminal and "CIEDE2000 3.90" in terminal
