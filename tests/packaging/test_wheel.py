"""The wheel cannot drift from the source tree: build it, compare, install it non-editable, run it.

``setup.py`` walks the four folders (``nas``, ``searchspace``, ``surrogates``, ``evaluators``) for
packages and ``pyproject.toml`` maps them under ``tocsr_nas`` and names the package data. Here:
the wheel's packages are exactly the source folders with an ``__init__.py`` (as import names), the
package data is inside, and the wheel installed with ``--no-deps`` into a fresh venv (that sees
this environment's dependencies through a ``.pth`` file, but not the editable ``tocsr_nas``) runs
the ``tocsr-nas`` console script and imports every module from its own site-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: import name -> source folder (setup.py's ROOTS, pyproject.toml's package-dir)
ROOTS = {
    "tocsr_nas": "nas",
    "tocsr_nas.searchspace": "searchspace",
    "tocsr_nas.surrogates": "surrogates",
    "tocsr_nas.evaluators": "evaluators",
}
#: what a build needs besides the four folders
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md")
#: a few package data files that must ship (spaces/*.yaml, assets/**/*)
DATA = (
    "tocsr_nas/spaces/unet.yaml",
    "tocsr_nas/assets/teacher-tiny/teacher.json",
    "tocsr_nas/assets/teacher-tiny/unet/config.json",
    "tocsr_nas/assets/teacher-tiny/unet/diffusion_pytorch_model.safetensors",
)

pytestmark = pytest.mark.slow  # a wheel build, a venv and one cost table: about a minute or two


def source_packages() -> set[str]:
    """Every folder with an ``__init__.py`` under the four roots, as an import name."""
    found = set()
    for name, folder in ROOTS.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(base).parts
            found.add(".".join((name, *rel)))
    return found


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the checkout gets no build/ or egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, src / name)
    for folder in ROOTS.values():
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    proc = run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
                "-q", "-w", str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("tocsr_nas-*.whl")
    return path


def dependency_paths() -> list[str]:
    """The site-packages folders this interpreter imports from (its own, and any it chains to)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory, wheel) -> dict:
    """A new venv with this environment's dependencies on its path; the wheel installed into it.

    Returns:
        ``{"python", "bin", "site", "before"}``: ``before`` is what ``import tocsr_nas`` did
        before the install (it must fail: the editable install is not visible).
    """
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # lines of a .pth are added to sys.path; the .pth files inside those folders (the editable
    # finder among them) are not executed
    (site / "_deps.pth").write_text("".join(p + "\n" for p in dependency_paths()))
    before = run([str(python), "-c", "import tocsr_nas"])
    # pip of the new interpreter (imported through the .pth): the console script gets its shebang
    proc = run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                "--disable-pip-version-check", "-q", str(wheel)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"python": python, "bin": env_dir / "bin", "site": site, "before": before}


def test_wheel_packages_are_the_source_folders(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    in_wheel = {".".join(PurePosixPath(n).parent.parts) for n in names if PurePosixPath(n).name == "__init__.py"}
    expected = source_packages()
    assert {"tocsr_nas", "tocsr_nas.searchspace", "tocsr_nas.strategies.ecbo"} <= expected  # the walk sees the tree
    assert in_wheel == expected, f"missing: {sorted(expected - in_wheel)}; extra: {sorted(in_wheel - expected)}"


def test_wheel_has_the_package_data(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = [d for d in DATA if d not in names]
    assert not missing, f"package data not in the wheel: {missing}"
    shipped = {n for n in names if n.startswith("tocsr_nas/assets/")}
    on_disk = {"tocsr_nas/" + p.relative_to(ROOT / "nas").as_posix() for p in (ROOT / "nas" / "assets").rglob("*") if p.is_file()}
    assert shipped == on_disk, f"assets differ: missing {sorted(on_disk - shipped)}, extra {sorted(shipped - on_disk)}"


def test_fresh_venv_sees_the_dependencies_but_not_the_editable_install(fresh_venv):
    assert fresh_venv["before"].returncode != 0
    assert "No module named 'tocsr_nas'" in fresh_venv["before"].stderr, fresh_venv["before"].stderr
    proc = run([str(fresh_venv["python"]), "-c", "import torch, diffusers, botorch, nni, scipy, einops"])
    assert proc.returncode == 0, proc.stderr


def test_console_script_lists_the_blocks(fresh_venv, tmp_path):
    env = {**os.environ, "TOCSR_NAS_CACHE": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)
    script = fresh_venv["bin"] / "tocsr-nas"
    assert script.read_text().startswith(f"#!{fresh_venv['python']}"), script.read_text()[:200]
    proc = run([str(script), "space", "--preset", "tiny", "--json"], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["num_blocks"] == len(report["blocks"]) > 0
    for block in report["blocks"]:
        assert block["path"] and block["candidates"][0]["name"] == "teacher", block


def test_every_module_imports_from_the_installed_wheel(fresh_venv, tmp_path):
    code = """
import importlib, json, pkgutil, tocsr_nas
names, failed = ["tocsr_nas"], {}
for info in pkgutil.walk_packages(tocsr_nas.__path__, "tocsr_nas."):
    if not info.name.endswith("__main__"):
        names.append(info.name)
files = {}
for name in names:
    try:
        files[name] = importlib.import_module(name).__file__
    except Exception as exc:
        failed[name] = repr(exc)
print(json.dumps({"files": files, "failed": failed}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = run([str(fresh_venv["python"]), "-c", code], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["failed"], result["failed"]
    site = fresh_venv["site"].resolve()
    assert Path(result["files"]["tocsr_nas"]).resolve().is_relative_to(site)
    outside = [n for n, f in result["files"].items() if not Path(f).resolve().is_relative_to(site)]
    assert not outside, outside
    modules = {n.removesuffix(".__init__") for n in result["files"]}
    source = set()
    for name, folder in ROOTS.items():
        for py in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in py.parts and py.stem != "__main__":
                source.add(".".join((name, *py.relative_to(ROOT / folder).with_suffix("").parts)).removesuffix(".__init__"))
    assert modules == source, f"not imported: {sorted(source - modules)}; extra: {sorted(modules - source)}"
