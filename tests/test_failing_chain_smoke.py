"""benchmarks/failing_chain.py: ecbo with failures_far off and on, on a chain whose cheap region fails."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import failing_chain  # noqa: E402


def test_the_landscape_fails_where_it_says_and_has_a_feasible_optimum():
    land = failing_chain.failing_chain(0)
    failed = [c for c in land.space.enumerate() if math.isnan(land.quality(c))]
    assert failed and all((land.idx(c) >= 2).sum() >= land.cheap for c in failed)
    assert math.isfinite(land.optimum())


def test_the_script_prints_both_settings_per_seed_and_the_medians(capsys):
    assert failing_chain.main(["--seeds", "1", "--budget", "10"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"failures_far=(true|false)\s+@10:\s+(-?[\d.]+)%", out)
    assert [r[0] for r in rows] == ["false", "true", "false", "true"]  # seed 0 twice, then the medians
    assert all(float(r[1]) >= 0.0 for r in rows)  # a regret: never below the exact optimum
