"""The per-block latency table: additive lookups, cells timed inside the model column by column, JSON round trip,
stale caches refused; ``latency_table_for`` caches per device, dtype and batch like the cost table.

No assert is on a time's size (a shared machine makes them noisy): only on the table's algebra,
its keys and what was (re)measured."""

from __future__ import annotations

import math

import pytest
import torch

from torch import nn

from tocsr_nas.evaluators import LatencyTable, TableCosts, measure_ms
from tocsr_nas.evaluators.cost_table import BlockCost, CostTable, CostTableError


class Toy(nn.Module):
    """Three blocks on the same (8, 32) input: ``a`` and ``b`` are identical, ``c`` is wider inside."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 32)
        self.c = nn.Sequential(nn.Linear(32, 128), nn.Linear(128, 32))

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def instantiate(path: str, name: str, block: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Identity() if name == "skip" else nn.Sequential(nn.Linear(32, 4), nn.Linear(4, 32))


CHOICES = {"a": ["teacher", "skip", "thin"], "b": ["teacher", "skip", "thin"], "c": ["teacher", "thin"]}


@pytest.fixture(scope="module")
def choices():
    return CHOICES


@pytest.fixture(scope="module")
def table():
    torch.set_num_threads(1)
    return LatencyTable.build(Toy().eval(), (torch.randn(8, 32),), {}, CHOICES, instantiate, warmup=1, repeats=3,
                              resolution=64, metadata={"device": "cpu", "batch": 1})  # fmt: skip


def test_every_cell_is_a_finite_positive_time(table, choices):
    assert set(table.cells) == set(choices)
    for path, names in choices.items():
        assert set(table.cells[path]) == set(names)
        assert all(math.isfinite(v) and v > 0 for v in table.cells[path].values())


def test_the_teacher_is_the_measured_whole_model_and_lookups_add_up(table, choices):
    assert table.teacher() == pytest.approx(table.whole)
    cfg = {p: names[-1] for p, names in choices.items()}
    expected = table.base + sum(table.cells[p][names[-1]] for p, names in choices.items())
    assert table.latency(cfg) == pytest.approx(expected)
    one = next(iter(choices))
    assert table.latency({one: choices[one][-1]}) - table.teacher() == pytest.approx(
        table.cells[one][choices[one][-1]] - table.cells[one]["teacher"]
    )


def test_cells_are_timed_column_by_column(table, choices):
    # the whole model, then three columns: the teacher's blocks, every block's first other candidate, its second
    assert table.measurements == 1 + 3
    assert set(table.cells["c"]) == {"teacher", "thin"}


class _Flagged(Toy):
    """The toy, saying while its forward pass runs."""

    running = False

    def forward(self, x):
        self.running = True
        try:
            return super().forward(x)
        finally:
            self.running = False


class _Probe(nn.Module):
    """A candidate that notes whether it is called inside the model's forward pass."""

    def __init__(self, model, seen):
        super().__init__()
        self.model, self.seen, self.lin = [model], seen, nn.Linear(32, 32)

    def forward(self, x):
        self.seen.append(self.model[0].running)
        return self.lin(x)


def test_candidates_are_timed_inside_the_model_and_the_model_is_restored():
    torch.set_num_threads(1)
    model, seen = _Flagged().eval(), []
    originals = {p: model.get_submodule(p) for p in CHOICES}
    table = LatencyTable.build(model, (torch.randn(8, 32),), {}, {"a": ["teacher", "probe"], "c": ["teacher"]},
                               lambda path, name, block: _Probe(model, seen), warmup=1, repeats=3)  # fmt: skip
    assert set(table.cells["a"]) == {"teacher", "probe"} and math.isfinite(table.cells["a"]["probe"])
    # one untimed call alone (a candidate that cannot run is named), then warm-up and timed passes in the model
    assert seen == [False] + [True] * (1 + 3)
    assert all(model.get_submodule(p) is m for p, m in originals.items())


def test_unknown_blocks_and_candidates_are_errors(table, choices):
    with pytest.raises(CostTableError, match="not in the latency table"):
        table.latency({"no.such.block": "teacher"})
    with pytest.raises(CostTableError, match="known"):
        table.cell(next(iter(choices)), "warp_drive")


def test_json_round_trip_and_stale_metadata(table, tmp_path):
    path = table.save(tmp_path / "lat.json")
    back = LatencyTable.load(path, expect={"device": "cpu", "batch": 1, "resolution": 64})
    assert back.cells == table.cells and back.base == table.base and back.whole == table.whole
    with pytest.raises(CostTableError, match="batch=1, not 4"):
        LatencyTable.load(path, expect={"batch": 4})
    (tmp_path / "bad.json").write_text('{"format": "tocsr-nas/cost-table"}')
    with pytest.raises(CostTableError, match="not a tocsr-nas latency table"):
        LatencyTable.load(tmp_path / "bad.json")


def test_table_costs_reads_both_tables():
    costs = CostTable({"a": {"teacher": BlockCost(10, 8, 3), "skip": BlockCost(0, 0, 0)}}, base=BlockCost(5, 5, 1))
    both = TableCosts(costs, LatencyTable({"a": {"teacher": 2.0, "skip": 0.5}}, base=1.0))
    assert (both.gmacs({"a": "skip"}), both.params({"a": "skip"}), both.latency({"a": "skip"})) == (5e-9, 1, 1.5)
    assert both.teacher().params == 4  # the rest of the cost table's API
    with pytest.raises(CostTableError, match="different blocks"):
        TableCosts(costs, LatencyTable({"b": {"teacher": 1.0}}, base=0.0))


def test_measure_ms_checks_its_counts():
    assert measure_ms(lambda: None, warmup=0, repeats=1) >= 0
    with pytest.raises(CostTableError, match="repeats must be >= 1"):
        measure_ms(lambda: None, repeats=0)


def test_latency_table_for_caches_per_device_dtype_and_batch(tmp_path):
    from tocsr_nas.stages.costs import latency_table_for
    from tocsr_nas.stages.space import build_space
    from tocsr_nas.teacher import build_teacher

    torch.set_num_threads(1)
    teacher = build_teacher("tiny", seed=0)
    space_file = tmp_path / "space.yaml"
    space_file.write_text('name: micro\nrules:\n  - name: down\n    match: "*downsamplers.*"\n    type: Downsample2D\n'
                          '    candidates: [pool_down]\n')  # fmt: skip
    space = build_space(teacher.unet, space_file, probe=teacher.unet_example_inputs(1, resolution=32))
    cache = tmp_path / "cache"
    kw = dict(warmup=0, repeats=1, cache=cache)
    first = latency_table_for(teacher, space, 32, **kw)
    assert first.measurements > 0 and first.metadata["dtype"] == "float32" and first.metadata["batch"] == 1
    assert first.metadata["device"] == "cpu(1threads)"
    again = latency_table_for(teacher, space, 32, **kw)
    assert again.measurements == 0 and again.cells == first.cells, "read back from the cache"
    other = latency_table_for(teacher, space, 32, batch=2, **kw)
    reduced = latency_table_for(teacher, space, 32, dtype="bfloat16", **kw)
    assert other.measurements > 0 and reduced.measurements > 0
    assert reduced.metadata["dtype"] == "bfloat16" and all(math.isfinite(v) for r in reduced.cells.values() for v in r.values())
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 3 and all(n.startswith("latency-") for n in names)
    assert any("-b2-" in n for n in names) and any("bfloat16" in n for n in names)
