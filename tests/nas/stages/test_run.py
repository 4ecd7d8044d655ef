"""``tocsr_nas.stages.run``: the core never needs the CLI; the stage list, command lines and resume logic."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tocsr_nas.errors import TocsrError
from tocsr_nas.stages import run as pipeline
from tocsr_nas.stages.run import (
    STATE_FILE,
    PipelineSettings,
    Stage,
    command_line,
    quick_settings,
    run_pipeline,
    stages,
)


def test_importing_the_pipeline_imports_no_cli():
    code = (
        "import sys, tocsr_nas.stages.run, tocsr_nas.stages.train, tocsr_nas.stages.export, tocsr_nas.threads\n"
        "print([m for m in sys.modules if m == 'tocsr_nas.cli' or m.startswith('tocsr_nas.commands')])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_command_line():
    assert command_line({"out": Path("a/b"), "steps": 3, "pool_size": None, "resume": False, "overwrite": True}) == [
        "--out", "a/b", "--steps", "3", "--overwrite",
    ]  # fmt: skip


def test_stages_and_their_command_lines():
    out = Path("o")
    listed = stages(quick_settings())
    assert [s.name for s in listed] == ["teacher", "surrogates", "search", "compact", "sr", "onestep", "evaluate"]
    by_name = {s.name: s for s in listed}
    assert by_name["teacher"].argv(out, False) is None  # the shipped tiny teacher is copied
    assert by_name["sr"].argv(out, True) == [
        "sr", "train", "--backbone", "o/compact", "--out", "o/sr", "--steps", "20", "--seed", "0", "--sampler-steps",
        "10", "--pool-size", "8", "--batch-size", "4", "--threads", "1", "--resume",
    ]  # fmt: skip
    assert "--resume" not in by_name["onestep"].argv(out, False)
    assert by_name["compact"].argv(out, False) == ["export", "--search", "o/search", "--out", "o/compact", "--overwrite"]
    assert not by_name["evaluate"].resumable and not by_name["compact"].resumable
    teacher = stages(PipelineSettings(preset="sd21-vae16"))[0]
    assert teacher.argv(out, True) == ["teacher", "train", "--preset", "sd21-vae16", "--out", "o/teacher", "--seed", "0", "--resume"]


class _Calls(list):
    failing: set


@pytest.fixture
def fake_stages(monkeypatch):
    """Three stages that only record how they were called."""
    calls = _Calls()
    failing = set()

    def make(name, resumable=True):
        def options(out, resume):
            return {"out": out / name, "resume": resume} if resumable else {"out": out / name}

        def run(o):
            calls.append((name, o.get("resume")))
            if name in failing:
                raise TocsrError(f"{name} failed")
            o["out"].mkdir(exist_ok=True)

        return Stage(name, ("cmd", name), options, run, resumable=resumable)

    monkeypatch.setattr(pipeline, "stages", lambda settings: [make("a"), make("b"), make("c", resumable=False)])
    calls.failing = failing
    return calls


def test_resume_skips_finished_stages_and_resumes_an_interrupted_one(tmp_path, fake_stages):
    settings = PipelineSettings()
    state = run_pipeline(tmp_path, settings, only=["a"])
    assert fake_stages == [("a", False)] and set(state["stages"]) == {"a"}
    assert state["stages"]["a"]["argv"] == ["cmd", "a", "--out", str(tmp_path / "a")]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "partial").write_text("x")  # an interrupted stage
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "partial").write_text("x")  # not resumable: rerun from scratch
    fake_stages.clear()
    state = run_pipeline(tmp_path, settings)
    assert fake_stages == [("b", True), ("c", None)]
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert list(saved["stages"]) == ["a", "b", "c"]
    assert saved["stages"]["b"]["argv"][-1] == "--resume"
    fake_stages.clear()
    run_pipeline(tmp_path, settings)
    assert fake_stages == []


def test_other_settings_are_refused(tmp_path, fake_stages):
    run_pipeline(tmp_path, PipelineSettings(), only=["a"])
    with pytest.raises(TocsrError, match="other settings"):
        run_pipeline(tmp_path, PipelineSettings(seed=1))
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(TocsrError, match="corrupt"):
        run_pipeline(tmp_path, PipelineSettings())


def test_a_failed_stage_is_not_recorded(tmp_path, fake_stages):
    fake_stages.failing.add("b")
    with pytest.raises(TocsrError, match="b failed"):
        run_pipeline(tmp_path, PipelineSettings())
    assert list(json.loads((tmp_path / STATE_FILE).read_text())["stages"]) == ["a"]
    fake_stages.failing.clear()
    fake_stages.clear()
    run_pipeline(tmp_path, PipelineSettings())
    assert fake_stages == [("b", False), ("c", None)]
