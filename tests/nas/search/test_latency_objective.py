"""``--objective latency``: a search that minimises the latency table's predicted milliseconds, its
bound ``--max-latency``, the trials' ``latency`` column, ``best.json``'s predicted and measured
milliseconds, resume, and the report's line. Toy costs for the loop, a micro library for the stage."""

from __future__ import annotations

import json
import math

import pytest

from search_toys import BLOCKS, OPTIONS, toy_gmacs, toy_params, toy_quality, toy_space
from tocsr_nas.cli import main
from tocsr_nas.errors import TocsrError
from tocsr_nas.search import search
from tocsr_nas.search.results import load_search

from micro_spaces import micro_space  # tests/micro_spaces.py

#: a "latency" that disagrees with GMACs: the half option is the fastest
MS = {"full": 4.0, "half": 0.5, "tiny": 1.5}


def toy_costs(cfg):
    return {"gmacs": toy_gmacs(cfg), "params": toy_params(cfg), "latency": sum(MS[v] for v in cfg.values())}


def test_latency_is_minimised_and_recorded(tmp_path):
    out = tmp_path / "s"
    result = search(toy_space(), quality=toy_quality, cost=toy_costs, epsilon=0.05, objective="latency",
                    strategy="exhaustive", out_dir=out, progress=False)  # fmt: skip
    feasible = [c for c in toy_space().enumerate() if toy_quality(c) <= 0.05]
    assert result.best.latency == min(toy_costs(c)["latency"] for c in feasible)
    assert "latency" in result.trials.columns and result.trials["latency"].notna().all()
    best = json.loads((out / "best.json").read_text())
    assert best["objective"] == "latency" and best["latency_predicted_ms"] == result.best.latency
    assert best["latency_measured_ms"] is None, "nothing timed the assembled model here"
    assert best["teacher"]["latency"] == len(BLOCKS) * MS["full"]
    again = load_search(out)
    assert again.best.latency == result.best.latency


def test_max_latency_is_a_hard_bound_and_survives_resume(tmp_path):
    out = tmp_path / "s"
    kw = dict(quality=toy_quality, cost=toy_costs, epsilon=0.05, objective="gmacs", strategy="random", seed=1,
              max_latency=6.0, out_dir=out, progress=False)  # fmt: skip
    first = search(toy_space(), budget=5, **kw)
    assert (first.trials["latency"] <= 6.0).all()
    resumed = search(toy_space(), budget=10, resume=True, **kw)
    assert len(resumed.trials) == 10 and (resumed.trials["latency"] <= 6.0).all()
    assert resumed.trials["latency"].notna().all(), "the journal keeps each trial's latency"
    with pytest.raises(TocsrError, match="max_latency|journal"):
        search(toy_space(), budget=12, resume=True, **{**kw, "max_latency": 7.0})


def test_latency_without_a_latency_cost_is_an_error():
    with pytest.raises(TocsrError, match="no 'latency'"):
        search(toy_space(), quality=toy_quality, cost=lambda c: {"gmacs": toy_gmacs(c)}, epsilon=0.05,
               objective="latency", budget=2, progress=False)  # fmt: skip


MICRO_SPACE = micro_space("micro", "attentions", "upsamplers")


def test_search_command_objective_latency_records_predicted_and_measured(saved_library, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOCSR_NAS_CACHE", str(tmp_path / "cache"))
    micro = saved_library(MICRO_SPACE, steps=2, samples=8, val_samples=4, capture_batch=8, batch_size=4)
    out = tmp_path / "search"
    argv = ["search", "--teacher", str(micro["teacher"]), "--surrogates", str(micro["surrogates"]), "--out", str(out),
            "--epsilon", "0.5", "--objective", "latency", "--budget", "3", "--strategy", "random", "--val-samples", "4",
            "--latency-repeats", "1", "--threads", "1", "--no-progress", "--device", "cpu", "--dtype", "bfloat16"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "predicted by the table" in printed and "measured end to end" in printed
    best = json.loads((out / "best.json").read_text())
    assert best["found"] and best["objective"] == "latency"
    for key in ("latency_predicted_ms", "latency_measured_ms"):
        assert math.isfinite(best[key]) and best[key] > 0, key
    settings = json.loads((out / "search.json").read_text())
    assert (settings["device"], settings["dtype"]) == ("cpu", "bfloat16")
    assert len(list((tmp_path / "cache").glob("latency-*bfloat16*.json"))) == 1
    # a resume on another dtype would mix milliseconds of two precisions
    assert main([*argv[:-2], "--dtype", "float32", "--resume"]) == 2
    assert "dtype" in capsys.readouterr().err


def test_report_shows_predicted_and_measured(tmp_path):
    from tocsr_nas.stages.report import write_report

    (tmp_path / "search").mkdir()
    best = {"objective": "latency", "strategy": "random", "n_trials": 3, "n_feasible": 3, "epsilon": 0.05,
            "latency_predicted_ms": 12.5, "latency_measured_ms": 11.0,
            "teacher": {"gmacs": 1.0, "params": 1e6, "quality": 0.0, "latency": 20.0}, "per_epsilon": {}}  # fmt: skip
    (tmp_path / "search" / "best.json").write_text(json.dumps(best))
    summary = write_report(tmp_path, {"stages": {}})
    text = (tmp_path / "report.md").read_text()
    assert "12.500 ms predicted" in text and "11.000 ms measured" in text and "teacher 20.000 ms" in text
    assert "12.500 ms predicted" in summary


def test_space_latency_prints_each_candidates_milliseconds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOCSR_NAS_CACHE", str(tmp_path / "cache"))
    space = tmp_path / "space.yaml"
    space.write_text(MICRO_SPACE)
    argv = ["space", "--space", str(space), "--latency", "--repeats", "1", "--threads", "1", "--device", "cpu", "--json"]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    cells = [c for b in report["blocks"] for c in b["candidates"]]
    assert cells and all(math.isfinite(c["ms"]) and c["ms"] > 0 for c in cells)
    lat = report["latency"]
    assert lat["device"] == "cpu(1threads)" and lat["dtype"] == "float32" and lat["batch"] == 1
    assert lat["min_ms"] <= lat["teacher_ms"]
    assert main(argv[:-1]) == 0  # the table view, from the cache
    assert "latency on cpu(1threads) float32" in capsys.readouterr().out
