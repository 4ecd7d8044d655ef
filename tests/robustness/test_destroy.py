"""Never destroy results: ``--out`` apart from every input, no silent overwrite, no restart over results.

Each case runs a command whose output would replace, delete or litter something the user has (an
input of the same command, a finished search, a photo) and asserts the one-line refusal and that
the thing is byte-identical afterwards. The shared artefacts are never named as ``--out``: a case
copies what it could damage into its own folder first.
"""

from __future__ import annotations

import json
import contextlib
import os
import subprocess
import shutil
from pathlib import Path

import pytest
from PIL import Image

from robustness.catalogue import Case, check, params
from robustness.conftest import FAST_SEARCH
from tocsr_nas._io import check_out_path
from tocsr_nas.cli import main
from tocsr_nas.errors import UserInputError


# ---------------------------------------------------------------------- set-up helpers
def copies(**where: str):
    """A ``setup`` that copies artefacts into the test's folder: ``copies(s="search")`` makes ``{s}`` =
    ``{tmp}/s``; a value ``"search@w/s"`` copies to ``{tmp}/w/s``."""

    def setup(tmp: Path, a) -> dict[str, str]:
        names = {}
        for key, spec in where.items():
            name, _, rel = spec.partition("@")
            dest = tmp / (rel or key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            names[key] = str(a.copy(name, dest))
        return names

    return setup


def also(*setups):
    """Several ``setup`` functions in turn (their placeholders merged)."""

    def setup(tmp: Path, a) -> dict[str, str]:
        names: dict[str, str] = {}
        for s in setups:
            names.update(s(tmp, a) or {})
        return names

    return setup


def a_file(rel: str, text: str = "mine\n"):
    """A ``setup`` that writes a user's file ``{tmp}/rel``."""

    def setup(tmp: Path, a) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return setup


def images(rel: str = "imgs"):
    """A ``setup`` that makes ``{tmp}/rel`` a folder of one 64x64 photo (``{imgs}``)."""

    def setup(tmp: Path, a) -> dict[str, str]:
        folder = tmp / rel
        folder.mkdir(parents=True, exist_ok=True)
        Image.open(a.image).resize((64, 64)).save(folder / "photo.png")
        return {"imgs": str(folder)}

    return setup


def no_journal(tmp: Path, a) -> dict[str, str]:
    """A finished search whose journal is gone (``{s}``)."""
    s = a.copy("search", tmp / "s")
    (s / "journal.jsonl").unlink()
    return {"s": str(s)}


def search_with_own_inputs(teacher: str, library: str):
    """A search copy ``{s}`` whose search.json names its own copies of the teacher (``{tmp}/teacher``) and the
    library (``{tmp}/library``), so that a case may aim ``--out`` at them."""

    def setup(tmp: Path, a) -> dict[str, str]:
        s = a.copy("search", tmp / "s")
        t, lib = tmp / teacher, tmp / library
        for name, dest in (("teacher", t), ("library", lib)):
            dest.parent.mkdir(parents=True, exist_ok=True)
            a.copy(name, dest)
        settings = json.loads((s / "search.json").read_text())
        settings.update(teacher=str(t), surrogates=str(lib))
        (s / "search.json").write_text(json.dumps(settings))
        return {"s": str(s), "t": str(t), "l": str(lib)}

    return setup


def shipped_teacher(tmp: Path, a) -> None:
    """A finished ``teacher train`` folder (the shipped tiny teacher, metrics.json included) at ``{tmp}/t``."""
    from tocsr_nas.teacher import default_teacher_dir

    shutil.copytree(default_teacher_dir(), tmp / "t")


def nothing_hidden(folder: str):
    """An ``after`` check: ``{tmp}/folder`` holds no hidden leftovers (``.x.tmp-*``)."""

    def after(tmp: Path, a, names) -> None:
        left = [p.name for p in (tmp / folder).rglob(".*")]
        assert not left, f"left behind: {left}"

    return after


SEARCH = ["search", "--teacher", "{teacher}", "--surrogates", "{library}", "--epsilon", "0.5", "--strategy", "random",
          "--budget", "2", *FAST_SEARCH]  # fmt: skip
SR_FAST = ["--steps", "1", "--batch-size", "2", "--pool-size", "2", "--threads", "1", "--no-progress"]


def _search(*, teacher: str = "{teacher}", surrogates: str = "{library}", out: str, extra=()) -> list[str]:
    argv = list(SEARCH)
    argv[argv.index("{teacher}")] = teacher
    argv[argv.index("{library}")] = surrogates
    return [*argv, "--out", out, *extra]


def _corrected_search_runs(tmp: Path, a, names) -> None:
    """The corrected command (a valid option) is not refused: nothing of the failed run is in the way."""
    assert main(_fmt(_search(out="{tmp}/s"), names)) == 0
    assert (tmp / "s" / "best.json").is_file()


def _fmt(argv, names) -> list[str]:
    return [x.format_map(names) for x in argv]


def _upscaled(tmp: Path, a, names) -> None:
    """``{tmp}/out/image.png`` is the upscaled photo (4x the 24 px input), not the old file."""
    with Image.open(tmp / "out" / "image.png") as im:
        assert im.size == (96, 96)


# ---------------------------------------------------------------------- the catalogue
CASES = [
    # --- export: --out apart from --search (it replaces --out whole with --overwrite)
    Case("export", "out-is-search", ["export", "--search", "{s}", "--out", "{s}", "--overwrite"],
         r"--out .* is the --search folder", setup=copies(s="search"), unchanged=["{s}"]),
    Case("export", "out-inside-search", ["export", "--search", "{s}", "--out", "{s}/compact", "--overwrite"],
         r"--out .*/compact lies inside the --search folder", setup=copies(s="search"), unchanged=["{s}"],
         absent=["{s}/compact"]),
    Case("export", "out-contains-search", ["export", "--search", "{s}", "--out", "{tmp}/w", "--overwrite"],
         r"--out .*/w contains the --search folder", setup=copies(s="search@w/s"), unchanged=["{tmp}/w"]),
    Case("export", "out-is-file", ["export", "--search", "{search}", "--out", "{tmp}/f", "--overwrite"],
         r"--out .*/f is a file", setup=a_file("f"), unchanged=["{tmp}/f", "{search}"]),
    Case("export", "out-exists-without-overwrite", ["export", "--search", "{search}", "--out", "{c}"],
         r"exists and is not empty", setup=copies(c="compact"), unchanged=["{c}"]),
    Case("export", "out-is-the-searchs-teacher", ["export", "--search", "{s}", "--out", "{t}", "--overwrite"],
         r"--out .* is the search's teacher folder", setup=search_with_own_inputs("t", "l"), unchanged=["{t}", "{s}"]),
    Case("export", "out-contains-the-searchs-library", ["export", "--search", "{s}", "--out", "{tmp}/w", "--overwrite"],
         r"--out .*/w contains the search's surrogate library folder", setup=search_with_own_inputs("t", "w/l"),
         unchanged=["{tmp}/w", "{s}"]),
    Case("export", "out-is-search-via-dotdot", ["export", "--search", "{s}", "--out", "{s}/../s", "--overwrite"],
         r"is the --search folder", setup=copies(s="search"), unchanged=["{s}"]),
    # --- distill: --out apart from --teacher and --space
    Case("distill", "out-is-teacher", ["distill", "--teacher", "{t}", "--space", "{space}", "--out", "{t}", "--resume"],
         r"--out .* is the --teacher folder", setup=copies(t="teacher"), unchanged=["{t}"]),
    Case("distill", "out-inside-teacher", ["distill", "--teacher", "{t}", "--space", "{space}", "--out", "{t}/lib"],
         r"--out .*/lib lies inside the --teacher folder", setup=copies(t="teacher"), unchanged=["{t}"],
         absent=["{t}/lib"]),
    Case("distill", "out-contains-teacher", ["distill", "--teacher", "{t}", "--space", "{space}", "--out", "{tmp}/w"],
         r"--out .*/w contains the --teacher folder", setup=copies(t="teacher@w/t"), unchanged=["{tmp}/w"]),
    Case("distill", "out-contains-space", ["distill", "--teacher", "{teacher}", "--space", "{tmp}/w/space.yaml",
                                            "--out", "{tmp}/w", "--resume"],
         r"--out .*/w contains the --space file", setup=copies(sp="space@w/space.yaml"), unchanged=["{tmp}/w"]),
    Case("distill", "resume-a-user-folder", ["distill", "--teacher", "{teacher}", "--space", "{space}", "--out", "{tmp}/w",
                                             "--resume"],
         r"cannot resume .*/w: it holds no surrogate library", setup=a_file("w/notes.txt"), unchanged=["{tmp}/w"]),
    Case("distill", "out-is-file", ["distill", "--teacher", "{teacher}", "--space", "{space}", "--out", "{tmp}/f"],
         r"--out .*/f is a file", setup=a_file("f"), unchanged=["{tmp}/f"]),
    # --- search: --out apart from --teacher, --surrogates and --space
    Case("search", "out-is-surrogates", _search(surrogates="{l}", out="{l}", extra=["--resume"]),
         r"--out .* is the --surrogates folder", setup=copies(l="library"), unchanged=["{l}"]),
    Case("search", "out-inside-surrogates", _search(surrogates="{l}", out="{l}/search"),
         r"--out .*/search lies inside the --surrogates folder", setup=copies(l="library"), unchanged=["{l}"],
         absent=["{l}/search"]),
    Case("search", "out-is-teacher", _search(teacher="{t}", out="{t}", extra=["--resume"]),
         r"--out .* is the --teacher folder", setup=copies(t="teacher"), unchanged=["{t}"]),
    Case("search", "out-contains-teacher", _search(teacher="{t}", out="{tmp}/w"),
         r"--out .*/w contains the --teacher folder", setup=copies(t="teacher@w/t"), unchanged=["{tmp}/w"]),
    Case("search", "out-contains-space", _search(out="{tmp}/w", extra=["--space", "{tmp}/w/space.yaml", "--resume"]),
         r"--out .*/w contains the --space file", setup=copies(sp="space@w/space.yaml"), unchanged=["{tmp}/w"]),
    Case("search", "out-is-file", _search(out="{tmp}/f"), r"--out .*/f is a file", setup=a_file("f"),
         unchanged=["{tmp}/f"]),
    Case("search", "resume-without-journal", _search(out="{s}", extra=["--resume"]),
         r"--out .*/s holds search results \(trials.csv, pareto.csv, best.json\) but no journal.jsonl",
         setup=no_journal, unchanged=["{s}"]),
    Case("search", "resume-a-user-folder", _search(out="{tmp}/w", extra=["--resume"]),
         r"cannot resume --out .*/w: it holds no search", setup=a_file("w/notes.txt"), unchanged=["{tmp}/w"]),
    Case("search", "unknown-strategy-option", _search(out="{tmp}/s", extra=["--strategy-option", "nope=1"]),
         r"unknown option.*nope", absent=["{tmp}/s"], after=_corrected_search_runs),
    Case("search", "unknown-strategy-option-empty-out", _search(out="{tmp}/e", extra=["--strategy-option", "nope=1"]),
         r"unknown option.*nope", setup=lambda tmp, a: (tmp / "e").mkdir() and None,
         absent=["{tmp}/e/search.json", "{tmp}/e/validation.safetensors"]),
    Case("search", "fails-before-its-journal", [*_search(out="{tmp}/s"), "--strategy", "exhaustive",
                                                "--strategy-option", "max_size=1"],
         r"more than max_size=1", absent=["{tmp}/s"]),
    Case("search", "resume-with-unknown-strategy-option", _search(out="{s}", extra=["--resume", "--strategy-option",
                                                                              "nope=1"]),
         r"unknown option.*nope", setup=copies(s="search"), unchanged=["{s}"]),
    # --- sr train: --out apart from --backbone, --teacher and --images
    Case("sr train", "out-is-backbone", ["sr", "train", "--backbone", "{c}", "--out", "{c}", "--resume", *SR_FAST],
         r"--out .* is the --backbone folder", setup=copies(c="compact"), unchanged=["{c}"]),
    Case("sr train", "out-inside-backbone", ["sr", "train", "--backbone", "{c}", "--out", "{c}/sr", *SR_FAST],
         r"--out .*/sr lies inside the --backbone folder", setup=copies(c="compact"), unchanged=["{c}"],
         absent=["{c}/sr"]),
    Case("sr train", "out-is-teacher", ["sr", "train", "--backbone", "{compact}", "--teacher", "{t}", "--out", "{t}",
                                        "--resume", *SR_FAST],
         r"--out .* is the --teacher folder", setup=copies(t="teacher"), unchanged=["{t}", "{compact}"]),
    Case("sr train", "out-inside-images", ["sr", "train", "--backbone", "{sr_teacher}", "--images", "{imgs}",
                                           "--out", "{imgs}/sr", *SR_FAST],
         r"--out .*/sr lies inside the --images folder", setup=images(), unchanged=["{imgs}"], absent=["{imgs}/sr"]),
    Case("sr train", "out-is-file", ["sr", "train", "--backbone", "{sr_teacher}", "--out", "{tmp}/f", *SR_FAST],
         r"--out .*/f is a file", setup=a_file("f"), unchanged=["{tmp}/f"]),
    Case("sr train", "resume-finished", ["sr", "train", "--backbone", "{sr_teacher}", "--out", "{m}", "--resume", *SR_FAST],
         r"already trained \(sr.json exists\)", setup=copies(m="sr"), unchanged=["{m}"]),
    Case("sr train", "resume-a-user-folder", ["sr", "train", "--backbone", "{sr_teacher}", "--out", "{tmp}/w", "--resume",
                                              *SR_FAST],
         r"nothing to resume in .*/w", setup=a_file("w/notes.txt"), unchanged=["{tmp}/w"]),
    # --- sr distill: --out apart from --teacher (the multi-step model) and --images
    Case("sr distill", "out-is-teacher", ["sr", "distill", "--teacher", "{m}", "--out", "{m}", "--resume", *SR_FAST],
         r"--out .* is the --teacher folder", setup=copies(m="sr"), unchanged=["{m}"]),
    Case("sr distill", "out-inside-teacher", ["sr", "distill", "--teacher", "{m}", "--out", "{m}/one", *SR_FAST],
         r"--out .*/one lies inside the --teacher folder", setup=copies(m="sr"), unchanged=["{m}"],
         absent=["{m}/one"]),
    Case("sr distill", "out-contains-teacher", ["sr", "distill", "--teacher", "{m}", "--out", "{tmp}/w", *SR_FAST],
         r"--out .*/w contains the --teacher folder", setup=copies(m="sr@w/m"), unchanged=["{tmp}/w"]),
    Case("sr distill", "out-is-images", ["sr", "distill", "--teacher", "{sr}", "--images", "{imgs}", "--out", "{imgs}",
                                         *SR_FAST],
         r"--out .* is the --images folder", setup=images(), unchanged=["{imgs}", "{sr}"]),
    Case("sr distill", "out-contains-images", ["sr", "distill", "--teacher", "{sr}", "--images", "{imgs}", "--out",
                                               "{tmp}/w", *SR_FAST],
         r"--out .*/w contains the --images folder", setup=images("w/imgs"), unchanged=["{tmp}/w"]),
    Case("sr distill", "resume-finished", ["sr", "distill", "--teacher", "{sr}", "--out", "{o}", "--resume", *SR_FAST],
         r"already trained \(sr.json exists\)", setup=copies(o="onestep"), unchanged=["{o}"]),
    # --- teacher train
    Case("teacher train", "out-inside-images", ["teacher", "train", "--images", "{imgs}", "--out", "{imgs}/t",
                                                "--steps", "1", "--vae-steps", "1", "--threads", "1", "--no-progress"],
         r"--out .*/t lies inside the --images folder", setup=images(), unchanged=["{imgs}"], absent=["{imgs}/t"]),
    Case("teacher train", "out-is-file", ["teacher", "train", "--out", "{tmp}/f", "--steps", "1", "--vae-steps", "1",
                                          "--threads", "1", "--no-progress"],
         r"--out .*/f is a file", setup=a_file("f"), unchanged=["{tmp}/f"]),
    Case("teacher train", "resume-a-saved-teacher", ["teacher", "train", "--out", "{t}", "--resume", "--steps", "1",
                                                     "--vae-steps", "1", "--threads", "1", "--no-progress"],
         r"nothing to resume in .*: no checkpoints/state.json", setup=copies(t="teacher"), unchanged=["{t}"]),
    Case("teacher train", "resume-finished", ["teacher", "train", "--out", "{tmp}/t", "--resume", "--steps", "1",
                                              "--vae-steps", "1", "--threads", "1", "--no-progress"],
         r"already trained \(metrics.json exists\)", setup=shipped_teacher, unchanged=["{tmp}/t"]),
    # --- upscale: never an input, an existing file only with --overwrite, --out apart from --model
    Case("upscale", "overwrites-the-input", ["upscale", "--model", "{onestep}", "{tmp}/image.png", "--out", "{tmp}"],
         r"its image.png would replace the input .*image.png", setup=copies(i="image@image.png"),
         unchanged=["{tmp}/image.png"]),
    Case("upscale", "overwrites-the-input-even-with-overwrite",
         ["upscale", "--model", "{onestep}", "{tmp}/image.png", "--out", "{tmp}/.", "--overwrite"],
         r"would replace the input .*image.png \(even with --overwrite\)", setup=copies(i="image@image.png"),
         unchanged=["{tmp}/image.png"]),
    Case("upscale", "existing-output", ["upscale", "--model", "{onestep}", "{image}", "--out", "{tmp}/out"],
         r"/out/image.png exists; pass --overwrite to replace it",
         setup=a_file("out/image.png"), unchanged=["{tmp}/out"]),
    Case("upscale", "existing-output-overwritten", ["upscale", "--model", "{onestep}", "{image}", "--out", "{tmp}/out",
                                                    "--overwrite", "--threads", "1"],
         r"image.png", code=0, setup=a_file("out/image.png"), after=_upscaled),
    Case("upscale", "existing-output-is-a-folder", ["upscale", "--model", "{onestep}", "{image}", "--out", "{tmp}/out",
                                                    "--overwrite"],
         r"image.png exists and is not a file", setup=a_file("out/image.png/keep.txt"), unchanged=["{tmp}/out"]),
    Case("upscale", "out-is-model", ["upscale", "--model", "{o}", "{image}", "--out", "{o}"],
         r"--out .* is the --model folder", setup=copies(o="onestep"), unchanged=["{o}"]),
    Case("upscale", "out-inside-model", ["upscale", "--model", "{o}", "{image}", "--out", "{o}/big"],
         r"--out .*/big lies inside the --model folder", setup=copies(o="onestep"), unchanged=["{o}"],
         absent=["{o}/big"]),
    Case("upscale", "out-is-file", ["upscale", "--model", "{onestep}", "{image}", "--out", "{tmp}/f"],
         r"--out .*/f is a file", setup=a_file("f"), unchanged=["{tmp}/f"]),
    # --- evaluate: --out apart from --model (MODEL/evaluation, its default, is fine), --multistep, --images
    Case("evaluate", "out-is-model", ["evaluate", "--model", "{o}", "--out", "{o}", "--threads", "1"],
         r"--out .* is the --model folder", setup=copies(o="onestep"), unchanged=["{o}"]),
    Case("evaluate", "out-contains-model", ["evaluate", "--model", "{o}", "--out", "{tmp}/w", "--threads", "1"],
         r"--out .*/w contains the --model folder", setup=copies(o="onestep@w/o"), unchanged=["{tmp}/w"]),
    Case("evaluate", "out-is-multistep", ["evaluate", "--model", "{onestep}", "--multistep", "{m}", "--out", "{m}"],
         r"--out .* is the --multistep folder", setup=copies(m="sr"), unchanged=["{m}"]),
    Case("evaluate", "out-inside-images", ["evaluate", "--model", "{onestep}", "--images", "{imgs}", "--out",
                                           "{imgs}/e"],
         r"--out .*/e lies inside the --images folder", setup=images(), unchanged=["{imgs}"], absent=["{imgs}/e"]),
    Case("evaluate", "out-is-file", ["evaluate", "--model", "{onestep}", "--out", "{tmp}/f"],
         r"--out .*/f is a file", setup=a_file("f"), unchanged=["{tmp}/f"]),
    # --- run: a stage folder with a user's file is refused before anything is written
    Case("run", "teacher-folder-holds-a-user-file", ["run", "--out", "{tmp}/x", "--quick"],
         r"x/teacher holds files this run did not write", setup=a_file("x/teacher/mine.txt"),
         unchanged=["{tmp}/x"], after=nothing_hidden("x")),
    Case("run", "compact-folder-holds-a-user-file", ["run", "--out", "{tmp}/x", "--quick"],
         r"x/compact holds files this run did not write \(none of compact.json\)", setup=a_file("x/compact/mine.txt"),
         unchanged=["{tmp}/x"], absent=["{tmp}/x/teacher", "{tmp}/x/pipeline.json"]),
    Case("run", "stage-folder-is-a-file", ["run", "--out", "{tmp}/x", "--quick"],
         r"x/search is a file", setup=a_file("x/search"), unchanged=["{tmp}/x"], absent=["{tmp}/x/teacher"]),
    Case("run", "out-is-file", ["run", "--out", "{tmp}/f", "--quick"], r"--out .*/f is a file", setup=a_file("f"),
         unchanged=["{tmp}/f"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)


# ---------------------------------------------------------------------- read-only folders (errno -> one line)
def _read_only(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root, or a file system that ignores modes
        folder.chmod(0o755)
        pytest.skip("chmod does not stop this user from writing (running as root?)")


@pytest.mark.parametrize(
    "argv, path",
    [
        (["export", "--search", "{search}", "--out", "{tmp}/ro/compact"], "ro"),
        (["upscale", "--model", "{onestep}", "{image}", "--out", "{tmp}/ro"], "ro"),
    ],
    ids=["export", "upscale"],
)
def test_read_only_out_is_one_line(argv, path, artefacts, tmp_path, capsys):
    names = artefacts.names()
    names["tmp"] = str(tmp_path)
    _read_only(tmp_path / "ro")
    try:
        capsys.readouterr()
        code = main(_fmt(argv, names))
        err = capsys.readouterr().err.strip()
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.endswith(f"{tmp_path / 'ro'}: Permission denied"), err
    assert list((tmp_path / "ro").iterdir()) == []


# ---------------------------------------------------------------------- full or read-only disks (as root)
@contextlib.contextmanager
def _tmpfs(folder: Path, options: str):
    """Mount a small tmpfs at ``folder`` (``options``: e.g. ``size=64k`` or ``ro``); skip where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize(
    "argv, options, message",
    [
        (["export", "--search", "{search}", "--out", "{tmp}/disk/compact"], "size=64k", "No space left on device"),
        (["upscale", "--model", "{onestep}", "{image}", "--out", "{tmp}/disk/big"], "ro", "Read-only file system"),
        (["export", "--search", "{search}", "--out", "{tmp}/disk/compact"], "ro", "Read-only file system"),
    ],
    ids=["export-full", "upscale-read-only", "export-read-only"],
)
def test_full_or_read_only_disk_is_one_line(argv, options, message, artefacts, tmp_path, capsys):
    names = artefacts.names()
    names["tmp"] = str(tmp_path)
    argv = _fmt(argv, names)  # builds the artefacts before the disk is mounted
    with _tmpfs(tmp_path / "disk", options) as disk:
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err.strip()
        left = sorted(p.name for p in disk.iterdir())
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert message in err and str(disk) in err, err
    assert left == [], f"left behind on the full disk: {left}"


# ---------------------------------------------------------------------- the shared check
def test_check_out_path_accepts_apart_and_absent(tmp_path):
    (tmp_path / "in").mkdir()
    check_out_path(tmp_path / "out", search=tmp_path / "in", images=None)
    check_out_path(tmp_path / "in-2", search=tmp_path / "in")  # a shared name prefix is not "inside"


def test_check_out_path_sees_through_symlinks(tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "search")
    with pytest.raises(UserInputError, match=r"--out .*link is the --search folder"):
        check_out_path(tmp_path / "link", search=tmp_path / "search")


def test_check_out_path_inside_ok_allows_only_inside(tmp_path):
    (tmp_path / "model").mkdir()
    check_out_path(tmp_path / "model" / "evaluation", inside_ok=("model",), model=tmp_path / "model")
    with pytest.raises(UserInputError, match="is the --model folder"):
        check_out_path(tmp_path / "model", inside_ok=("model",), model=tmp_path / "model")


def test_evaluate_default_out_inside_the_model_still_works(artefacts, tmp_path, capsys):
    model = artefacts.copy("onestep", tmp_path / "o")
    assert main(["evaluate", "--model", str(model), "--max-side", "32", "--threads", "1"]) == 0
    assert (model / "evaluation" / "evaluation.json").is_file()


# ---------------------------------------------------------------------- search folders: any cwd, never restarted
def test_search_folder_exports_from_another_directory(artefacts, tmp_path, monkeypatch):
    """search.json records absolute paths: a search run with relative paths exports from anywhere."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(artefacts.teacher, work / "teacher")
    shutil.copytree(artefacts.library, work / "lib")
    monkeypatch.chdir(work)
    assert main(_search(teacher="teacher", surrogates="lib", out="s")) == 0
    settings = json.loads((work / "s" / "search.json").read_text())
    assert Path(settings["teacher"]).is_absolute() and Path(settings["surrogates"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["export", "--search", str(work / "s"), "--out", "c"]) == 0
    assert (elsewhere / "c" / "compact.json").is_file()


def test_old_search_json_with_paths_relative_to_the_search_folder_is_readable(artefacts, tmp_path, monkeypatch):
    """An older search.json with relative paths still exports (resolved against the search folder)."""
    work = tmp_path / "work"
    s = artefacts.copy("search", work / "s")
    shutil.copytree(artefacts.teacher, s / "teacher")
    shutil.copytree(artefacts.library, s / "lib")
    settings = json.loads((s / "search.json").read_text())
    settings.update(teacher="teacher", surrogates="lib")
    (s / "search.json").write_text(json.dumps(settings))
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--search", str(s), "--out", "c"]) == 0


def test_search_api_refuses_to_start_over_results(tmp_path):
    """The library's SearchLoop keeps the rule too: results without a journal are never rewritten."""
    from tocsr_nas.errors import TocsrError
    from tocsr_nas.search import search
    from tocsr_nas.searchspace import SearchSpace

    space = SearchSpace.from_choices({"a": ["x", "y"], "b": ["x", "y"]})
    (tmp_path / "best.json").write_text("{}\n")
    for resume in (True, False):
        with pytest.raises(TocsrError, match=r"holds search results \(best.json\) but no journal.jsonl"):
            search(space, quality=lambda c: 0.0, cost=lambda c: 1.0, epsilon=0.1, strategy="random", budget=2,
                   out_dir=tmp_path, resume=resume, progress=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json"]
