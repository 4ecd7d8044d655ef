"""Where independent jobs run: in this process, in a local process pool, or on a Ray cluster.

Two kinds of work are spread by an executor, and nothing else:

* **tasks** (:meth:`Executor.map_unordered`): ``fn(item)`` for each item, results handed back to
  the driver as they finish. Distillation runs one (block, candidate) pair per task
  (:func:`tocsr_nas.surrogates.distill.distill`).
* **evaluators** (:meth:`Executor.evaluator_pool`): long-lived workers that each build an
  expensive object once (the supernet and the quality function over the validation set) and then
  evaluate configurations; a search evaluates the ``--batch-size`` proposals of a round on them
  (:class:`tocsr_nas.search.loop.SearchLoop`).

In both cases the workers only compute: the driver (the process that called the executor) writes
every file (pair files, the library manifest, the search journal), so ``--resume`` works whichever
executor ran before, and a worker lost mid-job writes nothing.

``local``
    ``workers=1``: in this process, one job after the other (today's default, bit-for-bit).
    ``workers > 1``: a pool of spawned processes that die with this one (Linux
    ``PR_SET_PDEATHSIG``; each job first checks its parent), so after ``kill -9`` of the driver no
    worker runs on.
``ray``
    Ray tasks and actors (``pip install -e '.[ray]'``). ``address``: the cluster to join (``None``:
    the one in ``RAY_ADDRESS``, else a new local cluster with ``workers * threads`` CPUs, shut down
    again by :meth:`Executor.close`). A task asks for ``threads`` CPUs and ``num_gpus`` GPUs and is
    retried ``max_retries`` times when its worker dies; an evaluator actor is restarted (and its
    evaluation retried) the same way. Ray is imported on first use only.

Example:
    >>> with make_executor("local") as ex:
    ...     sorted(ex.map_unordered(abs, [-2, 3]))
    [(0, 2), (1, 3)]
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from tocsr_nas.errors import TocsrError, UserInputError

__all__ = [
    "EXECUTORS",
    "WORKER_NAME",
    "Executor",
    "EvaluatorPool",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "require_ray",
]

logger = logging.getLogger(__name__)

#: the executors by name (``--executor``)
EXECUTORS = ("local", "ray")
#: the process name of a local pool worker (``ps``, ``/proc/PID/comm``; at most 15 characters)
WORKER_NAME = "tocsr-nas-pair"
#: how often a Ray task or evaluation is retried after its worker died
MAX_RETRIES = 3


class EvaluatorPool(ABC):
    """Workers that each hold one evaluator (built once by a factory) and evaluate configurations."""

    @abstractmethod
    def map_unordered(self, items: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        """Evaluate every item; yield ``(index, value, seconds)`` as each evaluation finishes.

        ``seconds`` is the time the evaluation took on its worker.
        """

    def close(self) -> None:
        """Release the workers."""


class Executor(ABC):
    """Runs independent jobs for a driver that alone writes their results (see the module docstring)."""

    name: str = ""

    @abstractmethod
    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item)`` for every item; yield ``(index, result)`` as each job finishes.

        ``fn`` must be a module-level function (it travels to the workers by reference). An
        exception of a job propagates from the iterator; jobs not yet finished are cancelled.
        """

    @abstractmethod
    def evaluator_pool(self, factory: Callable[[], Callable[[Any], Any]], size: int) -> EvaluatorPool:
        """Up to ``size`` workers, each holding ``factory()`` (a callable ``evaluate(item) -> value``).

        ``factory`` runs once per worker (again after a worker is restarted).
        """

    def close(self) -> None:
        """Release what the executor started."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- local ---------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_parent_pid: int | None = None


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux), and name it
    :data:`WORKER_NAME`; exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(WORKER_NAME.encode()), 0, 0, 0)
    _check_parent(parent)


def _check_parent(parent: int) -> None:
    """Exit at once (no cleanup, no writes) unless ``parent`` is still this process's parent."""
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(threads: int, parent: int) -> None:
    global _parent_pid
    _parent_pid = parent
    _die_with_parent(parent)
    _set_threads(threads)
    logging.basicConfig(level=logging.WARNING)


def _in_pool_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    """What a local pool worker runs: check that its parent is still there, then the job."""
    if _parent_pid is not None:
        _check_parent(_parent_pid)
    return fn(item)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class _InProcessPool(EvaluatorPool):
    """One evaluator in this process; items are evaluated one after the other, in order."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]) -> None:
        self._factory = factory
        self._fn: Callable[[Any], Any] | None = None

    def map_unordered(self, items: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        if self._fn is None:
            self._fn = self._factory()
        for i, item in enumerate(items):
            start = time.perf_counter()
            value = self._fn(item)
            yield i, value, time.perf_counter() - start


class LocalExecutor(Executor):
    """This process (``workers=1``) or a pool of ``workers`` spawned processes that die with it.

    Args:
        workers: jobs at a time (``1``: in this process).
        threads: torch threads of each job (set in this process while it runs jobs, or per worker).
    """

    name = "local"

    def __init__(self, workers: int = 1, threads: int = 1) -> None:
        if workers < 1 or threads < 1:
            raise TocsrError(f"workers and threads must be >= 1, got workers={workers}, threads={threads}")
        self.workers = workers
        self.threads = threads

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            import torch

            old = torch.get_num_threads()
            _set_threads(self.threads)
            try:
                for i, item in enumerate(items):
                    yield i, fn(item)
            finally:
                torch.set_num_threads(old)
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(items)), mp_context=ctx, initializer=_init_worker,
            initargs=(self.threads, os.getpid()),
        ) as pool:
            index: dict[Future[Any], int] = {pool.submit(_in_pool_worker, fn, item): i for i, item in enumerate(items)}
            pending = set(index)
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in sorted(finished, key=index.__getitem__):
                        yield index[fut], fut.result()
            finally:
                for fut in pending:
                    fut.cancel()

    def evaluator_pool(self, factory: Callable[[], Callable[[Any], Any]], size: int) -> EvaluatorPool:
        """One evaluator in this process (``size`` is ignored: evaluations run one after the other)."""
        return _InProcessPool(factory)


# --- ray -----------------------------------------------------------------------------------------


def require_ray() -> Any:
    """Import Ray, or fail with one line that says how to install it.

    Raises:
        UserInputError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "--executor ray needs Ray, which is not installed: pip install -e '.[ray]' (ray==2.60.0), "
            "or use --executor local"
        ) from None
    return ray


def _ray_job(fn: Callable[[Any], Any], threads: int, item: Any) -> Any:
    """What a Ray task runs: the job with ``threads`` torch threads."""
    _set_threads(threads)
    return fn(item)


class _RayEvaluator:
    """A Ray actor holding one evaluator (``factory()`` runs in its constructor, again after a restart)."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]], threads: int) -> None:
        _set_threads(threads)
        logging.basicConfig(level=logging.WARNING)
        self._fn = factory()

    def evaluate(self, item: Any) -> tuple[Any, float]:
        start = time.perf_counter()
        value = self._fn(item)
        return value, time.perf_counter() - start

    def pid(self) -> int:
        return os.getpid()


class _RayPool(EvaluatorPool):
    """``size`` evaluator actors; each item goes to the next idle one."""

    def __init__(self, ray: Any, factory: Callable[[], Callable[[Any], Any]], size: int, threads: int,
                 num_gpus: float, max_retries: int) -> None:
        self._ray = ray
        cls = ray.remote(_RayEvaluator).options(
            num_cpus=threads, num_gpus=num_gpus, max_restarts=max_retries, max_task_retries=max_retries,
        )
        self.actors = [cls.remote(factory, threads) for _ in range(size)]

    def map_unordered(self, items: Sequence[Any]) -> Iterator[tuple[int, Any, float]]:
        ray = self._ray
        queue = list(enumerate(items))[::-1]
        idle = list(self.actors)
        running: dict[Any, tuple[int, Any]] = {}
        try:
            while queue or running:
                while queue and idle:
                    i, item = queue.pop()
                    actor = idle.pop(0)
                    running[actor.evaluate.remote(item)] = (i, actor)
                [ref], _ = ray.wait(list(running), num_returns=1)
                i, actor = running.pop(ref)
                idle.append(actor)
                value, seconds = ray.get(ref)
                yield i, value, seconds
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self.actors = []


class RayExecutor(Executor):
    """Ray tasks (one job each) and actors (evaluators) on a cluster.

    Args:
        address: the cluster to join (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``); ``None``:
            ``RAY_ADDRESS`` if set, else a new local cluster. When this process is already
            connected to a cluster (``ray.init`` was called), that one is used.
        workers: jobs in flight at most; a local cluster this executor starts gets
            ``workers * threads`` CPUs.
        threads: CPUs a job asks for (and its torch threads).
        num_gpus: GPUs (a fraction is fine) a job asks for; ``0`` on CPU. The device option sets
            it when the computing device is a GPU.
        max_retries: how often a job is retried after its worker died.

    Raises:
        UserInputError: Ray is not installed, or the cluster cannot be reached.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None, threads: int = 1,
                 num_gpus: float = 0.0, max_retries: int = MAX_RETRIES) -> None:
        ray = require_ray()
        if (workers is not None and workers < 1) or threads < 1 or not (num_gpus >= 0 and math.isfinite(num_gpus)):
            raise TocsrError(f"bad Ray resources: workers={workers}, threads={threads}, num_gpus={num_gpus}")
        self._ray = ray
        self.workers = workers
        self.threads = threads
        self.num_gpus = float(num_gpus)
        self.max_retries = max_retries
        self._started = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                       "log_to_driver": False}
            if address is None and workers is not None:
                options["num_cpus"] = workers * threads
            try:
                ray.init(address=address, **options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = address or "a local cluster"
                raise UserInputError(f"--executor ray: cannot start or join {where}: {str(exc).splitlines()[0]}") from None
            self._started = True
        logger.info("ray executor on %s", ray.get_runtime_context().gcs_address)

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        task = ray.remote(_ray_job).options(
            num_cpus=self.threads, num_gpus=self.num_gpus, max_retries=self.max_retries, retry_exceptions=False,
        )
        fn_ref = ray.put(fn)
        queue = list(enumerate(items))[::-1]
        cap = self.workers or len(queue)
        running: dict[Any, int] = {}
        try:
            while queue or running:
                while queue and len(running) < cap:
                    i, item = queue.pop()
                    running[task.remote(fn_ref, self.threads, item)] = i
                [ref], _ = ray.wait(list(running), num_returns=1)
                i = running.pop(ref)
                yield i, ray.get(ref)
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def evaluator_pool(self, factory: Callable[[], Callable[[Any], Any]], size: int) -> EvaluatorPool:
        """``size`` actors, fewer when the cluster has not the CPUs to place them all (an actor that
        is never placed would hold its evaluations forever)."""
        cpus = int(self._ray.cluster_resources().get("CPU", 1) // self.threads)
        size = max(1, min(size, self.workers or size, cpus))
        return _RayPool(self._ray, factory, size, self.threads, self.num_gpus, self.max_retries)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def make_executor(name: str = "local", *, address: str | None = None, workers: int | None = None,
                  threads: int | None = None, num_gpus: float = 0.0) -> Executor:
    """The executor ``name`` (``--executor``); see the module docstring.

    Args:
        name: ``"local"`` or ``"ray"``.
        address: ``--ray-address`` (Ray only; ``None``: ``RAY_ADDRESS`` or a new local cluster).
        workers: jobs at a time (``None``: 1 locally; as many as the cluster places with Ray).
        threads: torch threads (CPUs) per job (``None``: 1).
        num_gpus: GPUs per Ray job (the hook for ``--device``: a fraction on a GPU, 0 on CPU).

    Raises:
        UserInputError: an unknown name, ``address`` without Ray, or Ray not installed.
    """
    if name not in EXECUTORS:
        raise UserInputError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
    threads = threads or 1
    if name == "local":
        if address is not None:
            raise UserInputError("--ray-address needs --executor ray")
        return LocalExecutor(workers or 1, threads)
    return RayExecutor(address, workers=workers, threads=threads, num_gpus=num_gpus)
