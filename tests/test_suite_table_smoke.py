"""benchmarks/suite_table.py: the suite's regret table from regret curves, later folders replacing earlier runs."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import suite_table  # noqa: E402


def _write(folder: Path, rows: list[tuple[str, str, int, list[float]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "regrets_x.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([[land, label, seed, *curve] for land, label, seed, curve in rows])
    return folder


def test_the_table_reads_medians_and_the_goals_name_every_miss(tmp_path, capsys):
    old = _write(tmp_path / "old", [("L", "ecbo", s, [0.5] * 40) for s in range(3)]
                 + [("L", "random", s, [1.0] * 20 + [0.2] * 20) for s in range(3)])
    # the newer folder replaces ecbo's runs: within 1% from evaluation 12 on two seeds of three
    new = _write(tmp_path / "new", [("L", "ecbo", 0, [0.3] * 11 + [0.0] * 29), ("L", "ecbo", 1, [0.3] * 11 + [0.0] * 29),
                                    ("L", "ecbo", 2, [0.3] * 40), ("L", "ecbo[x=1]", 0, [9.0] * 40)])
    out = tmp_path / "suite.md"
    assert suite_table.main([str(old), str(new), "--budgets", "10,20,40,80", "--out", str(out)]) == 0
    text = out.read_text()
    ecbo = next(line for line in text.splitlines() if line.startswith("| ecbo |"))
    # 3 seeds, 40 evaluations; @10 30%, @20 and @40 0% (median), @80 not run; to 1% median 12
    assert ecbo.split("|")[2:5] == [" 3 ", " 40 ", " 30.0% [30.0%, 30.0%] "]
    assert ecbo.split("|")[5].strip().startswith("0.0%") and ecbo.split("|")[7].strip() == "-"
    assert ecbo.split("|")[-2].strip() == "12"
    # goals: ecbo (30%, 0%, 0%) is ahead of random (100%, 100%, 20%) at 10, 20 and 40
    misses = text.split("Goals of ecbo not met")[1]
    assert "(0)" in misses
    # the variant is shown but not counted as a peer; a worse reference is reported
    assert "| ecbo[x=1] |" in text
    assert suite_table.main([str(old), "--budgets", "10,20,40", "--out", str(out)]) == 0
    misses = out.read_text().split("Goals of ecbo not met")[1]
    assert "at 40 evaluations 50.0% (goal <= 1%)" in misses
    assert "worse than random at 40: 50.0% against 20.0%" in misses
    assert "worse than random at 10" not in misses
