"""``tocsr-nas space``: JSON report and one-line errors with exit code 2."""

import json

import pytest

from tocsr_nas.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOCSR_NAS_CACHE", str(tmp_path / "cache"))


def test_space_json_report(capsys):
    assert main(["space", "--preset", "tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("teacher_params", "teacher_gmacs", "min_params", "min_gmacs", "size", "blocks"):
        assert key in report
    assert report["min_params"] < report["teacher_params"] and report["min_gmacs"] < report["teacher_gmacs"]
    assert report["teacher_gmacs_no_attention"] < report["teacher_gmacs"]
    teacher_sum = sum(next(c["params"] for c in b["candidates"] if c["name"] == "teacher") for b in report["blocks"])
    assert teacher_sum + report["base_params"] == report["teacher_params"]


BAD = {
    "nothing.yaml": ("rules: [{name: ghost, match: 'encoder.*', candidates: [skip]}]", "rule 'ghost'"),
    "unknown.yaml": ("rules: [{name: r, match: '*resnets.*', candidates: [warp_drive]}]", "warp_drive"),
    "malformed.yaml": ("rules: [{name: r, match: '*resnets.*'", "malformed YAML"),
    "kind.yaml": ("rules: [{name: r, match: '*resnets.*', type: ResnetBlock2D, candidates: [conv_mixer]}]", "conv_mixer"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_space_is_one_line_and_exit_2(tmp_path, capsys, name):
    text, fragment = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    assert main(["space", "--preset", "tiny", "--space", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["space", "--preset", "huge"],
        ["space", "--preset", "tiny", "--resolution", "30"],
        ["space", "--teacher", "/nonexistent/teacher"],
        ["space", "--preset", "tiny", "--space", "/nonexistent.yaml"],
        ["space", "--bogus-flag"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
