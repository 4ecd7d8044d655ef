"""Catalogue rows of issue 17: the luma refiner's option and SR folders of an unknown format version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from robustness.catalogue import Case, check, params

SR_DISTILL = ["sr", "distill", "--teacher", "{sr}", "--out", "{tmp}/out", "--threads", "1", "--no-progress"]


def _future_version(tmp: Path, a) -> dict[str, str]:  # noqa: ANN001
    """A copy of the SR folder whose sr.json claims a format version this tocsr-nas does not know."""
    copy = tmp / "future"
    shutil.copytree(a.sr, copy)
    meta = json.loads((copy / "sr.json").read_text())
    (copy / "sr.json").write_text(json.dumps({**meta, "version": 3}))
    return {"future": str(copy)}


CASES = [
    Case("sr distill", "refine-steps-negative", [*SR_DISTILL, "--refine-steps=-1"], r"--refine-steps\b.*must be >= 0",
         absent=["{tmp}/out"]),
    Case("sr distill", "refine-steps-word", [*SR_DISTILL, "--refine-steps", "many"], r"--refine-steps\b.*not an integer",
         absent=["{tmp}/out"]),
    Case("evaluate", "sr-format-from-the-future", ["evaluate", "--model", "{future}", "--out", "{tmp}/out", "--threads", "1"],
         r"version 3; this tocsr-nas reads versions 1 to 2", setup=_future_version, unchanged=["{future}"],
         absent=["{tmp}/out"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)
