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
    assert report["merged"] == {}  # the default space has no duplicate candidates


def test_space_lists_merged_duplicates(tmp_path, capsys):
    # on the 32-channel blocks round(0.51 * 32) = round(0.5 * 32) = 16: one architecture
    path = tmp_path / "dup.yaml"
    path.write_text("rules: [{name: r, match: '*resnets.*', type: ResnetBlock2D, "
                    "candidates: [{type: bottleneck_resnet, grid: {ratio: [0.5, 0.51]}}]}]")
    assert main(["space", "--preset", "tiny", "--space", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    drop = {"bottleneck_resnet(ratio=0.51)": "bottleneck_resnet(ratio=0.5)"}
    assert report["merged"] == {p: drop for p in ("down_blocks.0.resnets.0", "up_blocks.2.resnets.0", "up_blocks.2.resnets.1")}
    by_path = {b["path"]: [c["name"] for c in b["candidates"]] for b in report["blocks"]}
    assert by_path["down_blocks.0.resnets.0"] == ["teacher", "bottleneck_resnet(ratio=0.5)"]
    assert len(by_path["mid_block.resnets.0"]) == 3
    assert main(["space", "--preset", "tiny", "--space", str(path)]) == 0
    out = capsys.readouterr().out
    assert "up_blocks.2.resnets.1: bottleneck_resnet(ratio=0.51) = bottleneck_resnet(ratio=0.5)" in out


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
