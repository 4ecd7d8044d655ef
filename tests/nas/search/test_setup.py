"""tocsr_nas.search.setup: prepare_search on the tiny teacher with a small library, and run_search (the stage).

The library: the ``tiny`` preset with random weights, saved to a temporary folder, and a surrogate
library distilled for its samplers only with a few steps (seconds).
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

import tocsr_nas
from tocsr_nas.errors import TocsrError, UserInputError
from tocsr_nas.search import setup
from tocsr_nas.surrogates.library import LibraryMismatchError
from tocsr_nas.teacher import Teacher, build_teacher

FAST = {"val_samples": 2, "progress": False}


def test_exported_lazily_from_tocsr_nas_search():
    for name in ("prepare_search", "PreparedSearch", "run_search"):
        assert name in tocsr_nas.search.__all__
        assert getattr(tocsr_nas.search, name) is getattr(setup, name)


def test_prepare_from_folders(lib, tmp_path):
    prepared = setup.prepare_search(teacher=lib["teacher"], surrogates=lib["surrogates"], space=lib["space"],
                                    cost_cache=tmp_path, **FAST)
    assert prepared.space.hash == prepared.library.space_hash
    assert prepared.resolution == prepared.library.resolution
    assert len(prepared.validation) == 2
    default = prepared.space.default_config()
    assert prepared.quality(default) == 0.0  # the teacher's own blocks score exactly zero
    assert prepared.cost.gmacs(default) == prepared.cost.teacher().gmacs
    assert prepared.prior == setup.normalised_prior(prepared.library)
    assert prepared.settings == {
        "teacher": str(lib["teacher"]),
        "teacher_fingerprint": prepared.library.teacher_fingerprint,
        "surrogates": str(lib["surrogates"]),
        "library_space_hash": prepared.space.hash,
        "space": str(lib["space"]),
        "quality": "denoising",
        "val_samples": 2,
        "val_seed": 0,
        "resolution": prepared.resolution,
        "prior": True,
        "component": "denoiser",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.prior = None


def test_prepare_from_objects_and_search(lib, tmp_path):
    teacher = Teacher.load(lib["teacher"])
    opened = setup.prepare_search(teacher=teacher, surrogates=lib["surrogates"], cost_cache=tmp_path, **FAST)
    with pytest.raises(LibraryMismatchError, match="distilled from teacher"):  # its UNet is routed by a supernet
        setup.prepare_search(teacher=teacher, surrogates=lib["surrogates"], **FAST)
    opened.supernet.restore()  # the teacher's own blocks back: the teacher again
    prepared = setup.prepare_search(teacher=teacher, surrogates=opened.library, space=opened.space,
                                    quality="agreement", prior=False, cost_cache=tmp_path, **FAST)
    assert prepared.prior is None and prepared.settings["teacher"] is None and prepared.settings["space"] is None
    assert prepared.quality.name == "agreement"
    result = prepared.search(epsilon=0.5, strategy="random", budget=3, seed=0, progress=False)
    assert len(result.trials) == 3 and result.trials["quality"].notna().all()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"quality": "psnr"}, UserInputError, "unknown quality 'psnr'; valid: agreement, denoising"),
        ({"val_samples": 0}, UserInputError, "val_samples must be an integer >= 1"),
        ({"resolution": 63}, TocsrError, "63"),
        ({"space": "no/such.yaml"}, UserInputError, "--space no/such.yaml: no such file"),
        ({"space": "unet"}, LibraryMismatchError, "distilled for space"),
    ],
)
def test_prepare_errors(lib, change, error, match):
    kwargs = {"teacher": lib["teacher"], "surrogates": lib["surrogates"], **FAST, **change}
    with pytest.raises(error, match=match):
        setup.prepare_search(**kwargs)


def test_prepare_missing_folders_and_another_teacher(lib, tmp_path):
    with pytest.raises(UserInputError, match="--teacher .*: no such folder"):
        setup.prepare_search(teacher=tmp_path / "nope", surrogates=lib["surrogates"])
    with pytest.raises(UserInputError, match="--surrogates .*: no such folder"):
        setup.prepare_search(teacher=lib["teacher"], surrogates=tmp_path / "nope")
    with pytest.raises(LibraryMismatchError, match="distilled from teacher"):
        setup.prepare_search(teacher=build_teacher("tiny", seed=1), surrogates=lib["surrogates"])


def test_run_search_writes_settings_and_refuses_another_resume(lib, tmp_path):
    out = tmp_path / "out"
    kwargs = {"teacher": lib["teacher"], "surrogates": lib["surrogates"], "out": out, "epsilon": [0.05, 0.5],
              "strategy": "random", "budget": 3, "threads": 1, **FAST}
    result = setup.run_search(**kwargs)
    assert len(pd.read_csv(out / "trials.csv")) == 3 == len(result.trials)
    settings = json.loads((out / setup.SETTINGS_FILE).read_text())
    assert settings["epsilons"] == [0.05, 0.5] and settings["budget"] == 3 and settings["prior"] is True
    assert settings["strategy_options"] == {}
    with pytest.raises(UserInputError, match="not empty; pass --resume"):
        setup.run_search(**kwargs)
    before = (out / setup.VALIDATION_FILE).read_bytes()
    with pytest.raises(UserInputError, match="cannot resume .* val_samples=2, not 3"):
        setup.run_search(**{**kwargs, "val_samples": 3, "resume": True})
    assert (out / setup.VALIDATION_FILE).read_bytes() == before  # checked before anything was rebuilt
    resumed = setup.run_search(**{**kwargs, "budget": 4, "resume": True})
    assert len(resumed.trials) == 4
    pd.testing.assert_frame_equal(resumed.trials.iloc[:3], result.trials, check_dtype=False)
    with pytest.raises(UserInputError, match="unknown strategy 'nope'"):
        setup.run_search(**{**kwargs, "out": tmp_path / "other", "strategy": "nope"})
    assert not (tmp_path / "other").exists()
