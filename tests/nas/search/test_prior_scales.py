"""benchmarks/prior_scales.py: every one-block change evaluated against the library's prior, per block."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import prior_scales  # benchmarks/, importable through conftest.py


def test_every_single_change_is_evaluated_and_summarised_per_block(lib, capsys):
    cells = prior_scales.single_changes(lib["teacher"], lib["surrogates"], val_samples=2)
    assert len(cells) == cells.groupby("block").size().sum() and len(cells) > 0
    assert (cells["option"] != "teacher").all() and cells["damage"].notna().all()
    assert cells["prior"].between(0.0, 1.0).all()
    argv = ["--teacher", str(lib["teacher"]), "--surrogates", str(lib["surrogates"]), "--val-samples", "2", "--cells"]
    trials = lib["surrogates"].parent / "trials.csv"
    config = {b: ("teacher" if i else o) for i, (b, o) in enumerate(zip(cells["block"], cells["option"]))}
    config.update({b: o for b, o in zip(cells["block"], cells["option"])})  # the last option of every block
    pd.DataFrame({"trial": [0], "hash": ["h"], "quality": [0.5], "config": [json.dumps(config)]}).to_csv(trials, index=False)
    argv += ["--trials", str(trials)]
    assert prior_scales.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{len(cells)} cells in \d+ blocks; rank correlation of prior and damage: -?[\d.]+ over all cells", out)
    # the micro library's damages may sum below zero (no ratio then): either line says what the trial gave
    assert re.search(r"quality / sum of single-change damages over 1 trials: median|no trial of two blocks or more", out)
    assert re.search(r"trial\s+changed\s+quality\s+sum_of_singles\s+ratio", out)


def test_a_block_scale_is_the_median_damage_per_unit_of_prior():
    cells = pd.DataFrame({"block": ["a"] * 3 + ["b"] * 3, "option": list("xyzxyz"),
                          "prior": [0.1, 0.2, 0.4, 0.1, 0.2, 0.0], "damage": [0.01, 0.02, 0.04, 1.0, 3.0, 0.5]})
    blocks = prior_scales.block_scales(cells).set_index("block")
    assert blocks.loc["a", "scale"] == pytest.approx(0.1) and blocks.loc["a", "spearman"] == pytest.approx(1.0)
    assert blocks.loc["b", "scale"] == pytest.approx(12.5)  # median of 10 and 15; the zero-prior cell left out


def test_additivity_sets_each_multi_block_trial_beside_the_sum_of_its_single_changes():
    cells = pd.DataFrame({"block": ["a", "a", "b"], "option": ["x", "y", "x"], "prior": [0.1, 0.2, 0.3],
                          "damage": [0.01, 0.02, 0.03]})
    cells.attrs["teacher"] = {"a": "teacher", "b": "teacher"}
    trials = pd.DataFrame({"trial": [0, 1, 2, 3], "quality": [0.0, 0.01, 0.08, float("nan")],
                           "config": ['{"a": "teacher", "b": "teacher"}', '{"a": "x", "b": "teacher"}',
                                      '{"a": "y", "b": "x"}', '{"a": "x", "b": "x"}']})
    joint = prior_scales.additivity(cells, trials)
    assert joint["trial"].tolist() == [2]  # one block or fewer changed, or a failed evaluation: left out
    assert joint["sum_of_singles"].iloc[0] == pytest.approx(0.05) and joint["ratio"].iloc[0] == pytest.approx(1.6)
    # a trial from another space: a clear error, not a wrong sum
    other = pd.DataFrame({"trial": [7], "quality": [0.1], "config": ['{"a": "w", "b": "x"}']})
    with pytest.raises(SystemExit, match="trial 7: a=w not in this library's space"):
        prior_scales.additivity(cells, other)
