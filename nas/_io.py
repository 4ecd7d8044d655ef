"""Atomic writes: a crash leaves either the old file or the new one, never half of one.

Every writer puts its bytes into a temporary file *in the same directory* as the target (so the
final rename never crosses a file system), flushes and ``fsync``s it, then ``os.replace``s it over
the target. ``os.replace`` is atomic on POSIX and Windows. Readers therefore never see a torn
file, and an interrupted run leaves at worst a stray ``.<name>.tmp-*`` file, which is ignored.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_json(d / "state.json", {"step": 3})
    >>> read_json(d / "state.json")
    {'step': 3}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "read_json",
    "save_safetensors",
    "load_safetensors",
    "save_torch_state",
    "load_torch_state",
    "replace_dir",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    Write whatever you like to the yielded path (any library that takes a file name works). If
    the ``with`` body raises, the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the final file.

    Yields:
        A temporary file path in the same directory.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_bytes(b"abc")
        >>> target.read_bytes()
        b'abc'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # flush the bytes to disk before the rename makes them visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (sorted keys, trailing newline) to ``path`` atomically.

    Args:
        path: the target file.
        obj: anything ``json.dumps`` accepts.
        indent: JSON indentation; ``None`` for one line.
    """
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Save a flat ``name -> tensor`` mapping as safetensors, atomically.

    Tensors are made contiguous and moved to the CPU; shared storage is cloned (safetensors
    refuses aliased tensors).
    """
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=dict(metadata) if metadata else None)


def load_safetensors(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file into a ``name -> tensor`` dict."""
    return load_file(str(path), device=str(device))


def save_torch_state(path: str | os.PathLike[str], state: Any) -> None:
    """Save a nested state (e.g. an optimizer's ``state_dict()``) with ``torch.save``, atomically.

    Only plain containers, numbers, strings and tensors belong in ``state``: it is read back with
    ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
    """
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_torch_state(path: str | os.PathLike[str]) -> Any:
    """Load what :func:`save_torch_state` wrote, with ``weights_only=True`` (no arbitrary unpickling)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move the finished directory ``src`` to ``dst``, replacing any directory already there.

    ``os.replace`` cannot replace a non-empty directory, so an existing ``dst`` is first renamed
    aside (``.<name>.old-*``), ``src`` renamed into place and only then the old copy deleted. A
    crash between the two renames leaves ``dst`` missing and the old copy next to it, never a
    mixture of old and new files. ``src`` and ``dst`` must be on the same file system.
    """
    src, dst = Path(src), Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
