"""Fault injection: ``kill -9`` at seeded random points, ``--resume`` after each, until the run completes.

Each stage runs as a subprocess (``python -m tocsr_nas.cli ...``) in its own process group; a kill is
``SIGKILL`` to the whole group (a distill pool's workers die with their parent, as under a real
``kill -9`` of the job or an OOM kill of the machine's session). Kill points come from a seeded RNG
over what the stage has written so far (journal lines of a search, finished pair sidecars of a
distill), so every kill lands at a different place in the run and the test is reproducible up to
timing. The resumed outcome is compared with an uninterrupted run of the same command:

- ``search``: ``journal.jsonl``, ``trials.csv`` and ``best.json`` identical up to the wall-clock
  fields (``created``, ``elapsed`` and the ``seconds`` an evaluation took); ``validation.safetensors``
  holds identical tensors and metadata.
- ``distill`` (``--workers 1`` and ``--workers 2``): every pair's weights bitwise identical to the
  uninterrupted ``--workers 1`` library (the files' bytes); sidecars and manifest identical
  up to ``seconds``.

Kills per run: ``search`` 5 (one in the set-up, before the journal exists; three among the journal
lines; one while the result files are written, best effort as the run may finish first);
``distill --workers 1`` 4 (three among the pairs, one after the last, best effort);
``distill --workers 2`` 3. The test prints them (``-s``) and records them as the property ``kills``.

A distill's pair files are compared byte for byte (:func:`tocsr_nas._io.save_safetensors` puts the
metadata, which safetensors writes in a per-process hash order, in key order); the search's
``validation.safetensors`` by its tensors and metadata. A kill inside an atomic write leaves a stray
``.<name>.tmp-*`` file (documented in :mod:`tocsr_nas._io` as ignored); those are left out of the
comparison and recorded as the property ``stray temporary files``.

A kill during the distill's feature capture (no manifest yet) leaves a folder that ``--resume`` finishes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from safetensors import safe_open

from robustness.catalogue import Case, check, params
from robustness.conftest import FAST_SEARCH
from tocsr_nas.cli import main

#: fields that record wall-clock time: the only ones an interrupted run may change
VOLATILE = {"created", "elapsed", "seconds"}
#: a run that takes longer than this has hung (a guard against a stuck test, not a timing assert)
HANG_S = 300
SEARCH = ["--epsilon", "0.05,0.5", "--strategy", "random", "--seed", "3", "--budget", "12", "--batch-size", "2",
          "--val-samples", "16", "--threads", "1", "--no-progress"]
DISTILL = ["--steps", "80", "--samples", "8", "--val-samples", "4", "--batch-size", "4", "--threads", "1",
           "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _strip(value):
    """``value`` without the wall-clock fields (recursively)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _tensors(path: Path) -> tuple[dict, dict[str, bytes]]:
    """A safetensors file's metadata and the bytes of each tensor.

    Not the file's bytes: safetensors writes its metadata map in an order that changes from process
    to process, so two runs that save equal tensors and metadata may still differ in the header.
    """
    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata() or {}, {k: fh.get_tensor(k).numpy().tobytes() for k in sorted(fh.keys())}


def _run(argv: list[str], log: Path, kill_when: Callable[[], bool] | None) -> bool:
    """Run a CLI command; ``kill -9`` its process group as soon as ``kill_when()`` holds.

    Returns:
        Whether it was killed (otherwise it must have exited with 0).
    """
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen([sys.executable, "-m", "tocsr_nas.cli", *argv], stdout=out, stderr=subprocess.STDOUT,
                                env=ENV, start_new_session=True)
        start = time.monotonic()
        try:
            while proc.poll() is None:
                if kill_when is not None and kill_when():
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return True
                if time.monotonic() - start > HANG_S:
                    raise AssertionError(f"{argv[0]} hung; see {log}")
                time.sleep(0.002)
        finally:
            if proc.poll() is None:  # the test failed: leave nothing running
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    return False


def _kill_and_resume(argv: list[str], progress: Callable[[], int], targets: list[int], log: Path) -> list[int]:
    """Run ``argv``; kill it when ``progress()`` reaches each target in turn, resume, until it completes.

    Returns:
        ``progress()`` at each kill (one entry per kill).
    """
    at: list[int] = []
    resume: list[str] = []
    while True:
        target = max(targets[len(at)], progress() + 1) if len(at) < len(targets) else None
        killed = _run([*argv, *resume], log, None if target is None else (lambda t=target: progress() >= t))
        if not killed:
            return at
        at.append(progress())
        resume = ["--resume"]


# --- search ----------------------------------------------------------------------------------------


def _search_progress(out: Path) -> int:
    """What a search has written: 1 once ``search.json`` exists, the journal's complete lines, 1 once
    ``trials.csv`` exists (the result files are being written)."""
    journal = out / "journal.jsonl"
    lines = journal.read_bytes().count(b"\n") if journal.is_file() else 0
    return int((out / "search.json").is_file()) + lines + int((out / "trials.csv").is_file())


def _search_outputs(out: Path) -> dict:
    records = [_strip(json.loads(line)) for line in (out / "journal.jsonl").read_text().splitlines()]
    trials = pd.read_csv(out / "trials.csv", dtype={"config": str, "hash": str, "strategy": str}).drop(columns="seconds")
    return {
        "journal": records,
        "trials": trials.to_dict("records"),
        "best": _strip(json.loads((out / "best.json").read_text())),
        "validation": _tensors(out / "validation.safetensors"),
    }


@pytest.fixture(scope="module")
def search_reference(artefacts, tmp_path_factory) -> tuple[list[str], dict]:
    """The search's arguments and the outputs of an uninterrupted run of it."""
    inputs = ["--teacher", str(artefacts.teacher), "--surrogates", str(artefacts.library), "--space", str(artefacts.space)]
    out = tmp_path_factory.mktemp("search-reference") / "s"
    assert main(["search", *inputs, *SEARCH, "--out", str(out)]) == 0
    return inputs, _search_outputs(out)


def test_search_killed_at_random_points_then_resumed_equals_an_uninterrupted_run(search_reference, tmp_path,
                                                                                  record_property):
    inputs, reference = search_reference
    total = 1 + len(reference["journal"]) + 1  # search.json, every journal line, trials.csv
    rng = random.Random(14)
    # one kill while the search sets up (search.json written, no journal yet), three in the journal,
    # and one while it writes its result files (best effort: it may finish first)
    targets = [1, *sorted(rng.sample(range(3, total - 1), 3)), total]
    out = tmp_path / "s"
    at = _kill_and_resume(["search", *inputs, *SEARCH, "--out", str(out)], lambda: _search_progress(out), targets,
                          tmp_path / "log.txt")
    record_property("kills", at)
    print(f"search: {len(at)} kills, at progress {at} of {total}")
    assert len(at) >= len(targets) - 1, f"the run completed after {len(at)} kills at {at}; targets {targets}"
    got = _search_outputs(out)
    assert got["journal"] == reference["journal"]
    assert got["trials"] == reference["trials"]
    assert got["best"] == reference["best"]
    assert got["validation"] == reference["validation"]


# --- distill ---------------------------------------------------------------------------------------


def _stray(path: Path) -> bool:
    """An atomic write's temporary file, left by a kill inside the write (documented in ``tocsr_nas._io``)."""
    return path.name.startswith(".") and ".tmp-" in path.name


def _sidecars(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/*.json") if p.parent.name != "features")


def _library(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["pairs"] = sorted(manifest["pairs"], key=lambda r: (r["block"], r["candidate"]))
    return {
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not _stray(p)),
        "weights": {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*.safetensors"))},
        "sidecars": {str(p.relative_to(out)): _strip(json.loads(p.read_text())) for p in _sidecars(out)},
        "manifest": _strip(manifest),
    }


@pytest.fixture(scope="module")
def distill_reference(artefacts, tmp_path_factory) -> tuple[list[str], dict]:
    """The distill's arguments and the library of an uninterrupted ``--workers 1`` run."""
    inputs = ["--teacher", str(artefacts.teacher), "--space", str(artefacts.space)]
    out = tmp_path_factory.mktemp("distill-reference") / "lib"
    assert main(["distill", *inputs, *DISTILL, "--workers", "1", "--out", str(out)]) == 0
    return inputs, _library(out)


@pytest.mark.parametrize("workers", [1, 2])
def test_distill_killed_at_random_points_then_resumed_equals_an_uninterrupted_run(distill_reference, workers, tmp_path,
                                                                                   record_property):
    inputs, reference = distill_reference
    total = len(reference["sidecars"])
    rng = random.Random(100 + workers)
    # three kills among the pairs, and (one configuration is enough) one after the last pair (best
    # effort: it may finish first)
    targets = [*sorted(rng.sample(range(1, total), 3)), *([total] if workers == 1 else [])]
    out = tmp_path / "lib"
    argv = ["distill", *inputs, *DISTILL, "--workers", str(workers), "--out", str(out)]
    at = _kill_and_resume(argv, lambda: len(_sidecars(out)), targets, tmp_path / "log.txt")
    stray = [p.name for p in out.rglob("*") if _stray(p)]
    record_property("kills", at)
    record_property("stray temporary files", stray)
    print(f"distill --workers {workers}: {len(at)} kills, at {at} of {total} pairs; stray temporary files: {stray}")
    assert len(at) >= 3, f"the run completed after {len(at)} kills at {at}; targets {targets}"
    got = _library(out)
    assert got["files"] == reference["files"]
    assert got["weights"] == reference["weights"]  # bitwise: each pair's seed depends only on the pair
    assert got["sidecars"] == reference["sidecars"]
    assert got["manifest"] == reference["manifest"]


def test_distill_killed_during_the_feature_capture_resumes(distill_reference, tmp_path):
    """A kill before the first pair (features being captured, no manifest yet) still leaves a resumable folder."""
    inputs, reference = distill_reference
    out = tmp_path / "lib"
    argv = ["distill", *inputs, *DISTILL, "--workers", "1", "--out", str(out)]
    assert _run(argv, tmp_path / "log.txt", lambda: (out / "features").is_dir())
    assert not (out / "manifest.json").exists()  # the kill landed in the capture, before any pair
    assert _run([*argv, "--resume"], tmp_path / "log.txt", None) is False
    assert _library(out)["weights"] == reference["weights"]


# --- a damaged journal on --resume: one line naming the file and the line ---------------------------


def _damage_journal(line: bytes, after: int):
    """``setup``: copy the finished search to ``{tmp}/s`` and put ``line`` after its line ``after``."""

    def setup(tmp: Path, artefacts) -> None:
        out = artefacts.copy("search", tmp / "s")
        lines = (out / "journal.jsonl").read_bytes().splitlines(keepends=True)
        (out / "journal.jsonl").write_bytes(b"".join(lines[:after]) + line + b"\n" + b"".join(lines[after:]))

    return setup


RESUME = ["search", "--teacher", "{teacher}", "--surrogates", "{library}", "--space", "{space}", "--epsilon", "0.05,0.5",
          "--strategy", "random", "--budget", "4", "--out", "{tmp}/s", "--resume", *FAST_SEARCH]
CASES = [
    Case("search", "resume-journal-garbage-line", RESUME, r"journal\.jsonl is corrupt at line 3",
         setup=_damage_journal(b"\x00\x00garbage", 2), unchanged=["{tmp}/s"]),
    Case("search", "resume-journal-record-without-field", RESUME, r"journal\.jsonl is corrupt at line 4: .*'trial'",
         setup=_damage_journal(b'{"type": "finished"}', 3), unchanged=["{tmp}/s"]),
    Case("search", "resume-journal-trial-finished-twice", RESUME, r"journal\.jsonl is corrupt at line 5: trial 0 finished twice",
         setup=_damage_journal(
             b'{"type":"finished","trial":0,"quality":0.0,"gmacs":1.0,"params":1.0,"seconds":0.0,"feasible":{},'
             b'"elapsed":0.0}', 4),
         unchanged=["{tmp}/s"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)
