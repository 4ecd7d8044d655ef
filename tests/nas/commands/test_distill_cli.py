"""``tocsr-nas distill``: user errors, kill -9 during distillation and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tocsr_nas.cli import main
from tocsr_nas.stages.distill import DistillConfig, distill_teacher
from tocsr_nas.stages.space import build_space
from tocsr_nas.surrogates.library import IncompleteLibraryError, SurrogateLibrary, pair_files

# 11 ResNet blocks x (skip, bottleneck) of the tiny UNet: 22 pairs, 11 of them trainable
SMALL_SPACE = """
name: resnets-only
rules:
  - name: resnets
    match: "*resnets.*"
    type: ResnetBlock2D
    candidates:
      - skip
      - {type: bottleneck_resnet, params: {ratio: 0.25}}
"""


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_teacher) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "tiny"
    tiny_teacher.save(path)
    return path


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "resnets.yaml"
    path.write_text(SMALL_SPACE)
    return path


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tocsr_nas.cli", "distill", *args]


def _sidecars(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*.json"))


def test_nonempty_out_without_resume_is_refused(tmp_path, capsys):
    out = tmp_path / "lib"
    out.mkdir()
    (out / "precious.txt").write_text("earlier results")
    assert main(["distill", "--preset", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tocsr-nas distill: error: --out") and "--resume" in err and "\n" not in err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_resume_of_a_folder_that_is_no_library_is_refused(tmp_path, capsys):
    out = tmp_path / "lib"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    assert main(["distill", "--preset", "tiny", "--out", str(out), "--resume"]) == 2
    assert "holds no surrogate library" in capsys.readouterr().err


def test_resume_with_another_teacher_is_refused(tmp_path, tiny_teacher, space_file, capsys):
    space = build_space(tiny_teacher.unet, str(space_file))
    out = tmp_path / "lib"
    distill_teacher(tiny_teacher, space, out, DistillConfig(steps=1, samples=4, val_samples=2), progress=False)
    before = (out / "manifest.json").read_bytes()
    rc = main(["distill", "--preset", "tiny", "--out", str(out), "--space", str(space_file), "--resume", "--steps", "1",
               "--samples", "4", "--val-samples", "2", "--seed", "1"])
    assert rc == 0  # same teacher and space: resuming a complete library is a no-op
    assert json.loads((out / "manifest.json").read_text())["pairs"] == json.loads(before)["pairs"]
    other = tmp_path / "other-teacher"
    from tocsr_nas.teacher import build_teacher

    build_teacher("tiny", seed=1).save(other)
    rc = main(["distill", "--teacher", str(other), "--out", str(out), "--space", str(space_file), "--resume"])
    assert rc == 2
    assert "another teacher" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["pairs"] == json.loads(before)["pairs"]


def test_kill_9_then_resume_loses_and_retrains_nothing(tmp_path, teacher_dir, space_file):
    out = tmp_path / "lib"
    args = ["--teacher", str(teacher_dir), "--space", str(space_file), "--out", str(out), "--steps", "60", "--threads", "1",
            "--samples", "32", "--val-samples", "8", "--workers", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(*args), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while len(_sidecars(out)) < 3:
            assert proc.poll() is None, f"distill ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no pair finished within 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and anything it started
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with pytest.raises(IncompleteLibraryError, match="--resume"):
        SurrogateLibrary.open(out)
    partial = SurrogateLibrary.open(out, require_complete=False)
    finished = dict(partial.records)
    assert finished and partial.missing(), "the kill must land in the middle of the run"
    stamps = {key: [f.stat().st_mtime_ns for f in pair_files(out, *key)] for key in finished}

    done = subprocess.run(_cli(*args, "--resume"), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trainable pairs improved" in done.stdout

    library = SurrogateLibrary.open(out)  # complete
    assert len(library) == 22
    for key, times in stamps.items():
        assert [f.stat().st_mtime_ns for f in pair_files(out, *key)] == times, key  # not retrained
        assert library.records[key].seconds == finished[key].seconds
    manifest = {(p["block"], p["candidate"]): p for p in json.loads((out / "manifest.json").read_text())["pairs"]}
    assert len(manifest) == 22
    for key, rec in finished.items():
        assert manifest[key]["seconds"] == rec.seconds
    from tocsr_nas.teacher import Teacher

    unet = Teacher.load(teacher_dir).unet
    for block, cand in library.pairs():
        module = library.load(block, cand, unet.get_submodule(block))
        assert sum(p.numel() for p in module.parameters()) >= 0
    for rec in library.records.values():
        if rec.trainable:
            assert rec.final_loss < rec.initial_loss
    assert not (out / "features").exists()  # the feature cache is removed once the library is complete
