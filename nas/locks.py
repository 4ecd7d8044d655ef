"""One writer per output folder: an advisory lock held for as long as a command writes a folder.

Every entry point that writes a folder (``search``, ``distill``, ``export``, ``sr train``,
``sr distill``, ``teacher train``, ``run``, ``upscale`` and ``evaluate``'s ``--out``) holds
:func:`folder_lock` on it, through the :func:`locks_folder` decorator on its library function, so
the Python API is protected exactly like the command line; so do the API's own folder writers
(``export_compact``, ``Teacher.save``, ``SRModel.save``). A second writer of the same folder -
another process, or a ``--resume`` started while the first run is going - fails at once with
:class:`FolderBusyError`, one line naming the folder and the holder (pid, host, command, start
time), which the CLI prints with exit code 2.

How it works
------------

The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on a file *next to* the folder,
``PARENT/.NAME.tocsr-nas.lock``: it can be taken before the folder exists, it never appears among
the results, and it names the folder by its resolved path (``runs/./x`` and ``runs/x`` share
one lock). The holder writes its pid, host, command, argv and start time into the file as JSON and
deletes the file when it lets go. The kernel releases a ``flock`` when its holder dies, however it
dies, so a lock file left by a killed run (``kill -9``, power loss) is stale by construction: the
next writer acquires the lock, finds another pid in the file and takes over, logging ``taking
over a stale lock of pid N`` at INFO level. A stale file never blocks anyone.

Locks nest: ``run`` holds ``X`` while its stages lock ``X/teacher``, ``X/surrogates`` ... (other
files, so no deadlock), and a function that holds a folder may call another entry point that locks
the same folder (``run_search`` calls ``search``): within one process the lock is re-entrant.
Nothing ever waits for a lock, so nothing can deadlock.

Limits: ``flock`` is advisory (only tocsr-nas honours it) and Linux/macOS only (elsewhere the lock
is skipped with a warning). On some network file systems (older NFS, some SMB and FUSE mounts)
``flock`` is local to each host: two hosts can then both hold it, so do not write one folder from
two machines. Where the lock file cannot be created (a read-only parent folder), the command runs
unlocked and logs a warning (quietly where a file is in the way: the command then says so itself).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tocsr_nas.searchspace.errors import TocsrError  # a leaf module: surrogates may import it

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderBusyError", "folder_lock", "lock_file", "lock_holder", "locks_folder"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: the lock file's name: ``.NAME`` + this, in the folder's parent
SUFFIX = ".tocsr-nas.lock"

# lock file (resolved path) -> [open file descriptor, depth]; the locks this process holds
_held: dict[str, list[int]] = {}
_guard = threading.RLock()


class FolderBusyError(TocsrError):
    """Another process is writing the folder (it holds the folder's lock); the CLI prints it as one
    line with exit code 2, like every :class:`~tocsr_nas.errors.TocsrError`."""


def lock_file(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: ``PARENT/.NAME.tocsr-nas.lock`` next to it (resolved path).

    Example:
        >>> lock_file("/runs/search").as_posix()
        '/runs/.search.tocsr-nas.lock'
    """
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}{SUFFIX}"


def lock_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says about its holder (``pid``, ``host``, ``command``,
    ``argv``, ``since``), or ``None`` without a readable one. A leftover file of a dead holder
    reads the same: only :func:`folder_lock` can tell whether the lock is held."""
    try:
        data = json.loads(lock_file(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    command = f"tocsr-nas {holder['command']}, " if holder.get("command") else ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} ({command}since {holder.get('since', '?')})"


def _open_locked(path: Path, folder: Path) -> int:
    """Open and ``flock`` ``path``; the descriptor of the file that is at ``path`` now, locked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(
                f"{folder} is being written by {_describe(lock_holder(folder))}; wait for it to finish or choose "
                f"another folder (lock file {path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder deletes the file before it lets go: a lock on a deleted file is no lock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _claim(fd: int, path: Path, folder: Path, command: str | None) -> None:
    """Take over the file: report a stale holder, then write this process's name into it."""
    host = socket.gethostname()
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8") or "null")
        if isinstance(old, dict) and old.get("host") not in (None, host):
            log.warning(
                "%s: taking over the lock of %s: another host; if that run still goes, this file system does not "
                "share locks between hosts (some network file systems) - do not write one folder from two machines",
                folder, _describe(old),
            )  # fmt: skip
        elif isinstance(old, dict) and old.get("pid") != os.getpid():
            log.info("%s: taking over a stale lock of pid %s, which ended (%s)", folder, old.get("pid"), _describe(old))
    me = {
        "pid": os.getpid(),
        "host": host,
        "command": command,
        "argv": sys.argv,
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "folder": str(folder),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)


def _make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path`` (as many as it can); the ones it created, deepest first."""
    missing = []
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            break
        missing.append(parent)
    made = []
    for parent in reversed(missing):
        try:
            parent.mkdir()
        except FileExistsError:
            continue
        except OSError:  # no permission, a file in the way...: opening the lock file fails and says so
            break
        made.append(parent)
    return made[::-1]


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str | None = None) -> Iterator[Path]:
    """Hold the lock of ``folder`` (which need not exist) for the ``with`` body.

    Re-entrant within a process; released (and its file deleted) on exit, by the kernel if the
    process dies. Folders created above the folder to hold the lock file are removed again if the
    body left them empty.

    Args:
        folder: the output folder.
        command: what writes it (``"search"``, ``"sr train"``...), recorded for a second writer's error.

    Yields:
        The lock file.

    Raises:
        FolderBusyError: another process holds the lock.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "results"
        >>> with folder_lock(out, "search") as path:
        ...     lock_holder(out)["command"], path.name
        ('search', '.results.tocsr-nas.lock')
        >>> path.exists()
        False
    """
    path = lock_file(folder)
    folder = Path(folder).resolve()
    key = str(path)
    held, made = False, []
    with _guard:
        if key in _held:
            _held[key][1] += 1
            held = True
        elif fcntl is None:  # pragma: no cover - Windows
            log.warning("%s: folder locks need fcntl (POSIX); writing it unlocked", folder)
        else:
            made = _make_parents(path)
            try:
                fd = _open_locked(path, folder)
            except FolderBusyError:
                _remove_empty(made)
                raise
            except OSError as exc:  # a file in the way (the command reports that itself) or a read-only parent
                quiet = exc.errno in (errno.ENOENT, errno.ENOTDIR)
                log.log(logging.DEBUG if quiet else logging.WARNING, "%s: cannot create its lock file %s (%s); "
                        "writing it unlocked", folder, path, exc.strerror)  # fmt: skip
                _remove_empty(made)
                made = []
            else:
                try:
                    _claim(fd, path, folder, command)
                except BaseException:
                    _release(fd, path)
                    _remove_empty(made)
                    raise
                _held[key] = [fd, 1]
                held = True
    try:
        yield path
    finally:
        if held:
            with _guard:
                entry = _held[key]
                entry[1] -= 1
                if entry[1] == 0:
                    del _held[key]
                    _release(entry[0], path)
        _remove_empty(made)


def _release(fd: int, path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # first: whoever opened the old file meanwhile sees it is gone and retries
    os.close(fd)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def locks_folder(arg: str = "out", command: str | None = None) -> Callable[[F], F]:
    """Decorate a function that writes the folder given as its argument ``arg``: it runs holding
    :func:`folder_lock` on that folder (no lock when the argument is ``None``).

    Args:
        arg: the name of the folder parameter.
        command: the command it implements, for the holder's record.

    Returns:
        The decorator.

    Example:
        >>> @locks_folder("out", command="demo")
        ... def write(out):
        ...     return lock_holder(out)["command"]
        >>> import tempfile
        >>> write(tempfile.mkdtemp() + "/x")
        'demo'
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        if arg not in signature.parameters:
            raise TypeError(f"{fn.__qualname__} has no parameter {arg!r} to lock")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # let the function raise its own error
            bound.apply_defaults()
            folder = bound.arguments[arg]
            if folder is None:
                return fn(*args, **kwargs)
            with folder_lock(folder, command):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
