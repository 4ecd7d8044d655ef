"""Atomic writes: a crash leaves either the old file or the new one, never half of one.

Every writer puts its bytes into a temporary file *in the same directory* as the target (so the
final rename never crosses a file system), flushes and ``fsync``s it, then ``os.replace``s it over
the target, and finally ``fsync``s the directory so that the rename itself survives a power
loss. ``os.replace`` is atomic on POSIX and Windows. Readers therefore never see a torn file, and
an interrupted run leaves at worst a stray ``.<name>.tmp-*`` file, which is ignored.

Folders are written the same way: fill a temporary folder next to the target
(:func:`atomic_dir`, or :func:`temporary_dir` for a staging area) and swap it in with
:func:`replace_dir`, which never deletes the old folder before the new one is in place.

Reading is checked in one place too: :func:`read_json`, :func:`load_safetensors` and
:func:`load_torch_state` turn a truncated or corrupt file into a
:class:`~tocsr_nas.errors.DamagedFileError` that names it (one line, no traceback). Manifests
(``teacher.json``, ``compact.json``, ``sr.json``, a library's pair records) record the size and
sha256 of every weights file (:func:`file_record`, :func:`weight_records`); loading checks them,
size first (:func:`verify_file`, :func:`verify_records`), and refuses a recorded path that leaves
its folder (:func:`inside`). An artefact written before checksums were recorded is only read.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_json(d / "state.json", {"step": 3})
    >>> read_json(d / "state.json")
    {'step': 3}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and safetensors load on first use: plain file writers stay torch-free
    import torch

__all__ = [
    "atomic_dir",
    "atomic_path",
    "atomic_create_bytes",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "check_out_path",
    "read_json",
    "file_record",
    "verify_file",
    "inside",
    "one_line",
    "verify_records",
    "weight_records",
    "save_safetensors",
    "load_safetensors",
    "save_torch_state",
    "load_torch_state",
    "fsync_dir",
    "replace_dir",
    "temporary_dir",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    Write whatever you like to the yielded path (any library that takes a file name works). If
    the ``with`` body raises, the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the final file.
        suffix: the temporary file's name ends with this (for writers that pick the format
            from the extension, e.g. ``".png"``).

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
    with _named(path.parent):
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # flush the bytes to disk before the rename makes them visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        if exc.filename not in (None, name, os.fspath(tmp)):
            raise
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None  # name the target, not the temporary file
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_create_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Create ``path`` holding ``data``, atomically and exclusively: never half written, never over
    an existing file.

    The bytes go to a temporary file that is then hard-linked to ``path`` (``os.link`` fails if
    ``path`` exists), so a crash leaves either no file or the whole of ``data`` - a file that is
    appended to afterwards (a journal) then always starts with a complete first record.

    Raises:
        FileExistsError: ``path`` exists (nothing is changed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _named(path.parent):
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, 0o666 & ~_umask())
        os.link(name, path)  # exclusive: FileExistsError if anything is there
    finally:
        os.unlink(name)
    fsync_dir(path.parent)


@contextlib.contextmanager
def _named(folder: Path) -> Iterator[None]:
    """An ``OSError`` while creating a temporary entry in ``folder`` names ``folder``, not the random
    temporary name (a read-only or full disk is then reported as the folder the user gave)."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.fspath(folder)) from None


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (a new file, a rename) durable.

    A no-op where directories cannot be opened or fsynced (Windows, some file systems).

    Args:
        path: the directory.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """Write ``obj`` as JSON (trailing newline) to ``path`` atomically.

    Args:
        path: the target file.
        obj: anything ``json.dumps`` accepts.
        indent: JSON indentation; ``None`` for one line.
        sort_keys: sort the keys of every object (the default) or keep their order.
        default: ``json.dumps``'s ``default``: turns values JSON does not know into ones it does.
    """
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n")


def _damaged(message: str) -> Exception:
    """A :class:`tocsr_nas.errors.DamagedFileError` (imported on use: this module stays a leaf)."""
    from tocsr_nas.errors import DamagedFileError

    return DamagedFileError(message)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file.

    Args:
        path: the file.

    Returns:
        The parsed value.

    Raises:
        FileNotFoundError: there is no such file (callers say what was expected there).
        DamagedFileError: the file is not valid UTF-8 JSON (truncated or corrupt).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(f"{path} is damaged (not valid JSON: {one_line(exc)}); restore or recreate it") from None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (library messages may span several), for one-line errors."""
    return " ".join(str(exc).split()) or type(exc).__name__


def file_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The size and sha256 of a file, as manifests record them: ``{"size": bytes, "sha256": hex}``.

    Args:
        path: the file.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"size": os.path.getsize(path), "sha256": h.hexdigest()}


def inside(root: str | os.PathLike[str], relative: str, manifest: str | os.PathLike[str] | None = None) -> Path:
    """``root / relative``, refusing a path that is absolute or leaves ``root`` (``../x``, links).

    Args:
        root: the folder a manifest describes.
        relative: a path the manifest records, relative to ``root``.
        manifest: the manifest file, named in the error (default: ``root``).

    Returns:
        The path inside ``root``.

    Raises:
        DamagedFileError: ``relative`` is absolute or resolves outside ``root``.
    """
    root = Path(root)
    rel = Path(str(relative))
    resolved_root = root.resolve()
    target = (root / rel).resolve()
    if not str(relative) or rel.is_absolute() or ".." in rel.parts or not target.is_relative_to(resolved_root):
        raise _damaged(f"{manifest or root} names {str(relative)!r}, which is not a file inside {root}; refusing it")
    return root / rel


def verify_file(
    path: str | os.PathLike[str], record: Mapping[str, Any] | None, *, hash: bool = True
) -> None:
    """Check a file against the ``{"size", "sha256"}`` its manifest records (the size first: cheap).

    A record without them (an artefact written before checksums were recorded) checks nothing.

    Args:
        path: the file.
        record: what :func:`file_record` returned when it was written, or ``None``.
        hash: also compare the sha256 (``False``: the size only).

    Raises:
        DamagedFileError: the file is missing, or its size or sha256 differs.
    """
    if not record or record.get("size") is None:
        return
    path = Path(path)
    if not path.is_file():
        raise _damaged(f"{path} is missing; its manifest records {record['size']} bytes")
    size = path.stat().st_size
    if not isinstance(record["size"], int) or isinstance(record["size"], bool):
        raise _damaged(f"the manifest of {path} is damaged: its recorded size {record['size']!r} is not a number")
    if size != record["size"]:
        raise _damaged(f"{path} is damaged: {size} bytes, its manifest records {record['size']}")
    if hash and record.get("sha256") and file_record(path)["sha256"] != record["sha256"]:
        raise _damaged(f"{path} is damaged: its sha256 differs from the one its manifest records")


def weight_records(directory: str | os.PathLike[str], names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256"}}`` of every ``*.safetensors`` file among ``directory``'s ``names``.

    The ``files`` entry of ``teacher.json``, ``compact.json`` and ``sr.json``; :func:`verify_records`
    checks it when the folder is loaded.

    Args:
        directory: the artefact folder.
        names: its weights files and the sub-folders holding weights (searched recursively).

    Returns:
        The records, by path relative to ``directory`` (POSIX separators).
    """
    directory = Path(directory)
    records = {}
    for name in names:
        path = directory / name
        found = [path] if path.is_file() else sorted(path.rglob("*.safetensors")) if path.is_dir() else []
        for file in found:
            records[file.relative_to(directory).as_posix()] = file_record(file)
    return records


def verify_records(directory: str | os.PathLike[str], records: Any, manifest: str | os.PathLike[str]) -> None:
    """Check the weights files a manifest's ``files`` entry records (size first, then sha256).

    Args:
        directory: the artefact folder.
        records: ``{relative path: {"size", "sha256"}}``, or ``None`` for an artefact written before
            checksums were recorded (nothing is checked).
        manifest: the manifest, named when ``records`` is malformed or points outside ``directory``.

    Raises:
        DamagedFileError: a path outside ``directory``, or a missing, resized or changed file.
    """
    if records is None:
        return
    if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
        raise _damaged(f"{manifest} is damaged: its 'files' entry is not a table of files")
    for rel, record in records.items():
        verify_file(inside(directory, rel, manifest), record)


def save_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Save a flat ``name -> tensor`` mapping as safetensors, atomically.

    Tensors are made contiguous and moved to the CPU; a tensor whose storage an earlier one
    already uses is cloned (safetensors refuses aliased tensors). Nothing else is copied.

    Args:
        path: the target file.
        tensors: the tensors to save.
        metadata: string key/values for the file's header.
    """
    from safetensors.torch import save_file

    flat: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in tensors.items():
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages:
            tensor = tensor.clone()
        elif storage:
            storages.add(storage)
        flat[key] = tensor
    from safetensors import SafetensorError

    with atomic_path(path) as tmp:
        try:
            save_file(flat, str(tmp), metadata=dict(metadata) if metadata else None)
        except SafetensorError as exc:  # not an OSError: a full disk comes back as "... (os error 28)"
            code = re.search(r"\(os error (\d+)\)", str(exc))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), os.fspath(path)) from None
        if metadata:
            _sort_safetensors_metadata(tmp)


def _sort_safetensors_metadata(path: Path) -> None:
    """Put the metadata of the safetensors file at ``path`` in key order, in place.

    safetensors writes its ``__metadata__`` map in a per-process hash order, so the same tensors
    and metadata saved by two processes differ in their bytes (and checksums). Sorting the keys
    keeps the header's length (the same JSON, reordered; the padding is spaces), so only the
    header is rewritten and every tensor offset stays valid.
    """
    with open(path, "r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > size:  # another escaping than safetensors': leave the file as written
            return
        fh.seek(8)
        fh.write(text + b" " * (size - len(text)))


def load_safetensors(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", *, metadata: bool = False
) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file into a ``name -> tensor`` dict.

    Args:
        path: the file.
        device: where to put the tensors.
        metadata: also return the header's string metadata.

    Returns:
        The tensors, or ``(tensors, metadata)`` with ``metadata=True``.

    Raises:
        FileNotFoundError: there is no such file.
        DamagedFileError: the file is truncated or not a safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _damaged(f"{path} is damaged (not a readable safetensors file: {one_line(exc)})") from None
    return (tensors, meta) if metadata else tensors


def save_torch_state(path: str | os.PathLike[str], state: Any) -> None:
    """Save a nested state (e.g. an optimizer's ``state_dict()``) with ``torch.save``, atomically.

    Only plain containers, numbers, strings and tensors belong in ``state``: it is read back with
    ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_torch_state(path: str | os.PathLike[str]) -> Any:
    """Load what :func:`save_torch_state` wrote, with ``weights_only=True`` (no arbitrary unpickling).

    Raises:
        FileNotFoundError: there is no such file.
        DamagedFileError: the file is truncated, corrupt or holds more than plain state.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as exc:
        raise _damaged(f"{path} is damaged (not a readable torch state: {one_line(exc)})") from None


@contextlib.contextmanager
def temporary_dir(parent: str | os.PathLike[str], prefix: str = ".tmp-") -> Iterator[Path]:
    """Yield a new empty folder inside ``parent``; it is deleted, with whatever is left in it, on exit.

    The staging area for :func:`replace_dir`: being in ``parent``, its contents can be renamed
    into ``parent`` without crossing a file system.

    Args:
        parent: the folder to create it in (created if missing).
        prefix: the start of its name (hidden by default).

    Yields:
        The folder.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    with _named(parent):
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success swap it in with :func:`replace_dir`.

    If the ``with`` body raises, the temporary folder is deleted and ``path`` (old content or
    none) is left exactly as it was.

    Args:
        path: the final folder (replaced if it exists).

    Yields:
        A temporary folder in the same parent.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "export"
        >>> with atomic_dir(target) as tmp:
        ...     _ = (tmp / "a.txt").write_text("new")
        >>> sorted(p.name for p in target.parent.iterdir()), (target / "a.txt").read_text()
        (['export'], 'new')
    """
    path = Path(path)
    with temporary_dir(path.parent, prefix=f".{path.name}.tmp-") as tmp:
        yield tmp
        replace_dir(tmp, path)


def _fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` to disk, then the folders (deepest first)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            file = os.path.join(folder, name)
            if os.path.islink(file):
                continue
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(folder)


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move the finished directory ``src`` to ``dst``, replacing any directory already there.

    The old ``dst`` is never deleted before the new one is in place. ``os.replace`` cannot
    replace a non-empty directory, so the swap is: flush ``src``'s files to disk; rename an
    existing ``dst`` aside to the hidden sibling ``.<name>.old-<random>``; rename ``src`` to
    ``dst``; flush the parent directory; delete the old copy. If the second rename fails, the
    old copy is renamed back and the error raised. What a crash (or power loss) leaves:

    * before the first rename: the old ``dst`` untouched (and ``src``, if the caller's
      temporary folder was not cleaned up);
    * between the two renames: no ``dst``, the complete old copy in ``.<name>.old-*`` (rename it
      back to recover) and the complete new one still at ``src``;
    * after the second rename: the complete new ``dst``, and possibly a stale, partly deleted
      ``.<name>.old-*`` that nothing reads (delete it at leisure).

    Never a mixture of old and new files. ``src`` and ``dst`` must be on the same file system,
    and only one process may replace a given ``dst`` at a time.

    Args:
        src: the finished folder.
        dst: where it goes.

    Raises:
        NotADirectoryError: ``src`` is not a folder (``dst`` is left alone).
        OSError: a rename failed (``dst`` is left as it was).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise NotADirectoryError(f"cannot replace {dst}: {src} is not a folder")
    _fsync_tree(src)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------- output paths
def check_out_path(
    out: str | os.PathLike[str],
    *,
    option: str = "--out",
    inside_ok: tuple[str, ...] = (),
    others: Mapping[str, str | os.PathLike[str] | None] | None = None,
    **inputs: str | os.PathLike[str] | None,
) -> None:
    """Refuse an output path that is a file, or that is, contains or lies inside an input of the command.

    Every command that writes to ``--out`` calls this before it reads or writes anything, so a
    mistyped ``--out`` can never replace, delete or litter the files the command reads: ``export
    --search S --out S --overwrite`` would otherwise swap the search folder for the export. Paths
    are compared after resolving ``..`` and symbolic links; a path that does not exist yet is fine.

    Args:
        out: the output folder.
        option: its command-line option, for the message.
        inside_ok: names of inputs ``out`` may lie inside (a command that writes a new sub-folder
            there by design, such as ``evaluate``'s ``MODEL/evaluation``).
        others: inputs that no option names, by a description (``"the search's teacher"`` for the
            teacher an export reads through the search folder) -> path.
        **inputs: each input by its option's name (``multistep`` for ``--multistep``) -> its path
            (a file or a folder); ``None`` is skipped.

    Raises:
        UserInputError: ``out`` is an existing file, or is, contains or lies inside an input
            (the message names both options and both paths).

    Example:
        >>> check_out_path("runs/compact", search="runs/search")
        >>> check_out_path("runs/search/compact", search="runs/search")
        Traceback (most recent call last):
        ...
        tocsr_nas.errors.UserInputError: --out runs/search/compact lies inside the --search folder runs/search; choose an --out apart from the command's inputs (nothing was changed)
    """
    from tocsr_nas.errors import UserInputError

    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{option} {out} is a file, not a folder (nothing was changed)")
    real = Path(os.path.realpath(target))
    labelled = [(name, "the --" + name.replace("_", "-"), given) for name, given in inputs.items()]
    labelled += [(label, label, given) for label, given in (others or {}).items()]
    for name, label, given in labelled:
        if given is None:
            continue
        source = Path(os.path.realpath(given))
        kind = "file" if source.is_file() else "folder"
        if real == source:
            problem = f"is {label} {kind}"
        elif source.is_relative_to(real):
            problem = f"contains {label} {kind} {given}"
        elif real.is_relative_to(source) and name not in inside_ok:
            problem = f"lies inside {label} {kind} {given}"
        else:
            continue
        raise UserInputError(
            f"{option} {out} {problem}; choose an {option} apart from the command's inputs (nothing was changed)"
        )
