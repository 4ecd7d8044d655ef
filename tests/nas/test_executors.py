"""The executors: local (in-process, a process pool) and Ray (tasks, evaluator actors) on a real local cluster.

The Ray tests share one 2-CPU cluster (the ``ray_cluster`` session fixture) and are marked ``ray``.
A worker is killed mid-job with ``SIGKILL`` to its process id (read from a file the job writes), as
an OOM kill or a lost node would; the job is retried and the run completes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tocsr_nas.errors import UserInputError
from tocsr_nas.executors import LocalExecutor, make_executor
from tocsr_nas.searchspace import SearchSpace

#: a guard against a stuck test, not a timing assert
HANG_S = 120


def _square(x: int) -> int:
    return x * x


def _sleep_once(item: tuple[str, int]) -> tuple[int, int]:
    """A job that writes its worker's pid to ``{folder}/{n}.pid`` and, the first time only, sleeps long
    (so it is still running when the test kills its worker); returns ``(n, pid)``."""
    folder, n = item
    pid_file = Path(folder) / f"{n}.pid"
    first = not pid_file.exists()
    pid_file.write_text(str(os.getpid()))
    if first and n == 0:
        time.sleep(HANG_S)
    return n, os.getpid()


class _PidQuality:
    """An evaluator whose first evaluation of ``"slow"`` sleeps (the test kills its actor then)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def __call__(self, item: str) -> float:
        marker = self.folder / f"{item}.pid"
        first = not marker.exists()
        marker.write_text(str(os.getpid()))
        if first and item == "slow":
            time.sleep(HANG_S)
        return float(len(item))


def _pid_quality(folder: str) -> _PidQuality:
    return _PidQuality(folder)


def _kill_when_written(pid_file: Path, killed: list[int]) -> threading.Thread:
    """A thread that SIGKILLs the process whose id appears in ``pid_file`` (once) and appends it to ``killed``."""

    def run() -> None:
        deadline = time.monotonic() + HANG_S
        while time.monotonic() < deadline:
            text = pid_file.read_text() if pid_file.is_file() else ""
            if text:
                time.sleep(0.5)  # the job is asleep by now
                os.kill(int(text), signal.SIGKILL)
                killed.append(int(text))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_local_pool_runs_every_job_once():
    got = dict(LocalExecutor(workers=2).map_unordered(_square, [1, 2, 3, 4]))
    assert got == {0: 1, 1: 4, 2: 9, 3: 16}


def test_ray_without_ray_installed_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra sees
    with pytest.raises(UserInputError, match=r"pip install -e '\.\[ray\]'"):
        make_executor("ray")


def test_a_ray_address_without_ray_is_refused():
    with pytest.raises(UserInputError, match="--ray-address needs --executor ray"):
        make_executor("local", address="127.0.0.1:6379")


@pytest.mark.ray
def test_ray_task_whose_worker_is_killed_is_retried(ray_cluster, tmp_path):
    killed: list[int] = []
    killer = _kill_when_written(tmp_path / "0.pid", killed)
    with make_executor("ray", workers=2) as ex:
        got = dict(ex.map_unordered(_sleep_once, [(str(tmp_path), n) for n in range(3)]))
    killer.join(timeout=1)
    assert len(killed) == 1, "the sleeping job's worker was never killed"
    assert {i: n for i, (n, _) in got.items()} == {0: 0, 1: 1, 2: 2}
    assert got[0][1] != killed[0]  # job 0 finished on another worker: its first one is dead


@pytest.mark.ray
def test_ray_evaluator_whose_actor_is_killed_is_restarted_and_the_evaluation_retried(ray_cluster, tmp_path):
    from functools import partial

    killed: list[int] = []
    killer = _kill_when_written(tmp_path / "slow.pid", killed)
    with make_executor("ray", workers=2) as ex:
        pool = ex.evaluator_pool(partial(_pid_quality, str(tmp_path)), 2)
        try:
            got = {i: v for i, v, _ in pool.map_unordered(["slow", "ab", "abc"])}
        finally:
            pool.close()
    killer.join(timeout=1)
    assert len(killed) == 1, "the slow evaluation's actor was never killed"
    assert got == {0: 4.0, 1: 2.0, 2: 3.0}


def test_ask_with_pending_configurations_never_proposes_them():
    from tocsr_nas.strategies import Problem, make_strategy

    space = SearchSpace.from_choices({f"b{i}": ["t", "half", "skip"] for i in range(3)})
    price = {"t": 4.0, "half": 2.0, "skip": 0.0}
    problem = Problem(space, cost=lambda c: sum(price[v] for v in c.values()), epsilons=(0.03,))
    elsewhere = [space.validate({"b0": "half", "b1": "t", "b2": "t"}), space.validate({"b0": "t", "b1": "skip", "b2": "t"})]
    for name in ("random", "ecbo"):
        s = make_strategy(name, problem, seed=0)
        batch = s.ask(4, pending=elsewhere)
        assert len(batch) == len(set(batch)) == 4
        assert not set(batch) & set(elsewhere)
        assert set(elsewhere) | set(batch) <= set(s.pending)


def test_the_pipeline_passes_the_executor_on_and_resumes_under_another(tmp_path):
    from tocsr_nas.errors import TocsrError
    from tocsr_nas.stages.run import STATE_FILE, PipelineSettings, run_pipeline, stages

    by_name = {s.name: s for s in stages(PipelineSettings(executor="ray", ray_address="10.0.0.1:6379", search_batch_size=4))}
    for name in ("surrogates", "search"):
        argv = by_name[name].argv(Path("o"), False)
        assert argv[argv.index("--executor") + 1] == "ray" and argv[argv.index("--ray-address") + 1] == "10.0.0.1:6379"
    search = by_name["search"].argv(Path("o"), False)
    assert search[search.index("--batch-size") + 1] == "4"
    default = {s.name: s for s in stages(PipelineSettings())}
    assert "--executor" not in default["surrogates"].argv(Path("o"), False)  # the command lines stay as they were

    # a run recorded before these settings existed, with the local executor
    old = {k: v for k, v in PipelineSettings().__dict__.items() if k not in ("executor", "ray_address", "search_batch_size")}
    (tmp_path / STATE_FILE).write_text(json.dumps({"settings": {**old, "epsilons": list(old["epsilons"])}, "stages": {}}))
    run_pipeline(tmp_path, PipelineSettings(executor="ray"), only=[])  # where it runs is no part of its identity
    with pytest.raises(TocsrError, match="other settings"):
        run_pipeline(tmp_path, PipelineSettings(search_batch_size=4), only=[])
