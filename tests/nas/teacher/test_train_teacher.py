"""Teacher training: a few micro steps, checkpoints, crash + resume, the CLI."""

from __future__ import annotations

import json

import pytest

from tocsr_nas._io import read_json
from tocsr_nas.cli import main
from tocsr_nas.errors import TocsrError
from tocsr_nas.teacher import Teacher
from tocsr_nas.teacher.train import TrainConfig, train_teacher

#: a micro run: 3 VAE + 3 UNet steps on tiny batches, checkpoints every 2 steps
MICRO = TrainConfig(
    steps=3,
    vae_steps=3,
    batch_size=2,
    vae_batch_size=2,
    vae_patch_size=32,
    checkpoint_every=2,
    val_patches=4,
    calibration_patches=4,
    warmup=1,
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "teacher"
    metrics = train_teacher(out, MICRO, progress=False)
    return out, metrics


def test_training_writes_a_loadable_teacher_and_metrics(uninterrupted):
    out, metrics = uninterrupted
    teacher = Teacher.load(out)
    assert teacher.fingerprint() == metrics["fingerprint"] == read_json(out / "teacher.json")["fingerprint"]
    assert teacher.vae.config.scaling_factor == pytest.approx(metrics["scaling_factor"])
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in ("vae_psnr_db", "vae_psnr_db_init", "unet_val_loss", "unet_val_loss_init"):
        assert isinstance(metrics[key], float)
    assert set(metrics["seconds"]) == {"vae", "unet", "total"} and set(metrics["cpu_seconds"]) == {"vae", "unet", "total"}
    assert metrics["val_images"] == ["ihc", "motorcycle_left"]
    assert not (out / "checkpoints").exists()  # no optimizer state left behind by default


def test_training_changes_the_weights(uninterrupted, tiny_teacher):
    assert uninterrupted[1]["fingerprint"] != tiny_teacher.fingerprint()


@pytest.mark.parametrize("stop_after", [2, 4])  # inside the VAE phase; inside the UNet phase
def test_crash_then_resume_matches_an_uninterrupted_run(uninterrupted, tmp_path, stop_after):
    out = tmp_path / "teacher"
    assert train_teacher(out, MICRO, progress=False, stop_after=stop_after) is None
    state = read_json(out / "checkpoints" / "state.json")
    assert (state["phase"], state["step"]) == {2: ("vae", 2), 4: ("unet", 0)}[stop_after]
    with pytest.raises(TocsrError, match="not empty"):
        train_teacher(out, MICRO, progress=False)
    metrics = train_teacher(out, MICRO, resume=True, progress=False)
    assert metrics["fingerprint"] == uninterrupted[1]["fingerprint"]
    assert metrics["unet_val_loss"] == uninterrupted[1]["unet_val_loss"]


def test_resume_refuses_changed_settings_and_missing_checkpoint(tmp_path):
    out = tmp_path / "t"
    train_teacher(out, MICRO, progress=False, stop_after=3)
    with pytest.raises(TocsrError, match="batch_size=3"):
        train_teacher(out, TrainConfig(**{**MICRO.__dict__, "batch_size": 3}), resume=True, progress=False)
    with pytest.raises(TocsrError, match="nothing to resume"):
        train_teacher(tmp_path / "empty", MICRO, resume=True, progress=False)


def test_config_validation():
    with pytest.raises(TocsrError, match="--batch-size must be >= 1"):
        TrainConfig(batch_size=0)


def test_cli_bad_preset_exits_2(tmp_path, capsys):
    assert main(["teacher", "train", "--preset", "huge", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "unknown teacher preset 'huge'" in err and "tiny" in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


def test_cli_non_empty_out_exits_2(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["teacher", "train", "--out", str(tmp_path), "--steps", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_cli_trains_resumes_a_finished_run_and_extends_it(tmp_path, capsys):
    out = tmp_path / "t"
    args = ["teacher", "train", "--out", str(out), "--steps", "1", "--vae-steps", "1", "--batch-size", "2",
            "--vae-batch-size", "2", "--no-progress", "--keep-checkpoints", "--threads", "1", "--val-patches", "4",
            "--calibration-patches", "4"]
    assert main(args) == 0
    assert "teacher saved to" in capsys.readouterr().out
    first = read_json(out / "metrics.json")
    assert read_json(out / "checkpoints" / "state.json")["phase"] == "done"
    assert main(["teacher", "train", "--out", str(out), "--resume", "--no-progress"]) == 0  # nothing left to do
    assert read_json(out / "metrics.json") == first
    assert main(["teacher", "train", "--out", str(out), "--resume", "--steps", "2", "--no-progress"]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["config"]["steps"] == 2 and metrics["config"]["batch_size"] == 2  # unset: the checkpoint's
    assert Teacher.load(out).fingerprint() == metrics["fingerprint"] != first["fingerprint"]
