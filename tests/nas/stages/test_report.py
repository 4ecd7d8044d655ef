"""``report.md`` and the summaries: an epsilon whose best is the teacher says so, not ``1.00x``."""

import json

import pandas as pd

from tocsr_nas.commands.search import summary_text
from tocsr_nas.search.results import SearchResult
from tocsr_nas.stages.report import write_report

EPS = (0.05, 0.02, 0.1)
NO_GAIN = "no configuration cheaper than the teacher within epsilon 0.02"


def _result():
    # the teacher (trial 0, 4 GMACs) is the only trial within 0.02; 0.05 and 0.1 found cheaper ones
    points = [(4.0, 0.0), (2.0, 0.04), (1.0, 0.09)]
    rows = []
    for i, (g, q) in enumerate(points):
        row = {"trial": i, "strategy": "t", "config": json.dumps({"a": str(i)}, separators=(",", ":")),
               "hash": f"h{i}", "gmacs": g, "params": 1e6 * g, "quality": q, "seconds": 0.1}
        row.update({f"feasible@{e!r}": q <= e for e in EPS})
        row["feasible"] = row["feasible@0.05"]
        rows.append(row)
    return SearchResult(pd.DataFrame(rows), objective="gmacs", epsilons=EPS, strategy="t", seed=0,
                        teacher={"configuration": {"a": "0"}, "gmacs": 4.0, "params": 4e6})


def test_report_says_when_an_epsilon_found_nothing_cheaper_than_the_teacher(tmp_path):
    result = _result()
    (tmp_path / "search").mkdir()
    summary = result.to_summary()
    assert [summary["per_epsilon"][k]["beats_teacher"] for k in ("0.05", "0.02", "0.1")] == [True, False, True]
    (tmp_path / "search" / "best.json").write_text(json.dumps(summary))
    terminal = write_report(tmp_path, {})
    md = (tmp_path / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| best @ eps=0.02 |"))
    assert NO_GAIN in row and "1.00x" not in row
    assert "2.00x / 2.00x" in md and "4.00x / 4.00x" in md  # the real results keep their figures
    assert f"search best @ eps=0.02: {NO_GAIN}" in terminal.splitlines()
    assert "search best @ eps=0.1: 1.000 M params, 1.0000 GMACs" in terminal


def test_search_summaries_say_when_an_epsilon_found_nothing_cheaper_than_the_teacher():
    result = _result()
    printed = summary_text(result, seconds=1.0).splitlines()
    assert any(line.startswith(f"  epsilon 0.02: {NO_GAIN} (trial 0") for line in printed)
    assert any(line.startswith("  epsilon 0.05: 2.0000 GMACs (2.00x fewer)") for line in printed)
    lines = result.summary().splitlines()
    assert f"  epsilon 0.02: {NO_GAIN} (trial 0)" in lines
    assert not any("1.00x" in line for line in printed + lines)
