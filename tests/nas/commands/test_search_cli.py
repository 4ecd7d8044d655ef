"""``tocsr-nas search``: bad arguments exit 2 with one line; a micro end-to-end search; resume.

The micro setup: the ``tiny`` preset with random weights saved to a temporary folder, and a
surrogate library distilled for a small space (attention blocks and samplers) with a few steps.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tocsr_nas.cli import main
from tocsr_nas.teacher import build_teacher

from micro_spaces import micro_space  # tests/micro_spaces.py

MICRO_SPACE = micro_space("micro", "attentions", "downsamplers", "upsamplers")

FAST = ["--val-samples", "4", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def micro(saved_library):
    """``{"teacher": dir, "surrogates": dir, "space": yaml}``: a saved random tiny teacher and its library."""
    return saved_library(MICRO_SPACE, steps=3, samples=8, val_samples=4, capture_batch=8, batch_size=4)


def _args(micro, out, *extra):
    return ["search", "--teacher", str(micro["teacher"]), "--surrogates", str(micro["surrogates"]),
            "--out", str(out), *extra]


def _one_line_error(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert match in err, err
    return err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--epsilon", "0"], "epsilon out of range"),
        (["--epsilon", "-0.1"], "epsilon out of range"),
        (["--epsilon", "10"], "epsilon out of range"),
        (["--epsilon", "0.05,abc"], "epsilon out of range"),
        (["--epsilon", "0.05,"], "epsilon out of range"),
        (["--epsilon", "0.05", "--strategy", "no-such"], "unknown strategy 'no-such'; valid:"),
        (["--epsilon", "0.05", "--quality", "psnr"], "unknown quality 'psnr'; valid: agreement, denoising"),
        (["--epsilon", "0.05", "--budget", "0"], "must be >= 1"),
        (["--epsilon", "0.05", "--objective", "flops"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(micro, tmp_path, capsys, extra, match):
    _one_line_error(capsys, _args(micro, tmp_path / "out", *extra), match)
    assert not (tmp_path / "out").exists()


def test_missing_folders_and_busy_out(micro, tmp_path, capsys):
    argv = _args(micro, tmp_path / "out", "--epsilon", "0.05")
    _one_line_error(capsys, [a.replace(str(micro["teacher"]), str(tmp_path / "nope")) for a in argv], "--teacher")
    _one_line_error(capsys, [a.replace(str(micro["surrogates"]), str(tmp_path / "nope")) for a in argv], "--surrogates")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("earlier results")
    _one_line_error(capsys, argv, "not empty; pass --resume")
    assert (tmp_path / "out" / "keep.txt").read_text() == "earlier results"


def test_library_of_another_teacher_or_space(micro, tmp_path, capsys):
    other = tmp_path / "other-teacher"
    build_teacher("tiny", seed=1).save(other)
    argv = _args(micro, tmp_path / "out", "--epsilon", "0.05", *FAST)
    _one_line_error(capsys, [a.replace(str(micro["teacher"]), str(other)) for a in argv], "distilled from teacher")
    _one_line_error(capsys, argv + ["--space", "unet"], "distilled for space")


def test_end_to_end_micro_search_and_resume(micro, tmp_path, capsys):
    out = tmp_path / "out"
    argv = _args(micro, out, "--epsilon", "0.05,0.5", "--budget", "6", "--space", str(micro["space"]), *FAST)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for name in ("trials.csv", "pareto.csv", "best.json", "plots/pareto.png", "plots/convergence.png",
                 "journal.jsonl", "search.json", "validation.safetensors"):
        assert (out / name).is_file(), name
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 6 and trials["hash"].is_unique
    assert trials.loc[0, "quality"] == 0.0  # the teacher configuration first, scoring exactly zero
    best = json.loads((out / "best.json").read_text())
    assert best["found"] and best["epsilon"] == 0.05 and best["quality"] <= 0.05
    assert "epsilon 0.05:" in printed and "x fewer" in printed and "quality" in printed

    # resume with a larger budget: the first six trials are kept as they were, none repeated
    resume = _args(micro, out, "--epsilon", "0.05,0.5", "--budget", "8", "--space", str(micro["space"]), *FAST)
    assert main(resume + ["--resume"]) == 0
    resumed = pd.read_csv(out / "trials.csv")
    assert len(resumed) == 8 and resumed["hash"].is_unique
    pd.testing.assert_frame_equal(resumed.iloc[:6].reset_index(drop=True), trials, check_dtype=False)
    capsys.readouterr()

    # resuming with another quality function would mix incomparable numbers
    _one_line_error(capsys, argv + ["--resume", "--quality", "agreement"], "cannot resume")


def test_same_seed_same_trials(micro, tmp_path):
    runs = []
    for name in ("a", "b"):
        argv = _args(micro, tmp_path / name, "--epsilon", "0.1", "--budget", "4", "--strategy", "random",
                     "--quality", "agreement", *FAST)
        assert main(argv) == 0
        runs.append(pd.read_csv(tmp_path / name / "trials.csv"))
    pd.testing.assert_frame_equal(runs[0].drop(columns="seconds"), runs[1].drop(columns="seconds"))
    assert (runs[0]["quality"] >= 0).all() and runs[0].loc[0, "quality"] == 0.0
    shutil.rmtree(tmp_path / "b")


def test_prior_is_the_library_losses_scaled_into_unit_interval(micro):
    from tocsr_nas.search.setup import normalised_prior
    from tocsr_nas.surrogates.library import SurrogateLibrary

    library = SurrogateLibrary.open(micro["surrogates"])
    prior, raw = normalised_prior(library), library.prior()
    values = [v for row in prior.values() for v in row.values()]
    assert set(prior) == set(raw) and max(values) == 1.0 and min(values) >= 0.0
    assert all(row["teacher"] == 0.0 for row in prior.values())
    block = next(iter(raw))
    top = max(v for row in raw.values() for v in row.values())
    assert prior[block] == pytest.approx({k: v / top for k, v in raw[block].items()})


def test_strategy_options_reach_the_strategy_and_the_record(micro, tmp_path, capsys):
    """``--strategy-option KEY=VALUE`` (JSON values) goes to the strategy and into search.json; a bad one exits 2."""
    out = tmp_path / "out"
    argv = _args(micro, out, "--epsilon", "0.1", "--budget", "3", "--strategy-option", "prior_rel_sd=1.0",
                 "--strategy-option", "warp=log1p", *FAST)
    assert main(argv) == 0
    settings = json.loads((out / "search.json").read_text())
    assert settings["strategy_options"] == {"prior_rel_sd": 1.0, "warp": "log1p"}
    capsys.readouterr()
    _one_line_error(capsys, _args(micro, tmp_path / "bad", "--epsilon", "0.1", "--strategy-option", "no-equals-sign"),
                    "expected KEY=VALUE")
    _one_line_error(capsys, _args(micro, tmp_path / "bad2", "--epsilon", "0.1", "--budget", "2",
                                  "--strategy-option", "bogus=1", *FAST), "unknown option(s) ['bogus']")
