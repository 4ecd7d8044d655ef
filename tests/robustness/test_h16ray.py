"""Distillation and search on Ray (``--executor ray``): same results as local, ``kill -9`` of the driver, resume.

Bad executor options are catalogue rows. The Ray tests run on the session's 2-CPU local cluster
(``ray_cluster``): commands in this process join it (``ray.is_initialized()``), subprocesses through
``RAY_ADDRESS``. A kill is ``SIGKILL`` to the driver's process group (as in ``test_faults``); the
cluster and its workers live on, as on a real cluster, and the killed driver's tasks are dropped by
Ray. The driver alone writes pair files, the manifest and the journal, so a resume (with either
executor) finishes the run:

- ``distill``: killed twice among the pairs (once under Ray, once under local), finished under Ray:
  the same pairs as an uninterrupted local run, every weight file byte-identical (each pair's seed
  depends only on the pair) and the final losses equal (within 5%, the issue's bar, holds a fortiori).
- ``search --batch-size 4``: killed while a batch is evaluated on the actors; the journal reads
  back intact (every finished trial kept), the resume finishes the budget, and the trials equal
  those of an uninterrupted local ``--batch-size 4`` run.
"""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
import pytest

from robustness.catalogue import Case, check, params
from robustness.conftest import FAST_SEARCH
from robustness.test_faults import DISTILL, ENV, _library, _run, _sidecars
from tocsr_nas.cli import main

SPACE_IN = ["--teacher", "{teacher}", "--space", "{space}"]
SEARCH_IN = ["--teacher", "{teacher}", "--surrogates", "{library}", "--space", "{space}", "--epsilon", "0.05"]

CASES = [
    Case("distill", "ray-address-without-ray-executor", ["distill", *SPACE_IN, "--out", "{tmp}/lib",
         "--ray-address", "127.0.0.1:1"], r"--ray-address needs --executor ray", absent=["{tmp}/lib"]),
    Case("distill", "unknown-executor", ["distill", *SPACE_IN, "--out", "{tmp}/lib", "--executor", "dask"],
         r"--executor.*invalid choice", absent=["{tmp}/lib"]),
    Case("search", "ray-address-without-ray-executor", ["search", *SEARCH_IN, "--out", "{tmp}/s",
         "--ray-address", "127.0.0.1:1", *FAST_SEARCH], r"--ray-address needs --executor ray", absent=["{tmp}/s"]),
    Case("run", "unknown-executor", ["run", "--out", "{tmp}/r", "--executor", "spark"], r"--executor.*invalid choice",
         absent=["{tmp}/r"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)


@pytest.mark.parametrize("command", ["distill", "search"])
def test_executor_ray_without_ray_installed_is_one_line_and_writes_nothing(command, artefacts, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the ray extra sees
    names = artefacts.names()
    inputs = SPACE_IN if command == "distill" else [*SEARCH_IN, *FAST_SEARCH]
    out = tmp_path / "out"
    argv = [command, *(a.format_map(names) for a in inputs), "--out", str(out), "--executor", "ray"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -e '.[ray]'" in err[0], err
    assert not out.exists()


# --- distill ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_library(artefacts, tmp_path_factory):
    """The distill's inputs and the library of an uninterrupted local run."""
    inputs = ["--teacher", str(artefacts.teacher), "--space", str(artefacts.space)]
    out = tmp_path_factory.mktemp("ray-reference") / "lib"
    assert main(["distill", *inputs, *DISTILL, "--out", str(out)]) == 0
    return inputs, _library(out)


def _join_session_cluster(monkeypatch, address: str) -> None:
    """Subprocess drivers join the session's cluster: its address, and Ray's authentication mode
    (``ray.init`` set it in this process; the token itself is in ``~/.ray/auth_token``)."""
    monkeypatch.setitem(ENV, "RAY_ADDRESS", address)
    for key in ("RAY_AUTH_MODE",):
        if key in os.environ:
            monkeypatch.setitem(ENV, key, os.environ[key])


def _losses(library: dict) -> dict[tuple[str, str], float]:
    return {(p["block"], p["candidate"]): p["final_loss"] for p in library["manifest"]["pairs"]}


@pytest.mark.ray
def test_distill_on_ray_gives_the_pairs_and_losses_of_a_local_run(ray_cluster, local_library, tmp_path):
    inputs, reference = local_library
    out = tmp_path / "lib"
    assert main(["distill", *inputs, *DISTILL, "--executor", "ray", "--workers", "2", "--out", str(out)]) == 0
    got = _library(out)
    assert got["files"] == reference["files"]
    want = _losses(reference)
    assert _losses(got).keys() == want.keys()
    for key, loss in _losses(got).items():
        assert loss == pytest.approx(want[key], rel=0.05), key
    assert got["weights"] == reference["weights"]  # in fact bitwise: the pair's seed, one thread per job


@pytest.mark.ray
def test_distill_on_ray_killed_then_resumed_by_either_executor_equals_a_local_run(ray_cluster, local_library,
                                                                                   tmp_path, monkeypatch):
    inputs, reference = local_library
    _join_session_cluster(monkeypatch, ray_cluster)
    out = tmp_path / "lib"
    log = tmp_path / "log.txt"
    argv = ["distill", *inputs, *DISTILL, "--workers", "2", "--out", str(out)]
    total = len(reference["sidecars"])
    runs = [(["--executor", "ray"], 2), (["--executor", "local", "--resume"], 5), (["--executor", "ray", "--resume"], None)]
    kills = []
    for extra, target in runs:
        done = len(_sidecars(out))
        when = None if target is None else (lambda t=max(target, done + 1): len(_sidecars(out)) >= t)
        if _run([*argv, *extra], log, when):
            kills.append(len(_sidecars(out)))
    print(f"distill on ray: kills at {kills} of {total} pairs")
    assert len(kills) == 2, f"killed at {kills}; see {log}"
    got = _library(out)
    assert got["files"] == reference["files"]
    assert got["weights"] == reference["weights"]
    assert got["sidecars"] == reference["sidecars"]


# --- search ----------------------------------------------------------------------------------------

RAY_SEARCH = ["--epsilon", "0.05,0.5", "--strategy", "random", "--seed", "3", "--budget", "8", "--batch-size", "4",
              *FAST_SEARCH]


def _finished(out) -> int:
    journal = out / "journal.jsonl"
    if not journal.is_file():
        return 0
    return sum(1 for line in journal.read_text().splitlines() if line.endswith("}") and '"type":"finished"' in line)


def _trials(out) -> list[dict]:
    frame = pd.read_csv(out / "trials.csv", dtype={"config": str, "hash": str, "strategy": str})
    return frame.drop(columns="seconds").sort_values("trial").to_dict("records")


@pytest.mark.ray
def test_search_on_ray_batch_4_killed_then_resumed_equals_a_local_run(ray_cluster, artefacts, tmp_path, monkeypatch):
    from tocsr_nas.search.journal import read_journal

    inputs = ["--teacher", str(artefacts.teacher), "--surrogates", str(artefacts.library), "--space", str(artefacts.space)]
    reference = tmp_path / "local"
    assert main(["search", *inputs, *RAY_SEARCH, "--out", str(reference)]) == 0

    _join_session_cluster(monkeypatch, ray_cluster)
    out, log = tmp_path / "ray", tmp_path / "log.txt"
    argv = ["search", *inputs, *RAY_SEARCH, "--executor", "ray", "--out", str(out)]
    assert _run(argv, log, lambda: _finished(out) >= 2), f"the search finished before the kill; see {log}"
    before = read_journal(str(out / "journal.jsonl"))  # intact: reads back without error
    kept = {t: r.finished["quality"] for t, r in before.trials.items() if r.finished is not None}
    assert len(kept) >= 2
    assert _run([*argv, "--resume"], log, None) is False
    after = read_journal(str(out / "journal.jsonl"))
    assert all(after.trials[t].finished["quality"] == q for t, q in kept.items())  # nothing finished was redone
    got, want = _trials(out), _trials(reference)
    assert [r["config"] for r in got] == [r["config"] for r in want]
    assert [r["quality"] for r in got] == pytest.approx([r["quality"] for r in want], rel=1e-6)
    best, best_local = (json.loads((d / "best.json").read_text()) for d in (out, reference))
    assert best["configuration"] == best_local["configuration"]
