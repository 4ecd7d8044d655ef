"""benchmarks/sweep_trace.py: a real ecbo search traced, its calibration per epsilon and the reductions per seed."""

from __future__ import annotations

import re

from tocsr_nas.strategies.ecbo.strategy import ECBO

import sweep_trace  # benchmarks/, importable through conftest.py


def test_the_trace_reports_calibration_and_reductions_per_epsilon(lib, capsys):
    original = ECBO._propose_one
    argv = ["--teacher", str(lib["teacher"]), "--surrogates", str(lib["surrogates"]), "--epsilon", "0.05,0.5",
            "--seeds", "1", "--budget", "10", "--val-samples", "2", "--after", "1", "--rows"]
    assert sweep_trace.main(argv) == 0
    assert ECBO._propose_one is original  # the recording is undone
    out = capsys.readouterr().out
    calibration = re.findall(r"epsilon (\S+): (\d+) proposals, predicted P\(feasible\) ([\d.]+), feasible (\d+)%", out)
    assert [c[0] for c in calibration] == ["0.05", "0.5"]
    assert sum(int(c[1]) for c in calibration) >= 1  # proposals after the teacher and the first random one
    assert all(0.0 <= float(c[2]) <= 1.0 and 0 <= int(c[3]) <= 100 for c in calibration)
    reductions = re.findall(r"epsilon (\S+): mean ([\d.]+)x, worst ([\d.]+)x", out)
    assert [r[0] for r in reductions] == ["0.05", "0.5"]
    assert all(float(r[2]) >= 1.0 for r in reductions)  # the teacher itself is feasible: never below 1.00x
    assert float(reductions[1][1]) >= float(reductions[0][1])  # a larger epsilon admits at least as cheap a model
