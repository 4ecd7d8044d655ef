"""The surrogate library on disk: round trip, checks against teacher and space, missing pairs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from micro_distill import FINGERPRINT, shared_library

from tocsr_nas.errors import DamagedFileError
from tocsr_nas.searchspace.errors import TocsrError
from tocsr_nas.surrogates.distill import evaluate_loss, output_energy
from tocsr_nas.surrogates.features import safe_name
from tocsr_nas.surrogates.library import (
    IncompleteLibraryError,
    LibraryMismatchError,
    SurrogateLibrary,
    pair_files,
    read_manifest,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def library_copy(tmp_path):
    """A private copy of the shared micro library (tests below damage it)."""
    micro = shared_library()
    root = tmp_path / "lib"
    shutil.copytree(micro.library.root, root)
    return micro, root


def test_every_pair_round_trips():
    micro = shared_library()
    lib = SurrogateLibrary.open(micro.library.root, teacher_fingerprint=FINGERPRINT, space_hash=micro.space.hash)
    assert lib.is_complete and len(lib) == len(lib.pairs())
    for (path, cand), rec in lib.records.items():
        block = micro.unet.get_submodule(path)
        module = lib.load(path, cand, block)
        assert type(module).type_name == rec.type
        assert not module.training
        val = micro.features.read(path, "val")
        loss = evaluate_loss(module, val, output_energy(micro.features.read(path, "train")))
        assert loss == pytest.approx(rec.final_loss, rel=1e-5), (path, cand)
    assert lib.load(micro.space.paths[0], "teacher", micro.unet.get_submodule(micro.space.paths[0])) is (
        micro.unet.get_submodule(micro.space.paths[0])
    )


def test_library_records_teacher_space_and_resolution():
    micro = shared_library()
    manifest = read_manifest(micro.library.root)
    assert manifest["teacher_fingerprint"] == FINGERPRINT
    assert manifest["space_hash"] == micro.space.hash
    assert manifest["resolution"] == 64
    assert micro.library.space.hash == micro.space.hash  # the space dict rebuilds the same space
    for pair in manifest["pairs"]:
        for key in ("block", "candidate", "type", "config", "initial_loss", "final_loss", "steps", "seconds", "trainable"):
            assert key in pair
    weights, sidecar = pair_files(micro.library.root, "down_blocks.0.resnets.0", "bottleneck_resnet(ratio=0.5)")
    assert weights.parent.name == "down_blocks.0.resnets.0" and weights.name == safe_name("bottleneck_resnet(ratio=0.5)") + ".safetensors"
    assert json.loads(sidecar.read_text())["candidate"] == "bottleneck_resnet(ratio=0.5)"
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as fh:
        meta = fh.metadata()
    assert meta["type"] == "bottleneck_resnet" and json.loads(meta["params"]) == {"ratio": 0.5}
    assert json.loads(meta["config"])["in_channels"] == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"teacher_fingerprint": "another"}, "distilled from teacher micro-teacher-0, not from this teacher"),
        ({"space_hash": "0123456789ab"}, "search space .* not for this one"),
    ],
)
def test_mismatched_teacher_or_space_is_a_clear_error(kwargs, match):
    micro = shared_library()
    with pytest.raises(LibraryMismatchError, match=match) as info:
        SurrogateLibrary.open(micro.library.root, **kwargs)
    assert isinstance(info.value, TocsrError)
    assert "\n" not in str(info.value)


def test_missing_pairs_say_how_many_and_how_to_finish(library_copy):
    micro, root = library_copy
    total = len(micro.library.pairs())
    for key in list(micro.library.records)[:2]:
        for f in pair_files(root, *key):
            f.unlink()
    with pytest.raises(IncompleteLibraryError, match=rf"2 of {total} .*--resume"):
        SurrogateLibrary.open(root)
    partial = SurrogateLibrary.open(root, require_complete=False)
    assert len(partial.missing()) == 2
    with pytest.raises(LibraryMismatchError, match="--resume"):
        partial.load(*partial.missing()[0])


def test_sidecars_count_even_when_the_manifest_lags(library_copy):
    micro, root = library_copy
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["pairs"] = manifest["pairs"][:3]  # as if killed right after writing a few pairs
    (root / "manifest.json").write_text(json.dumps(manifest))
    lib = SurrogateLibrary.open(root)
    assert lib.is_complete and len(lib) == len(micro.library)


def test_a_swapped_weights_file_is_refused(library_copy):
    micro, root = library_copy
    a, b = "down_blocks.0.resnets.0", "down_blocks.1.resnets.0"
    cand = "bottleneck_resnet(ratio=0.5)"
    weights, sidecar = pair_files(root, a, cand)
    shutil.copy(pair_files(root, b, cand)[0], weights)
    with pytest.raises(DamagedFileError, match=re.escape(weights.name)):  # its size and sha256 are recorded
        SurrogateLibrary.open(root)
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({k: v for k, v in record.items() if k not in ("size", "sha256")}))
    lib = SurrogateLibrary.open(root)  # a library written before checksums: the header still tells
    with pytest.raises(LibraryMismatchError, match="holds"):
        lib.load(a, cand, micro.unet.get_submodule(a))


def test_not_a_library(tmp_path):
    with pytest.raises(LibraryMismatchError, match="not a surrogate library"):
        SurrogateLibrary.open(tmp_path)


def test_losses_table_and_prior():
    micro = shared_library()
    df = micro.library.losses()
    assert list(df.columns) == ["block", "candidate", "type", "trainable", "initial_loss", "final_loss", "ratio", "steps", "seconds"]
    assert len(df) == len(micro.library.pairs())
    assert list(zip(df.block, df.candidate)) == micro.library.pairs()  # space order
    assert (df.ratio[df.trainable] < 1).all()
    prior = micro.library.prior()
    assert list(prior) == micro.space.paths
    for block in micro.space.blocks:
        assert set(prior[block.path]) == set(block.names)
        assert prior[block.path]["teacher"] == 0.0
        assert all(v > 0 for k, v in prior[block.path].items() if k != "teacher")


def test_loaded_modules_follow_the_teacher_dtype():
    micro = shared_library()
    path = "up_blocks.0.upsamplers.0"
    block = torch.nn.Conv2d(1, 1, 1).to(torch.float64)
    module = micro.library.load(path, "light_up", block)
    assert next(module.parameters()).dtype == torch.float64
