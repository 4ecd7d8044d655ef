"""Robustness catalogue: what is read is verified (issue 14, deliverable 4).

Every weights file a manifest names (``teacher.json``, a library's sidecars, ``compact.json``,
``sr.json``) carries its size and sha256, and loading checks them; truncated JSON, safetensors and
torch state, paths that leave their folder, pickled weights and artefacts that do not belong
together are refused with one line that names the file. Artefacts written before checksums were
recorded still load.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from robustness.catalogue import Case, check, params
from robustness.conftest import FAST_SEARCH

from tocsr_nas.cli import main
from tocsr_nas.errors import DamagedFileError

WEIGHTS = "diffusion_pytorch_model.safetensors"


# --- damage -------------------------------------------------------------------------------------
def cut(path: Path, size: int = 100) -> None:
    """Truncate ``path`` to its first ``size`` bytes."""
    path.write_bytes(path.read_bytes()[:size])


def flip(path: Path) -> None:
    """Invert one byte near the end (the tensor data): same size, another sha256."""
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_json(path: Path, change) -> None:
    """Rewrite a JSON file with ``change(data)`` applied."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def copy_with(name: str, dest: str, damage):
    """A ``setup`` that copies artefact ``name`` to ``{tmp}/dest`` and calls ``damage(folder)``."""

    def setup(tmp: Path, a) -> None:
        folder = a.copy(name, tmp / dest)
        damage(folder)

    return setup


def pairs(library: Path) -> list[Path]:
    """The weights files of a library's pairs."""
    return sorted(p for p in library.rglob("*.safetensors") if "features" not in p.parts)


def sidecars(library: Path) -> list[Path]:
    """The sidecar records of a library's pairs."""
    return sorted(p for p in library.rglob("*.json") if p.name != "manifest.json" and "features" not in p.parts)


def legacy(manifest: str):
    """Damage that first drops the checksums ``manifest`` records (an artefact from before them)."""

    def drop(folder: Path) -> None:
        edit_json(folder / manifest, lambda d: d.pop("files"))

    return drop


def both(*steps):
    return lambda folder: [step(folder) for step in steps]


# --- command lines ------------------------------------------------------------------------------
DISTILL = ["distill", "--teacher", "{tmp}/t", "--space", "{space}", "--out", "{tmp}/lib", "--steps", "1",
           "--samples", "4", "--val-samples", "4", "--batch-size", "4", "--threads", "1", "--no-progress"]
RESUME = ["distill", "--teacher", "{teacher}", "--space", "{space}", "--out", "{tmp}/lib", "--steps", "3",
          "--samples", "8", "--val-samples", "4", "--batch-size", "4", "--threads", "1", "--no-progress", "--resume"]
SEARCH = ["search", "--teacher", "{teacher}", "--surrogates", "{tmp}/lib", "--space", "{space}", "--epsilon", "0.5",
          "--strategy", "random", "--budget", "2", "--out", "{tmp}/s", *FAST_SEARCH]
SR_TRAIN = ["sr", "train", "--backbone", "{tmp}/c", "--out", "{tmp}/o", "--steps", "1", "--threads", "1", "--no-progress"]
UPSCALE = ["upscale", "--model", "{tmp}/m", "{image}", "--out", "{tmp}/up", "--threads", "1"]
SR_DISTILL = ["sr", "distill", "--teacher", "{tmp}/m", "--out", "{tmp}/o", "--steps", "1", "--threads", "1", "--no-progress"]


def teacher_case(name, damage, match, argv=DISTILL):
    return Case("distill", name, argv, match, setup=copy_with("teacher", "t", damage), unchanged=["{tmp}/t"],
                absent=["{tmp}/lib"])


def library_case(command, name, damage, match, argv):
    return Case(command, name, argv, match, setup=copy_with("library", "lib", damage), unchanged=["{tmp}/lib"])


def compact_case(name, damage, match, argv=SR_TRAIN):
    return Case("sr train", name, argv, match, setup=copy_with("compact", "c", damage), unchanged=["{tmp}/c"],
                absent=["{tmp}/o"])


def sr_case(command, name, source, damage, match, argv):
    return Case(command, name, argv, match, setup=copy_with(source, "m", damage), unchanged=["{tmp}/m"],
                absent=["{tmp}/up", "{tmp}/o"])


def outside(manifest: str, rel: str):
    """Damage: ``manifest``'s ``files`` gains an entry ``rel`` (a path that leaves the folder)."""
    return lambda folder: edit_json(folder / manifest, lambda d: d["files"].update({rel: {"size": 1, "sha256": "0"}}))


def sidecar_file(value: str):
    """Damage: every pair sidecar of a library names ``value`` as its weights file."""

    def damage(folder: Path) -> None:
        for sidecar in sidecars(folder):
            edit_json(sidecar, lambda d: d.update(file=value))

    return damage


def partial_sr_run(tmp: Path, a) -> None:
    """``{tmp}/o``: an ``sr train`` run stopped after its first checkpoint (step 1, with optimizer state)."""
    from tocsr_nas.sr.train import SRTrainConfig, train_sr

    config = SRTrainConfig(steps=3, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2,
                           sampler_steps=2, tile=8, checkpoint_every=1)
    assert train_sr(a.sr_teacher, tmp / "o", config, progress=False, stop_after=1) is None


def damaged_checkpoint(which: str):
    def setup(tmp: Path, a) -> None:
        partial_sr_run(tmp, a)
        folder = next(p for p in (tmp / "o" / "checkpoints").iterdir() if p.is_dir())
        target = folder / "optimizer.pt" if which == "optimizer" else next(folder.glob("*.safetensors"))
        cut(target)

    return setup


def another_sr(tmp: Path, a) -> None:
    """``{tmp}/m``: another multi-step SR model (the SR artefact with one weight changed)."""
    import torch

    from tocsr_nas.sr.model import SRModel

    other = SRModel.load(a.sr)
    with torch.no_grad():
        next(other.net.parameters()).add_(0.01)
    other.save(tmp / "m")


def onestep_run_and_another_sr(tmp: Path, a) -> None:
    """``{tmp}/o``: an ``sr distill`` run of the SR artefact stopped after step 1; ``{tmp}/m``: another SR model."""
    from tocsr_nas.sr.onestep import DistillConfig, distill_onestep

    config = DistillConfig(steps=3, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2, pixel_items=1,
                           checkpoint_every=1)
    assert distill_onestep(a.sr, tmp / "o", config, progress=False, stop_after=1) is None
    another_sr(tmp, a)


def search_on_damaged(which: str, damage):
    """A ``setup``: ``{tmp}/s``, a copy of the search whose ``search.json`` names ``{tmp}/<which>``, a damaged
    copy of its teacher (``t``) or library (``lib``)."""

    def setup(tmp: Path, a) -> None:
        search = a.copy("search", tmp / "s")
        folder = a.copy("teacher" if which == "t" else "library", tmp / which)
        damage(folder)
        edit_json(search / "search.json", lambda d: d.update({"teacher" if which == "t" else "surrogates": str(folder)}))

    return setup


SR_RESUME = ["sr", "train", "--backbone", "{sr_teacher}", "--out", "{tmp}/o", "--resume", "--threads", "1",
             "--no-progress"]

CASES = [
    # ---- the teacher folder (read by every command; here by distill)
    teacher_case("teacher-json-truncated", lambda t: cut(t / "teacher.json", 10), r"teacher\.json is damaged"),
    teacher_case("teacher-json-not-object", lambda t: (t / "teacher.json").write_text("[]"), r"teacher\.json"),
    teacher_case("unet-truncated", lambda t: cut(t / "unet" / WEIGHTS), r"unet/diffusion_pytorch_model\.safetensors is damaged"),
    teacher_case("unet-byte-flipped", lambda t: flip(t / "unet" / WEIGHTS), r"unet/diffusion_pytorch_model\.safetensors .*sha256"),
    teacher_case("vae-truncated", lambda t: cut(t / "vae" / WEIGHTS), r"vae/diffusion_pytorch_model\.safetensors is damaged"),
    teacher_case("context-byte-flipped", lambda t: flip(t / "context" / WEIGHTS), r"context/diffusion_pytorch_model\.safetensors"),
    teacher_case("unet-missing", lambda t: (t / "unet" / WEIGHTS).unlink(), r"unet/diffusion_pytorch_model\.safetensors is missing"),
    teacher_case("files-outside", outside("teacher.json", "../elsewhere.safetensors"), r"teacher\.json names '\.\./elsewhere"),
    teacher_case("files-absolute", outside("teacher.json", "/etc/hostname"), r"teacher\.json names '/etc/hostname'"),
    teacher_case("files-size-not-a-number",
                 lambda t: edit_json(t / "teacher.json", lambda d: d["files"]["unet/" + WEIGHTS].update(size="big")),
                 r"manifest of .*unet/diffusion_pytorch_model\.safetensors is damaged: its recorded size 'big'"),
    teacher_case("legacy-unet-truncated", both(legacy("teacher.json"), lambda t: cut(t / "unet" / WEIGHTS)),
                 r"cannot load teacher from .*unet/diffusion_pytorch_model\.safetensors"),
    teacher_case("pickled-bin-only",
                 both(legacy("teacher.json"), lambda t: (t / "unet" / WEIGHTS).rename(t / "unet" / "diffusion_pytorch_model.bin")),
                 r"diffusion_pytorch_model\.bin holds pickled weights"),
    # ---- the surrogate library (read by search; distill --resume)
    library_case("search", "manifest-truncated", lambda lib: cut(lib / "manifest.json", 50), r"manifest\.json is damaged", SEARCH),
    library_case("search", "manifest-without-space", lambda lib: edit_json(lib / "manifest.json", lambda d: d.pop("space")),
                 r"manifest\.json is damaged: space missing", SEARCH),
    library_case("search", "pair-truncated", lambda lib: cut(pairs(lib)[0]), r"\.safetensors is damaged: 100 bytes", SEARCH),
    library_case("search", "pairs-byte-flipped", lambda lib: [flip(p) for p in pairs(lib)], r"\.safetensors .*sha256", SEARCH),
    library_case("search", "legacy-pair-truncated",
                 lambda lib: [edit_json(sc, lambda d: [d.pop("size"), d.pop("sha256")]) for sc in sidecars(lib)]
                 and [cut(p) for p in pairs(lib)], r"\.safetensors is damaged \(not a readable safetensors", SEARCH),
    library_case("search", "sidecar-truncated", lambda lib: cut(sidecars(lib)[0], 20), r"pair record .*\.json is damaged", SEARCH),
    library_case("search", "sidecar-file-absolute", sidecar_file("/etc/hostname"), r"names '/etc/hostname', which is not a file inside",
                 SEARCH),
    library_case("search", "sidecar-file-dotdot", sidecar_file("../teacher/unet/" + WEIGHTS), r"names '\.\./teacher", SEARCH),
    library_case("distill", "resume-manifest-truncated", lambda lib: cut(lib / "manifest.json", 50), r"manifest\.json is damaged",
                 RESUME),
    library_case("distill", "resume-sidecar-file-outside", sidecar_file("../../x.safetensors"), r"names '\.\./\.\./x\.safetensors'",
                 RESUME),
    # ---- a search folder (read by export)
    Case("export", "search-json-truncated", ["export", "--search", "{tmp}/s", "--out", "{tmp}/c"], r"search\.json is damaged",
         setup=copy_with("search", "s", lambda s: cut(s / "search.json", 30)), unchanged=["{tmp}/s"], absent=["{tmp}/c"]),
    Case("export", "teacher-unet-truncated", ["export", "--search", "{tmp}/s", "--out", "{tmp}/c"],
         r"unet/diffusion_pytorch_model\.safetensors is damaged", setup=search_on_damaged("t", lambda t: cut(t / "unet" / WEIGHTS)),
         unchanged=["{tmp}/t"], absent=["{tmp}/c"]),
    Case("export", "library-pairs-byte-flipped", ["export", "--search", "{tmp}/s", "--out", "{tmp}/c"],
         r"\.safetensors is damaged: its sha256 differs", setup=search_on_damaged("lib", lambda lib: [flip(p) for p in pairs(lib)]),
         unchanged=["{tmp}/lib"], absent=["{tmp}/c"]),
    # ---- the compact UNet export (read by sr train)
    compact_case("compact-json-truncated", lambda c: cut(c / "compact.json", 40), r"compact\.json is damaged"),
    compact_case("unet-truncated", lambda c: cut(c / "unet.safetensors"), r"unet\.safetensors is damaged"),
    compact_case("unet-byte-flipped", lambda c: flip(c / "unet.safetensors"), r"unet\.safetensors .*sha256"),
    compact_case("vae-byte-flipped", lambda c: flip(c / "vae" / WEIGHTS), r"vae/diffusion_pytorch_model\.safetensors .*sha256"),
    compact_case("context-truncated", lambda c: cut(c / "context" / WEIGHTS), r"context/diffusion_pytorch_model\.safetensors is damaged"),
    compact_case("files-outside", outside("compact.json", "../../secret.safetensors"), r"compact\.json names '\.\./\.\./secret"),
    compact_case("legacy-unet-truncated", both(legacy("compact.json"), lambda c: cut(c / "unet.safetensors")),
                 r"unet\.safetensors is damaged \(not a readable safetensors"),
    compact_case("compact-json-without-blocks", lambda c: edit_json(c / "compact.json", lambda d: d.pop("blocks")),
                 r"compact\.json is damaged: its architecture does not rebuild"),
    Case("sr train", "teacher-backbone-vae-byte-flipped", ["sr", "train", "--backbone", "{tmp}/t", "--out", "{tmp}/o",
                                                           "--steps", "1", "--threads", "1", "--no-progress"],
         r"vae/diffusion_pytorch_model\.safetensors is damaged: its sha256", setup=copy_with("sr_teacher", "t", lambda t: flip(t / "vae" / WEIGHTS)),
         unchanged=["{tmp}/t"], absent=["{tmp}/o"]),
    compact_case("other-teacher", lambda c: None, r"--teacher .* is not the teacher compact UNet .* was exported from",
                 argv=[*SR_TRAIN, "--teacher", "{sr_teacher}"]),
    # ---- SR models (read by upscale and sr distill)
    sr_case("upscale", "sr-json-truncated", "sr", lambda m: cut(m / "sr.json", 30), r"sr\.json is damaged", UPSCALE),
    sr_case("upscale", "weights-truncated", "sr", lambda m: cut(m / "weights.safetensors"), r"weights\.safetensors is damaged", UPSCALE),
    sr_case("upscale", "weights-byte-flipped", "sr", lambda m: flip(m / "weights.safetensors"), r"weights\.safetensors .*sha256", UPSCALE),
    sr_case("upscale", "vae-byte-flipped", "sr", lambda m: flip(m / "vae" / WEIGHTS), r"vae/diffusion_pytorch_model\.safetensors", UPSCALE),
    sr_case("upscale", "files-outside", "sr", outside("sr.json", "/etc/hostname"), r"sr\.json names '/etc/hostname'", UPSCALE),
    sr_case("upscale", "sr-json-without-backbone", "sr", lambda m: edit_json(m / "sr.json", lambda d: d.pop("backbone")),
            r"cannot load the SR model in .*'backbone'", UPSCALE),
    sr_case("upscale", "legacy-weights-truncated", "sr", both(legacy("sr.json"), lambda m: cut(m / "weights.safetensors")),
            r"weights\.safetensors is damaged \(not a readable safetensors", UPSCALE),
    sr_case("upscale", "onestep-weights-byte-flipped", "onestep", lambda m: flip(m / "weights.safetensors"),
            r"weights\.safetensors .*sha256", UPSCALE),
    sr_case("upscale", "onestep-sr-json-truncated", "onestep", lambda m: cut(m / "sr.json", 30), r"sr\.json is damaged", UPSCALE),
    sr_case("sr distill", "teacher-weights-truncated", "sr", lambda m: cut(m / "weights.safetensors"), r"weights\.safetensors is damaged",
            SR_DISTILL),
    # ---- resuming a training run
    Case("sr distill", "resume-state-truncated", [*SR_DISTILL, "--resume"], r"state\.json is damaged",
         setup=lambda tmp, a: a.copy("sr", tmp / "m") and (tmp / "o" / "checkpoints").mkdir(parents=True)
         or (tmp / "o" / "checkpoints" / "state.json").write_text('{"step": 1, "conf') and None,
         unchanged=["{tmp}/o", "{tmp}/m"]),
    Case("sr distill", "resume-state-not-a-run", [*SR_DISTILL, "--resume"], r"state\.json is damaged \(not a run state\)",
         setup=lambda tmp, a: a.copy("sr", tmp / "m") and (tmp / "o" / "checkpoints").mkdir(parents=True)
         or (tmp / "o" / "checkpoints" / "state.json").write_text('{"step": 1}') and None,
         unchanged=["{tmp}/o", "{tmp}/m"]),
    Case("sr distill", "resume-from-another-sr-model", [*SR_DISTILL, "--resume"],
         r"cannot resume .*: it was started from another --teacher \(fingerprint",
         setup=onestep_run_and_another_sr, unchanged=["{tmp}/o", "{tmp}/m"]),
    Case("evaluate", "multistep-of-another-model", ["evaluate", "--model", "{onestep}", "--multistep", "{tmp}/m",
                                                      "--out", "{tmp}/e", "--threads", "1"],
         r"/m \(fingerprint .*\) is not the multi-step model the one-step model .* was distilled from", setup=another_sr,
         unchanged=["{tmp}/m", "{onestep}"], absent=["{tmp}/e"]),
    Case("sr train", "resume-from-another-backbone",
         ["sr", "train", "--backbone", "{teacher}", "--out", "{tmp}/o", "--resume", "--threads", "1", "--no-progress"],
         r"cannot resume .*: it was started from another --backbone \(fingerprint", setup=partial_sr_run,
         unchanged=["{tmp}/o"]),
    Case("sr train", "resume-optimizer-truncated", SR_RESUME, r"optimizer\.pt is damaged", setup=damaged_checkpoint("optimizer")),
    Case("sr train", "resume-weights-truncated", SR_RESUME, r"checkpoints/.*\.safetensors is damaged",
         setup=damaged_checkpoint("weights")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)


# --- beyond the table ---------------------------------------------------------------------------
def test_manifests_record_size_and_sha256(artefacts):
    from tocsr_nas._io import file_record

    for folder, manifest in ((artefacts.teacher, "teacher.json"), (artefacts.compact, "compact.json"),
                             (artefacts.sr, "sr.json"), (artefacts.onestep, "sr.json")):
        files = json.loads((folder / manifest).read_text())["files"]
        assert files and all(rel.endswith(".safetensors") for rel in files)
        for rel, record in files.items():
            assert file_record(folder / rel) == record, (folder, rel)
    for sidecar in sidecars(artefacts.library):
        record = json.loads(sidecar.read_text())
        assert file_record(artefacts.library / record["file"]) == {"size": record["size"], "sha256": record["sha256"]}


def test_the_shipped_teacher_records_its_weights_and_loads(tmp_path):
    from tocsr_nas._io import file_record
    from tocsr_nas.teacher import Teacher, default_teacher_dir

    shipped = default_teacher_dir()
    meta = json.loads((shipped / "teacher.json").read_text())
    assert sorted(meta["files"]) == sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*.safetensors"))
    assert all(file_record(shipped / rel) == record for rel, record in meta["files"].items())
    assert Teacher.load(shipped).fingerprint() == meta["fingerprint"]
    folder = Path(shutil.copytree(shipped, tmp_path / "t"))
    legacy("teacher.json")(folder)  # as it was shipped before checksums
    assert Teacher.load(folder).fingerprint() == meta["fingerprint"]


def test_a_teacher_saved_before_checksums_loads(artefacts, tmp_path):
    from tocsr_nas.teacher import Teacher

    folder = artefacts.copy("teacher", tmp_path / "t")
    legacy("teacher.json")(folder)
    assert Teacher.load(folder).fingerprint() == Teacher.load(artefacts.teacher).fingerprint()


def test_the_compact_export_belongs_to_its_own_teacher(artefacts):
    from tocsr_nas.sr.model import load_backbone

    backbone = load_backbone(artefacts.compact, teacher=artefacts.teacher)
    assert backbone.format == "compact"


@pytest.mark.parametrize("checksums", [True, False], ids=["checksummed", "legacy"])
def test_distill_resume_redoes_a_damaged_pair(artefacts, tmp_path, caplog, checksums):
    from tocsr_nas.surrogates.library import SurrogateLibrary

    lib = artefacts.copy("library", tmp_path / "lib")
    victim = pairs(lib)[0]
    if not checksums:  # a library written before the sidecars recorded size and sha256
        for sidecar in sidecars(lib):
            edit_json(sidecar, lambda d: [d.pop("size"), d.pop("sha256")])
    cut(victim)
    untouched = {p: p.read_bytes() for p in pairs(lib) if p != victim}
    names = artefacts.names()
    names["tmp"] = str(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert main([a.format_map(names) for a in RESUME]) == 0
    assert any(victim.stem in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    opened = SurrogateLibrary.open(lib)
    assert opened.is_complete
    assert victim.stat().st_size > 100
    for block, candidate in opened.pairs():
        opened.load(block, candidate)
    assert {p: p.read_bytes() for p in untouched} == untouched  # the sound pairs were kept


def test_readers_turn_damage_into_one_error(tmp_path):
    import torch

    from tocsr_nas._io import inside, load_safetensors, load_torch_state, read_json, save_safetensors, save_torch_state

    (tmp_path / "a.json").write_text('{"x": ')
    save_safetensors(tmp_path / "w.safetensors", {"w": torch.ones(64)})
    cut(tmp_path / "w.safetensors", 30)
    save_torch_state(tmp_path / "o.pt", {"w": torch.ones(64)})
    cut(tmp_path / "o.pt", 60)
    for read, name in ((read_json, "a.json"), (load_safetensors, "w.safetensors"), (load_torch_state, "o.pt")):
        with pytest.raises(DamagedFileError, match=name) as info:
            read(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")
    with pytest.raises(DamagedFileError, match="not a file inside"):
        inside(tmp_path, "sub/../../x")
    assert inside(tmp_path, "sub/x") == tmp_path / "sub" / "x"
