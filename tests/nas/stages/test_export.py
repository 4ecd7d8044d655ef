"""Export of a configuration as a compact UNet, and its rebuild without teacher, space or library."""

import random

import pytest
import torch

from tocsr_nas.stages.costs import cost_table_for
from tocsr_nas.stages.distill import DistillConfig, distill_teacher
from tocsr_nas.stages.export import CompactFormatError, assemble_from_library, export_compact, load_compact, load_compact_teacher
from tocsr_nas.stages.space import build_space
from tocsr_nas.searchspace import SpaceSpec
from tocsr_nas.teacher import build_teacher

SPACE = """
name: export-test
rules:
  - name: resnets
    match: "*resnets.*"
    type: ResnetBlock2D
    candidates: [skip, {type: bottleneck_resnet, grid: {ratio: [0.5]}}]
  - name: attentions
    match: "*attentions.*"
    candidates: [conv_mixer]
  - name: samplers
    match: "*samplers.*"
    candidates: [skip]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    teacher = build_teacher("tiny", seed=0).eval()
    space = build_space(teacher.unet, SpaceSpec.from_yaml(SPACE), probe=teacher.unet_example_inputs(1, resolution=32))
    config = DistillConfig(steps=2, samples=4, val_samples=2, batch_size=2, capture_batch=4, resolution=32)
    library = distill_teacher(teacher, space, root / "lib", config, progress=False)
    return teacher, space, library, root


def test_export_round_trip_outputs_and_complexity(setup, tmp_path):
    teacher, space, library, _ = setup
    cfg = space.sample(random.Random(4))
    meta = export_compact(teacher, space, library, cfg, tmp_path / "compact", resolution=32)
    rebuilt = load_compact(tmp_path / "compact")
    reference = assemble_from_library(teacher.unet, space, library, cfg)
    args, kwargs = teacher.unet_example_inputs(2, resolution=32, seed=3)
    with torch.no_grad():
        assert torch.equal(rebuilt(*args, **kwargs)[0], reference(*args, **kwargs)[0])
    table = cost_table_for(teacher, space, 32, cache=False)
    searched = table.cost(cfg)
    assert meta["measured"]["params"] == searched.params
    assert meta["measured"]["macs"] == searched.macs
    # the compact folder alone is a teacher-like bundle for SR
    bundle = load_compact_teacher(tmp_path / "compact")
    assert bundle.latent_channels == 16 and bundle.context(1).shape == teacher.context(1).shape


def test_export_refuses_to_overwrite_and_bad_folders(setup, tmp_path):
    teacher, space, library, _ = setup
    out = tmp_path / "compact"
    export_compact(teacher, space, library, space.default_config(), out, resolution=32)
    before = (out / "unet.safetensors").read_bytes()
    with pytest.raises(Exception, match="not empty"):
        export_compact(teacher, space, library, space.default_config(), out, resolution=32)
    assert (out / "unet.safetensors").read_bytes() == before
    with pytest.raises(CompactFormatError, match="not a compact export"):
        load_compact(tmp_path)


def test_failed_overwrite_keeps_the_previous_export_loadable(setup, tmp_path, monkeypatch):
    from tocsr_nas.stages import export as export_module

    teacher, space, library, _ = setup
    out = tmp_path / "compact"
    export_compact(teacher, space, library, space.default_config(), out, resolution=32)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError("simulated: disk full while writing compact.json")

    # the last file of the export fails: everything else of the new export is already written
    monkeypatch.setattr(export_module, "atomic_write_text", disk_full)
    cfg = space.sample(random.Random(1))
    with pytest.raises(OSError, match="disk full"):
        export_compact(teacher, space, library, cfg, out, resolution=32, overwrite=True)
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compact"]  # no staging or old copies left
    load_compact(out)

    monkeypatch.undo()
    export_compact(teacher, space, library, cfg, out, resolution=32, overwrite=True)
    load_compact(out)
    assert export_module.read_compact_meta(out)["configuration_hash"] == cfg.hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compact"]


def _result(points, epsilons=(0.05, 0.1)):
    import json

    import pandas as pd

    from tocsr_nas.search.results import SearchResult

    rows = []
    for i, (g, q) in enumerate(points):
        row = {"trial": i, "strategy": "t", "config": json.dumps({"a": str(i)}), "hash": f"h{i}", "gmacs": g,
               "params": g, "quality": q, "seconds": 0.1}
        row.update({f"feasible@{e!r}": q <= e for e in epsilons})
        row["feasible"] = row[f"feasible@{epsilons[0]!r}"]
        rows.append(row)
    return SearchResult(pd.DataFrame(rows), objective="gmacs", epsilons=epsilons, strategy="t", seed=0)


def test_pick_trial_takes_any_epsilon_and_marks_one_outside_the_sweep():
    from tocsr_nas.errors import TocsrError
    from tocsr_nas.stages.export import pick_trial

    result = _result([(4.0, 0.0), (2.0, 0.04), (1.5, 0.07), (1.0, 0.09)])
    trial, eps = pick_trial(result, None, None)
    assert (trial.trial, eps, trial.from_trials) == (1, 0.05, False)
    trial, eps = pick_trial(result, None, 0.1)
    assert (trial.trial, eps, trial.from_trials) == (3, 0.1, False)
    trial, eps = pick_trial(result, None, 0.08)  # not searched: read from the trials' quality
    assert (trial.trial, eps, trial.from_trials) == (2, 0.08, True)
    with pytest.raises(TocsrError, match=r"no feasible trial at epsilon -0.01 \(read from the sweep's trials\)"):
        pick_trial(result, None, -0.01)
