"""End to end: ``tocsr-nas run --quick`` runs every real stage on the shipped teacher, then resumes for free."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

STAGES = ("teacher", "surrogates", "search", "compact", "sr", "onestep", "evaluate")


def _run(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tocsr_nas.cli", "run", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_every_stage_leaves_its_folder_and_the_report(run_dir):
    out, proc = run_dir
    state = json.loads((out / "pipeline.json").read_text())
    assert set(state["stages"]) == set(STAGES)
    assert (out / "teacher" / "teacher.json").is_file()
    assert json.loads((out / "surrogates" / "manifest.json").read_text())["pairs"]
    best = json.loads((out / "search" / "best.json").read_text())
    assert best["n_trials"] == 6 and (out / "search" / "plots" / "pareto.png").is_file()
    compact = json.loads((out / "compact" / "compact.json").read_text())
    if best["found"]:
        assert compact["configuration"] == best["configuration"]
        assert compact["measured"]["params"] == best["params"]
    assert (out / "sr" / "sr.json").is_file() and (out / "onestep" / "sr.json").is_file()
    evaluation = json.loads((out / "evaluate" / "evaluation.json").read_text())
    assert set(evaluation["methods"]) == {"bicubic", "multistep", "onestep"}
    report = (out / "report.md").read_text()
    for section in ("## Stages", "## Search", "## Compact UNet", "## Super-resolution"):
        assert section in report
    assert "SR onestep: PSNR" in proc.stdout


def test_rerun_skips_finished_stages(run_dir):
    out, _ = run_dir
    before = json.loads((out / "pipeline.json").read_text())
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "pipeline.json").read_text())["stages"] == before["stages"]
    assert "== stage" not in proc.stderr
