"""Fixtures of the micro-benchmarks (``make bench``; skipped by the default test command).

The quality benchmarks need a surrogate library of the committed tiny teacher. They use, in order:
``$TOCSR_BENCH_LIBRARY``, ``runs/demo/surrogates`` (from ``make demo``) when it opens for the committed teacher, or a
one-step library distilled here into a temporary folder (about a minute on two cores; the
timings do not depend on how well the surrogates were trained).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tocsr_nas.surrogates.library import SurrogateLibrary
from tocsr_nas.teacher import Teacher, default_teacher_dir


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Every micro-benchmark on one torch thread: comparable figures on a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def trained_teacher() -> Teacher:
    return Teacher.load(default_teacher_dir()).eval()


@pytest.fixture(scope="session")
def tiny_library(trained_teacher, tmp_path_factory) -> SurrogateLibrary:
    fingerprint = trained_teacher.fingerprint()
    for candidate in (os.environ.get("TOCSR_BENCH_LIBRARY"), Path(__file__).resolve().parents[2] / "runs" / "demo" / "surrogates"):
        if candidate and Path(candidate, "manifest.json").is_file():
            try:
                return SurrogateLibrary.open(candidate, teacher_fingerprint=fingerprint)
            except Exception:  # another teacher's or an unfinished library: distil our own
                continue
    from tocsr_nas.cli import main

    out = tmp_path_factory.mktemp("bench-library")
    code = main(["distill", "--out", str(out), "--steps", "1", "--samples", "16", "--val-samples", "8", "--no-progress"])
    assert code == 0
    return SurrogateLibrary.open(out, teacher_fingerprint=fingerprint)
