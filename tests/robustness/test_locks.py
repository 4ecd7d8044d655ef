"""One writer per output folder (``tocsr_nas.locks``): a second writer gets one line and exit 2.

The table holds each command's out folder locked by "another process" (an open file description of
this test holding the ``flock``, which the command's own open cannot share) and checks the one line,
which names the folder and the holder, and that nothing was touched. The tests below it run real
processes: a ``search --resume`` started while a search runs, a lock file left by a killed
process, and ``kill -9`` of ``distill --workers 2``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustness.catalogue import Case, check, params
from tocsr_nas.cli import main
from tocsr_nas.executors import WORKER_NAME
from tocsr_nas.locks import FolderBusyError, folder_lock, lock_file, lock_holder

#: the holder a held lock file names in the table's cases
HOLDER = {"pid": 424242, "host": "elsewhere", "command": "search", "since": "2026-01-01T00:00:00"}

_held_fds: list[int] = []


@pytest.fixture(autouse=True)
def _release_held():
    """Let go of every lock the test took with :func:`_hold` (even when the test failed)."""
    yield
    while _held_fds:
        os.close(_held_fds.pop())


def _hold(folder: Path) -> None:
    """Hold ``folder``'s lock on a file description of our own, as another process would."""
    path = lock_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps(HOLDER).encode())
    _held_fds.append(fd)


def _locked(name: str, artefact: str | None = None):
    """A ``setup``: copy ``artefact`` to ``{tmp}/name`` (if given) and hold the lock of ``{tmp}/name``."""

    def setup(tmp: Path, artefacts) -> None:
        if artefact is not None:
            artefacts.copy(artefact, tmp / name)
        _hold(tmp / name)

    return setup


BUSY = r"{folder} is being written by pid 424242 on elsewhere \(tocsr-nas search, since 2026-01-01T00:00:00\)"


def _busy(folder: str) -> str:
    return BUSY.format(folder=folder)


FAST_SEARCH = ["--val-samples", "4", "--threads", "1", "--no-progress"]
SEARCH = ["search", "--teacher", "{teacher}", "--surrogates", "{library}", "--space", "{space}", "--epsilon", "0.05,0.5",
          "--strategy", "random", "--budget", "6", *FAST_SEARCH]
DISTILL = ["distill", "--teacher", "{teacher}", "--space", "{space}", "--steps", "3", "--samples", "8",
           "--val-samples", "4", "--batch-size", "4", "--threads", "1", "--no-progress"]

CASES = [
    Case("search", "resume-while-running", [*SEARCH, "--out", "{tmp}/s", "--resume"], _busy("/s"),
         setup=_locked("s", "search"), unchanged=["{tmp}/s"]),
    Case("search", "fresh-while-running", [*SEARCH, "--out", "{tmp}/s"], _busy("/s"),
         setup=_locked("s"), absent=["{tmp}/s"]),
    Case("distill", "resume-while-running", [*DISTILL, "--out", "{tmp}/lib", "--resume"], _busy("/lib"),
         setup=_locked("lib", "library"), unchanged=["{tmp}/lib"]),
    Case("export", "overwrite-while-running", ["export", "--search", "{search}", "--out", "{tmp}/c", "--overwrite"],
         _busy("/c"), setup=_locked("c", "compact"), unchanged=["{tmp}/c", "{search}"]),
    Case("sr train", "resume-while-running",
         ["sr", "train", "--backbone", "{sr_teacher}", "--out", "{tmp}/sr", "--resume", "--steps", "2", "--threads", "1",
          "--no-progress"], _busy("/sr"), setup=_locked("sr", "sr"), unchanged=["{tmp}/sr"]),
    Case("sr distill", "resume-while-running",
         ["sr", "distill", "--teacher", "{sr}", "--out", "{tmp}/o", "--resume", "--steps", "2", "--threads", "1",
          "--no-progress"], _busy("/o"), setup=_locked("o", "onestep"), unchanged=["{tmp}/o", "{sr}"]),
    Case("teacher train", "while-running",
         ["teacher", "train", "--out", "{tmp}/t", "--steps", "1", "--vae-steps", "1", "--threads", "1", "--no-progress"],
         _busy("/t"), setup=_locked("t"), absent=["{tmp}/t"]),
    Case("run", "while-running", ["run", "--out", "{tmp}/r", "--quick", "--threads", "1"], _busy("/r"),
         setup=_locked("r"), absent=["{tmp}/r"]),
    Case("upscale", "while-running", ["upscale", "--model", "{sr}", "{image}", "--out", "{tmp}/u", "--threads", "1"],
         _busy("/u"), setup=_locked("u"), absent=["{tmp}/u"]),
    Case("evaluate", "while-running",
         ["evaluate", "--model", "{sr}", "--out", "{tmp}/e", "--max-side", "32", "--threads", "1"], _busy("/e"),
         setup=_locked("e"), absent=["{tmp}/e"]),
    # a lock file left behind by a dead holder is no lock: the command takes it over and removes it
    Case("export", "stale-lock-file", ["export", "--search", "{search}", "--out", "{tmp}/c"], "", code=0,
         setup=lambda tmp, a: lock_file(tmp / "c").write_text(json.dumps({**HOLDER, "pid": 999999, "host": socket.gethostname()})) and None,
         absent=["{tmp}/.c.tocsr-nas.lock"], after=lambda tmp, a, n: _exported(tmp / "c")),
]


def _exported(folder: Path) -> None:
    assert (folder / "compact.json").is_file(), f"nothing exported to {folder}"


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)


# --- the lock itself ----------------------------------------------------------------------------


def test_lock_file_lives_next_to_the_folder_and_goes_with_its_holder(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with folder_lock(out, "export") as path:
        assert path == tmp_path / "a" / "b" / ".out.tocsr-nas.lock"
        holder = lock_holder(out)
        assert (holder["pid"], holder["command"]) == (os.getpid(), "export")
        assert not out.exists()
    assert not path.exists()
    assert not (tmp_path / "a").exists(), "folders made for the lock file are removed when left empty"


def test_locks_nest_and_reenter_without_deadlock(tmp_path):
    run = tmp_path / "run"
    with folder_lock(run, "run"):
        with folder_lock(run / "teacher", "teacher train"), folder_lock(run / "surrogates", "distill"):
            with folder_lock(tmp_path / "." / "run", "search"):  # the same folder, spelled otherwise
                assert lock_holder(run)["command"] == "run"
        assert lock_holder(run / "teacher") is None
        assert lock_holder(run)["command"] == "run"
    assert lock_holder(run) is None


def test_the_python_api_is_locked_too(artefacts, tmp_path):
    from tocsr_nas.stages.export import export_search

    _hold(tmp_path / "c")
    with pytest.raises(FolderBusyError, match="pid 424242 on elsewhere"):
        export_search(artefacts.search, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tocsr_nas.cli", *argv]


def _wait_for(condition, what: str, proc: subprocess.Popen | None = None, limit: float = 300.0) -> None:
    """Poll ``condition`` until true; fail (with the process's output) if ``proc`` ends first or after ``limit``."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_stale_lock_of_a_killed_process_does_not_block(artefacts, tmp_path, caplog):
    out = tmp_path / "c"
    code = (
        "import os, signal, sys\n"
        "from tocsr_nas.locks import folder_lock\n"
        "held = folder_lock(sys.argv[1], 'export')\n"
        "held.__enter__()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    dead = subprocess.Popen([sys.executable, "-c", code, str(out)], stderr=subprocess.PIPE, text=True)
    _, stderr = dead.communicate(timeout=120)
    assert dead.returncode == -signal.SIGKILL, stderr
    assert lock_holder(out)["pid"] == dead.pid  # the file outlives its holder
    with caplog.at_level(logging.INFO, logger="tocsr_nas.locks"):
        assert main(["export", "--search", str(artefacts.search), "--out", str(out)]) == 0
    assert f"taking over a stale lock of pid {dead.pid}" in caplog.text
    _exported(out)
    assert not lock_file(out).exists()


@contextlib.contextmanager
def _paused_holder(argv: list[str], folder: Path, what: str):
    """Run the CLI on ``argv`` in a subprocess, wait until it holds ``folder``'s lock and stop it there
    (SIGSTOP: it keeps the lock); yield it; then let it go on and wait for it to finish (its stderr is
    left in ``.stderr_text``). It never outlives the test."""
    proc = subprocess.Popen(_cli(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (lock_holder(folder) or {}).get("pid") == proc.pid, f"the first {what} holds its lock", proc)
        proc.send_signal(signal.SIGSTOP)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGCONT)
        _, proc.stderr_text = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_resume_while_a_search_runs_is_refused_and_the_first_finishes_intact(artefacts, tmp_path, capsys):
    out = tmp_path / "s"
    argv = [a.format_map(artefacts.names()) for a in [*SEARCH, "--out", str(out)]]
    with _paused_holder(argv, out, "search") as first:
        assert main([*argv, "--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{out} is being written by pid {first.pid} on " in err and "tocsr-nas search" in err, err
    assert first.returncode == 0, first.stderr_text
    journal = (out / "journal.jsonl").read_text().splitlines()
    assert all(json.loads(line) is not None for line in journal)
    trials = len((out / "trials.csv").read_text().splitlines())
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    assert len((out / "trials.csv").read_text().splitlines()) == trials  # the budget was spent: nothing to add
    assert not lock_file(out).exists()


def test_a_second_distill_beside_a_running_one_is_refused_and_the_library_completes(artefacts, tmp_path, capsys):
    lib = tmp_path / "lib"
    argv = [*[a.format_map(artefacts.names()) for a in DISTILL], "--out", str(lib)]
    with _paused_holder(argv, lib, "distill") as first:
        for extra in (["--resume"], []):  # neither a resume nor a fresh start may write beside it
            assert main([*argv, *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"{lib} is being written by pid {first.pid} on " in err, err
    assert first.returncode == 0, first.stderr_text
    manifest = (lib / "manifest.json").read_bytes()
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err  # complete: nothing to retrain
    assert json.loads((lib / "manifest.json").read_bytes())["pairs"] == json.loads(manifest)["pairs"]


# --- distill workers die with their parent ------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str]]:
    """``pid -> (parent pid, state)`` of every process (Linux ``/proc``)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(root: int) -> set[int]:
    table = _process_table()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def _pair_files(library: Path) -> dict[str, bytes]:
    return {str(p.relative_to(library)): p.read_bytes() for p in library.rglob("*")
            if p.is_file() and "features" not in p.relative_to(library).parts and p.suffix in (".safetensors", ".json")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_distill_leaves_no_worker_and_no_later_pair(artefacts, tmp_path):
    lib = tmp_path / "lib"
    argv = [a.format_map(artefacts.names()) for a in DISTILL]
    argv[argv.index("--steps") + 1] = "1000000"  # jobs that outlive the test unless killed
    parent = subprocess.Popen(_cli(*argv, "--out", str(lib), "--workers", "2"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    family: set[int] = set()
    try:
        def workers() -> set[int]:  # named once initialised; their jobs are queued already
            return {pid for pid in _alive(_descendants(parent.pid)) if _comm(pid) == WORKER_NAME}

        _wait_for(lambda: len(workers()) >= 2, "two distill workers run", parent)
        time.sleep(1.0)  # let them unpack their jobs
        family = _descendants(parent.pid)
        parent.kill()  # kill -9
        parent.wait()
        _wait_for(lambda: not _alive(family), "the workers die with their parent", limit=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in _alive(family | _descendants(parent.pid)):  # survivors of a failed test
            os.kill(pid, signal.SIGKILL)
    assert not _alive(family)
    written = _pair_files(lib)
    time.sleep(1.0)  # a surviving worker would finish its pair now
    assert _pair_files(lib) == written


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_a_pool_worker_writes_nothing_the_parent_writes_the_pair(tmp_path):
    import torch
    from diffusers.models.downsampling import Downsample2D
    from safetensors.torch import load

    from tocsr_nas.searchspace.candidates import Candidate
    from tocsr_nas.surrogates.capture import capture_block_io
    from tocsr_nas.surrogates.distill import PairJob, TrainSettings, _pool_job, _write_pool_result
    from tocsr_nas.surrogates.features import FeatureCache
    from tocsr_nas._io import load_safetensors
    from tocsr_nas.surrogates.library import pair_files

    teacher = Downsample2D(4, use_conv=True, out_channels=8)
    cache = FeatureCache(tmp_path / "features")
    for split in ("train", "val"):
        cache.write("d", split, [capture_block_io(teacher, [""], (torch.randn(4, 4, 6, 6),))[""]])
    lib = tmp_path / "lib"
    job = PairJob("d", Candidate("skip"), teacher, str(cache.root), str(lib), TrainSettings(steps=2, batch_size=2))
    record, weights = _pool_job(job)  # what a worker does
    assert not lib.exists(), "a worker wrote into the library"
    written = _write_pool_result(str(lib), (record, weights))  # what the parent does
    weights_file, sidecar = pair_files(lib, "d", "skip")
    assert written["file"] == weights_file.relative_to(lib).as_posix() and sidecar.is_file()
    saved, sent = load_safetensors(weights_file), load(weights)
    assert saved.keys() == sent.keys() and all(torch.equal(saved[k], sent[k]) for k in sent)


def test_a_lock_file_of_another_host_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "out"
    lock_file(out).write_text(json.dumps(HOLDER))  # not held: flock does not see it on this host
    with caplog.at_level(logging.INFO, logger="tocsr_nas.locks"), folder_lock(out, "search"):
        assert lock_holder(out)["pid"] == os.getpid()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "pid 424242 on elsewhere" in warned[0].getMessage()
    assert "another host" in warned[0].getMessage()


def test_a_file_in_the_way_of_the_lock_file_leaves_the_error_to_the_command(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with caplog.at_level(logging.DEBUG, logger="tocsr_nas.locks"), folder_lock(blocker / "sub" / "out", "search"):
        pass
    assert "cannot create its lock file" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert blocker.read_text() == "in the way"
