"""tocsr_nas._io: atomic files, and folders swapped in without ever deleting the old one first."""

import json
import os
import subprocess
import sys

import pytest
import torch

from tocsr_nas import _io
from tocsr_nas._io import (
    atomic_dir,
    atomic_path,
    atomic_write_json,
    fsync_dir,
    load_safetensors,
    replace_dir,
    save_safetensors,
    temporary_dir,
)


def _folder(path, **files):
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_replace_dir_swaps_the_new_folder_in_and_leaves_nothing_behind(tmp_path):
    dst = _folder(tmp_path / "out", **{"old.txt": "old", "same.txt": "old"})
    src = _folder(tmp_path / ".staging", **{"same.txt": "new", "new.txt": "new"})
    (src / "sub").mkdir()
    (src / "sub" / "deep.txt").write_text("deep")
    replace_dir(src, dst)
    assert _tree(dst) == {"new.txt": "new", "same.txt": "new", "sub/deep.txt": "deep"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_creates_a_missing_destination(tmp_path):
    src = _folder(tmp_path / ".staging", **{"a.txt": "a"})
    replace_dir(src, tmp_path / "out")
    assert _tree(tmp_path / "out") == {"a.txt": "a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_keeps_the_old_folder_when_the_new_one_is_missing(tmp_path):
    dst = _folder(tmp_path / "out", **{"old.txt": "old"})
    with pytest.raises(NotADirectoryError):
        replace_dir(tmp_path / "missing", dst)
    assert _tree(dst) == {"old.txt": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    dst = _folder(tmp_path / "out", **{"old.txt": "old"})
    src = _folder(tmp_path / ".staging", **{"new.txt": "new"})
    real_replace = os.replace
    calls = []

    def failing_replace(a, b):
        calls.append((os.fspath(a), os.fspath(b)))
        if os.fspath(a) == os.fspath(src):
            raise OSError("simulated failure of the rename into place")
        real_replace(a, b)

    monkeypatch.setattr(_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        replace_dir(src, dst)
    assert calls[0][0] == os.fspath(dst)  # the old folder was really moved aside first
    assert _tree(dst) == {"old.txt": "old"}
    assert _tree(src) == {"new.txt": "new"}  # the caller still has the new content
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", "out"]


def test_atomic_dir_leaves_the_old_folder_when_the_body_fails(tmp_path):
    dst = _folder(tmp_path / "out", **{"old.txt": "old"})
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_dir(dst) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("writer failed")
    assert _tree(dst) == {"old.txt": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_dir(dst) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _tree(dst) == {"new.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_temporary_dir_is_removed_with_its_contents(tmp_path):
    with temporary_dir(tmp_path / "parent", prefix=".stage-") as stage:
        assert stage.parent == tmp_path / "parent" and stage.name.startswith(".stage-")
        (stage / "f.txt").write_text("x")
    assert list((tmp_path / "parent").iterdir()) == []


def test_atomic_path_keeps_the_old_file_on_failure_and_honours_a_suffix(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".png") as tmp:
            assert tmp.name.endswith(".png") and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    with atomic_path(target, suffix=".png") as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_atomic_write_json_options(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"b": 1, "a": (1, 2)}, indent=1, sort_keys=False, default=list)
    assert path.read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=1) + "\n"
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": {1, 2}})
    assert json.loads(path.read_text()) == {"b": 1, "a": [1, 2]}  # the failed write changed nothing


def test_save_safetensors_handles_aliased_and_viewed_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"w": base, "tied": base, "row": base[1], "t": base.t()}
    save_safetensors(tmp_path / "w.safetensors", tensors, metadata={"k": "v"})
    loaded = load_safetensors(tmp_path / "w.safetensors")
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor)


def test_fsync_dir_ignores_what_it_cannot_open(tmp_path):
    fsync_dir(tmp_path)
    fsync_dir(tmp_path / "missing")


def test_io_is_a_torch_free_leaf_module():
    code = (
        "import sys, tocsr_nas._io; "
        "bad = [m for m in sys.modules if m == 'torch' or (m.startswith('tocsr_nas.') and m != 'tocsr_nas._io')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_save_safetensors_writes_the_same_bytes_in_every_process(tmp_path):
    """safetensors orders its metadata by a per-process hash; the saved bytes (and checksums) must not depend on it."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from tocsr_nas._io import save_safetensors\n"
        "save_safetensors(sys.argv[1], {'w': torch.arange(4.0)}, {f'key{i}': 'x' * i for i in range(16)})\n"
    )
    outputs = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for out in outputs:
        subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    assert len({out.read_bytes() for out in outputs}) == 1


def test_atomic_create_bytes_is_exclusive_and_leaves_no_temporary(tmp_path):
    from tocsr_nas._io import atomic_create_bytes

    target = tmp_path / "journal.jsonl"
    atomic_create_bytes(target, b"header\n")
    assert target.read_bytes() == b"header\n"
    with pytest.raises(FileExistsError):
        atomic_create_bytes(target, b"another\n")
    assert target.read_bytes() == b"header\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.jsonl"]
