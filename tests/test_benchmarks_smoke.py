"""The search-efficiency benchmark at its smallest setting (toy landscapes, seconds), so it never rots."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from landscapes import toy_chain_landscape, toy_enumerated_landscape  # noqa: E402


def test_chain_optimum_is_exact():
    """The dynamic programme's optimum equals a brute-force scan of every configuration."""
    land = toy_chain_landscape(6, seed=3)
    feasible = [land.cost(c) for c in land.space.enumerate() if land.quality(c) <= land.epsilon]
    cost, cfg = land.optimum()
    assert cost == pytest.approx(min(feasible))
    assert land.quality(cfg) <= land.epsilon
    assert land.check_optimum() == 0


def test_structured_optimum_ignores_the_noise():
    """The noise-free optimum equals a scan of the structured part; with the noise bound taken off it is always feasible."""
    land = toy_chain_landscape(6, seed=3)
    configs = list(land.space.enumerate())
    for limit in (land.epsilon, land.epsilon - land.noise):
        cost, cfg = land.structured_optimum(limit)
        assert cost == pytest.approx(min(land.cost(c) for c in configs if land.structured_idx(land.space.encode(c)) <= limit))
    assert land.quality(cfg) <= land.epsilon  # S <= epsilon - a: feasible whatever the noise
    assert cost >= land.optimum()[0]


def test_enumerated_landscape_round_trips_csv(tmp_path):
    land = toy_enumerated_landscape(4, seed=1, path=tmp_path / "table.csv")
    cost, cfg = land.optimum()
    assert land.quality(cfg) <= land.epsilon and land.cost(cfg) == cost
    assert cost <= land.cost(land.space.default_config())


def test_run_quick(tmp_path):
    import run

    code = run.main(["--quick", "--seeds", "1", "--strategies", "random,ecbo", "--budgets", "3,6", "--out", str(tmp_path)])
    assert code == 0
    with open(tmp_path / "summary_toyA_toyB.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["landscape"], r["strategy"]) for r in rows} == {(l, s) for l in ("toyA", "toyB") for s in ("random", "ecbo")}
    for r in rows:
        assert math.isfinite(float(r["median@6"])) and float(r["median@6"]) >= -1e-9  # the teacher is feasible
        assert float(r["median@6"]) <= float(r["median@3"]) + 1e-12  # best-so-far never worsens
    assert (tmp_path / "regret_toyA.png").stat().st_size > 0 and (tmp_path / "regret_toyB.png").stat().st_size > 0
    (tmp_path / "summary_toyA_toyB.csv").unlink()
    assert run.main(["--quick", "--budgets", "3,6", "--out", str(tmp_path), "--resummarise"]) == 0
    with open(tmp_path / "summary_toyA_toyB.csv") as fh:
        assert [dict(r) for r in csv.DictReader(fh)] == rows  # rebuilt from runs + regrets alone


def test_merge_from_replaces_one_strategy(tmp_path):
    """``--merge-from`` folds a separate run's strategy into --out: its rows replace the old ones, the others stay."""
    import run

    main, extra = tmp_path / "main", tmp_path / "extra"
    common = ["--landscapes", "toyB", "--budgets", "3,6"]
    assert run.main([*common, "--seeds", "1", "--strategies", "random,ecbo", "--out", str(main)]) == 0
    assert run.main([*common, "--seeds", "2", "--strategies", "ecbo", "--out", str(extra)]) == 0
    assert run.main([*common, "--seeds", "1", "--first-seed", "1", "--strategies", "random", "--out", str(tmp_path / "more")]) == 0
    before = run._read_regrets(main / "regrets_toyB.csv")
    assert run.main([*common, "--out", str(main), "--merge-from", str(extra)]) == 0
    assert run.main([*common, "--out", str(main), "--merge-from", str(tmp_path / "more")]) == 0
    runs = run._read_runs(main / "runs_toyB.csv")
    assert sorted((r["strategy"], r["seed"]) for r in runs) == [("ecbo", 0), ("ecbo", 1), ("random", 0), ("random", 1)]
    after = run._read_regrets(main / "regrets_toyB.csv")
    assert after[("toyB", "random", 0)] == before[("toyB", "random", 0)]  # kept
    assert after[("toyB", "ecbo", 1)] == run._read_regrets(extra / "regrets_toyB.csv")[("toyB", "ecbo", 1)]  # joined
    with open(main / "summary_toyB.csv") as fh:
        assert {r["strategy"]: r["seeds"] for r in csv.DictReader(fh)} == {"random": "2", "ecbo": "2"}


def test_strategy_options_are_labelled(tmp_path):
    """``--strategy-option`` reaches the strategy, and its rows are labelled so they never replace the default ones."""
    import run

    argv = ["--landscapes", "toyB", "--budgets", "3,6", "--seeds", "1", "--strategies", "ecbo", "--out", str(tmp_path)]
    assert run.main([*argv, "--strategy-option", "prior_rel_sd=null", "--strategy-option", "warp=log1p"]) == 0
    assert {r["strategy"] for r in run._read_runs(tmp_path / "runs_toyB.csv")} == {'ecbo[prior_rel_sd=null,warp="log1p"]'}
    from tocsr_nas.strategies import StrategyError

    with pytest.raises(StrategyError, match="unknown option"):
        run.main([*argv, "--strategy-option", "bogus=1"])


def test_instances_give_each_seed_its_own_landscape(tmp_path):
    """``--instances``: search seed s meets stress instance landscape-seed + s, named NAME@inst; without it
    every seed meets the one instance ``--landscape-seed`` picks (NAME@N)."""
    import json

    import run

    argv = ["--landscapes", "deadpath", "--budgets", "2", "--seeds", "2", "--strategies", "random"]
    assert run.main([*argv, "--instances", "--landscape-seed", "3", "--out", str(tmp_path / "inst")]) == 0
    assert run.main([*argv, "--landscape-seed", "3", "--out", str(tmp_path / "one")]) == 0
    inst = json.loads((tmp_path / "inst" / "optima_deadpath.json").read_text())
    one = json.loads((tmp_path / "one" / "optima_deadpath.json").read_text())
    from stress_landscapes import stress_landscape

    want = [stress_landscape("deadpath", s).optimum()[0] for s in (3, 4)]
    assert [r["optimum"] for r in inst["deadpath@inst"]] == pytest.approx(want)
    assert [r["optimum"] for r in one["deadpath@3"]] == pytest.approx([want[0], want[0]])


def test_gpu_check_small_runs_on_the_cpu(tmp_path):
    """``benchmarks/gpu_check.py --small``: every section of the report, finite times, JSON and Markdown written."""
    import json

    import gpu_check  # noqa: E402 (benchmarks/ is on sys.path above)

    report = gpu_check.main(["--small", "--out", str(tmp_path), "--device", "cpu", "--threads", "1", "--repeats", "1",
                             "--pairs", "1", "--steps", "2", "--samples", "4"])  # fmt: skip
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["preset"] == "tiny" and saved["device"] == "cpu"
    assert set(saved["teacher_forward_ms"]) == {"float32", "bfloat16"}
    assert all(math.isfinite(v) and v > 0 for v in saved["teacher_forward_ms"].values())
    assert saved["capture"]["samples"] == 8 and len(saved["distill"]["pairs"]) == 1
    assert set(saved["compact"]) == {"teacher", "min_gmacs", "min_gmacs_no_skip"}
    assert saved["compact"]["min_gmacs"]["gmacs_ratio"] > 1
    assert "| min_gmacs |" in (tmp_path / "gpu_check.md").read_text()
    assert report["compact"]["teacher"]["speedup"]["float32"] == 1.0
    sr = saved["sr_onestep"]
    assert sr["input_px"] == 32 and sr["output_px"] == [128, 128]
    assert set(sr["ms"]) == {"float32", "bfloat16"} and all(math.isfinite(v) and v > 0 for v in sr["ms"].values())
    assert "One-step SR x4" in (tmp_path / "gpu_check.md").read_text()
# -- the real NAS benchmark tables (benchmarks/table_landscapes.py, data in benchmarks/data) --------
def _scan_with_pandas(label):
    """The quality loss and cost of every configuration of table ``label``, read from its CSV(s) by pandas."""
    import pandas as pd
    from table_landscapes import DATA

    name = label.split("@")[0]
    if name == "macro":
        df = pd.read_csv(DATA / "nas_bench_macro_cifar10.csv", dtype={"arch": str})
        assert len(df) == 3**8 and df["arch"].is_unique
        return (df.loc[df["arch"] == "22222222", "mean_acc"].item() - df["mean_acc"]) / 100, df["flops"] / 1e6, df
    if name.startswith("graph-"):
        df = pd.read_csv(DATA / f"nas_bench_graph_{name.split('-')[1]}_chain.csv").dropna(subset=["perf"])
        assert len(df) == 9**4 - 1  # the all-skip tuple has no entry
    else:  # cell-<dataset>: the shared hash map joined with the dataset's table
        hashes = pd.read_csv(DATA / "nas_bench_graph_cell_hashes.csv.gz", dtype={"link": str})
        bench = pd.read_csv(DATA / f"nas_bench_graph_{name.split('-', 1)[1]}.csv.gz")
        assert len(bench) == 26_206 == bench["bench_hash"].nunique() == hashes["bench_hash"].nunique()  # the paper's count
        df = hashes.merge(bench, on="bench_hash", how="left", validate="many_to_one")
        assert len(df) == 9 * (9**4 - 1) and not df["perf"].isna().any()
    return df["perf"].max() - df["perf"], df["params_m"], df


@pytest.mark.parametrize("label", ["macro", "macro@q0.05", "graph-arxiv", "graph-cora@q0.2", "cell-citeseer", "cell-photo@q0.02"])
def test_table_optimum_matches_a_pandas_scan(label):
    """Each table's optimum (a scan of the landscape's table) equals an independent scan of the CSV with pandas;
    the teacher is proposed first, has zero quality loss and is feasible; every configuration has a row."""
    from table_landscapes import table_landscape

    land = table_landscape(label)
    loss, cost, df = _scan_with_pandas(label)
    assert len(df) == len(land.table)
    epsilon = loss.quantile(float(label.partition("@q")[2] or 0.1))
    assert land.epsilon == pytest.approx(epsilon)
    opt, cfg = land.optimum()
    assert opt == pytest.approx(cost[loss <= epsilon].min())
    assert land.quality(cfg) <= land.epsilon and land.cost(cfg) == opt
    teacher = land.space.default_config()
    assert land.quality(teacher) == 0.0 and land.cost(teacher) > opt
    assert land.prior() is None  # black-box landscapes


def test_cell_configurations_of_one_architecture_share_its_quality():
    """The benchmark's canonical hash merges isomorphic cells: every configuration of one architecture scores alike."""
    from table_landscapes import table_landscape

    land = table_landscape("cell-pubmed")
    loss, _, df = _scan_with_pandas("cell-pubmed")
    shared = df["bench_hash"].value_counts().index[0]
    same = df[df["bench_hash"] == shared]
    assert len(same) > 1
    for i, r in same.iterrows():
        cfg = {"links": r["link"], **{f"layer{k}": r[f"op{k}"] for k in range(4)}}
        assert land.quality(cfg) == pytest.approx(loss[i])


def test_graph_space_excludes_the_missing_architecture():
    from table_landscapes import table_landscape

    for label in ("graph-arxiv", "cell-pubmed"):
        land = table_landscape(label)
        all_skip = {b.path: "0123" if b.path == "links" else "skip" for b in land.space.blocks}
        assert not land.space.is_valid(all_skip)  # strategies never propose it ...
        assert land.cost(all_skip) == min(v[0] for v in land.table.values())  # ... but may price it


def test_run_on_the_tables(tmp_path):
    """run.py on the real tables at a tiny budget: every landscape and strategy summarised, regrets exact."""
    import run

    argv = ["--landscapes", "macro,graph-arxiv", "--seeds", "1", "--strategies", "random,evolution", "--budgets", "3,6"]
    assert run.main([*argv, "--out", str(tmp_path)]) == 0
    with open(tmp_path / "summary_macro_graph-arxiv.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["landscape"], r["strategy"]) for r in rows} == {(l, s) for l in ("macro", "graph-arxiv") for s in ("random", "evolution")}
    for r in rows:
        assert 0.0 <= float(r["median@6"]) <= float(r["median@3"]) < math.inf  # the teacher is feasible
    with pytest.raises(SystemExit, match="unknown landscape"):
        run.main([*argv, "--landscapes", "graph-nosuch", "--out", str(tmp_path)])


# -- the probe landscapes (benchmarks/probe_landscapes.py): classes the stress suite does not have --------
def _probe_arrays(land):
    rows = list(land.table.values())
    return np.array([r[0] for r in rows]), np.array([r[2] for r in rows])


def test_probe_landscapes_have_their_class_and_an_exact_optimum():
    """Each probe landscape: teacher first with quality 0 and feasible, the optimum a feasible cheaper configuration
    equal to an independent scan, and the property its class is built to have."""
    from probe_landscapes import PROBE, probe_landscape

    for name in PROBE:
        land = probe_landscape(name, 7)
        cost, quality = _probe_arrays(land)
        teacher = land.space.default_config()
        assert land.quality(teacher) == 0.0 and land.name == name
        opt, cfg = land.optimum()
        assert opt == pytest.approx(cost[quality <= land.epsilon].min()) and opt < land.cost(teacher)
        assert land.quality(cfg) <= land.epsilon and land.cost(cfg) == opt
        feasible = np.mean(quality <= land.epsilon)
        if name == "unordered":  # some option dearer than the teacher, some cell better than the teacher
            assert (cost > land.cost(teacher)).any() and (quality < 0).any()
        elif name == "plateau":  # quantised: few distinct qualities, epsilon on a step
            assert len(np.unique(quality)) < 40 and (quality == land.epsilon).any()
        elif name == "product":  # bounded by 1, the prior is each cell's single-swap quality
            assert quality.max() < 1.0 and feasible == pytest.approx(0.25, abs=0.01)
            block = land.space.blocks[3]
            single = land.quality({**teacher, block.path: block.names[2]})
            assert land.prior()[block.path][block.names[2]] == pytest.approx(single)
        elif name == "wide":
            assert [len(b.names) for b in land.space.blocks] == [10] * 4 and land.prior() is None
        elif name == "binary":  # the prior is the square of each block's single-drop damage
            assert [len(b.names) for b in land.space.blocks] == [2] * 16
            block = land.space.blocks[5]
            single = land.quality({**teacher, block.path: "drop"})
            assert land.prior()[block.path]["drop"] == pytest.approx(single**2)
        elif name == "tight":
            assert int((quality <= land.epsilon).sum()) == 8
        elif name == "loose":
            assert feasible == pytest.approx(0.8, abs=0.01)


def test_run_on_probe_instances(tmp_path):
    """``--landscapes probe`` names every probe landscape; a member alone with ``--instances`` meets instance
    landscape-seed + s (NAME@inst), like the stress family."""
    import argparse
    import json

    import run
    from probe_landscapes import PROBE, probe_landscape

    ns = argparse.Namespace(instances=False, landscape_seed=0)
    assert [land.name for land in run.landscapes_for("probe", 0, ns)] == list(PROBE)
    argv = ["--landscapes", "wide,tight", "--budgets", "2", "--seeds", "2", "--strategies", "random", "--instances",
            "--landscape-seed", "4", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    optima = json.loads((tmp_path / "optima_wide_tight.json").read_text())
    for name in ("wide", "tight"):
        want = [probe_landscape(name, s).optimum()[0] for s in (4, 5)]
        assert [r["optimum"] for r in optima[f"{name}@inst"]] == pytest.approx(want)


def test_table_structure_tells_neighbour_from_distant_interactions():
    """benchmarks/table_structure.py: on a landscape whose damage is one-hot plus a neighbour-pair interaction the
    neighbour features fit it exactly and the additive ones do not; an interaction between the first and the last
    block is fitted exactly only by all pairs. The optimum's fitted value follows."""
    from landscapes import EnumeratedLandscape
    from table_structure import structure

    from tocsr_nas.searchspace import SearchSpace

    space = SearchSpace.from_choices({f"b{i}": ["t", "x", "y"] for i in range(4)})
    rng = np.random.default_rng(0)
    single = rng.uniform(0.0, 1.0, (4, 3))
    single[:, 0] = 0.0

    def land(a: int, b: int) -> EnumeratedLandscape:
        table = {}
        for cfg in space.enumerate():
            idx = space.encode(cfg)
            q = single[np.arange(4), idx].sum() + (2.0 if idx[a] == 1 and idx[b] == 2 else 0.0)
            table[cfg.to_json()] = (float(8 - sum(i > 0 for i in idx)), 0.0, float(q))
        return EnumeratedLandscape(f"pair{a}{b}", space, table, 1.0)

    near = structure(land(1, 2))
    assert near["neighbours"]["r2"] == pytest.approx(1.0, abs=1e-6) and near["additive"]["r2"] < 0.99
    far = structure(land(0, 3))
    assert far["neighbours"]["r2"] < 0.99 and far["all pairs"]["r2"] == pytest.approx(1.0, abs=1e-6)
    _, best = land(0, 3).optimum()
    assert far["all pairs"]["at_optimum"] == pytest.approx(land(0, 3).quality(best), abs=1e-4)
    assert all(0.0 <= r["label_accuracy"] <= 1.0 for r in far.values())
