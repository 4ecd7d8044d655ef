"""benchmarks/ecbo_trace.py: one traced ecbo search prints, per evaluation, the fit's prediction at the optimum."""

from __future__ import annotations

import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import ecbo_trace  # noqa: E402


def test_the_trace_prints_the_models_prediction_at_the_optimum(capsys):
    assert ecbo_trace.main(["--landscape", "deadpath", "--seed", "0", "--budget", "3"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "model at optimum" in line]
    assert len(lines) == 3
    assert lines[0].endswith("model at optimum -")  # the teacher comes first: no fit yet
    for line in lines[1:]:  # every later proposal follows a fit: mean +- sd over the threshold
        mu, sd = re.search(r"model at optimum\s+(-?[\d.]+) \+- ([\d.]+)$", line).groups()
        assert float(sd) > 0
