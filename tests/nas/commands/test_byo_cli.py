"""``tocsr-nas`` on a diffusers pipeline folder of every family: space, distill, search, export, then
``load_compact`` and one forward with the teacher's own inputs (issue 15, "bring your own model")."""

from __future__ import annotations

import json

import pytest
import torch

import tocsr_nas
from tocsr_nas.cli import main
from tocsr_nas.teacher import Teacher
from tocsr_nas.teacher.testing import MICRO_FAMILIES, write_micro_pipeline


@pytest.mark.slow
@pytest.mark.parametrize("family", MICRO_FAMILIES)
def test_cli_end_to_end(family, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOCSR_NAS_CACHE", str(tmp_path / "cache"))
    folder = write_micro_pipeline(family, tmp_path / "pipeline")
    teacher = Teacher.load(folder)
    assert main(["space", "--teacher", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["teacher_params"] == sum(p.numel() for p in teacher.unet.parameters())
    lib, search, compact = tmp_path / "lib", tmp_path / "search", tmp_path / "compact"
    assert main(["distill", "--teacher", str(folder), "--out", str(lib), "--steps", "2", "--samples", "4", "--val-samples", "2",
                 "--batch-size", "2", "--threads", "1", "--no-progress"]) == 0  # fmt: skip
    assert main(["search", "--teacher", str(folder), "--surrogates", str(lib), "--epsilon", "5", "--strategy", "random",
                 "--budget", "3", "--val-samples", "2", "--out", str(search), "--threads", "1", "--no-progress"]) == 0  # fmt: skip
    assert main(["export", "--search", str(search), "--out", str(compact)]) == 0
    model = tocsr_nas.load_compact(compact)
    args, kwargs = teacher.unet_example_inputs(2)
    kwargs.pop("return_dict")
    with torch.no_grad():
        got, want = model(*args, **kwargs), teacher.unet(*args, **kwargs)
    assert type(got) is type(want) and got.sample.shape == want.sample.shape
