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
        mu, sd = re.search(r"model at optimum\s+(-?[\d.]+) \+- ([\d.]+)", line).groups()
        assert float(sd) > 0
        # the teacher is feasible: every later fit scores the proposal and the optimum by its acquisition
        assert re.search(r"acq prop\s+(-?[\d.]+|-?inf) opt\s+(-?[\d.]+|-?inf)$", line)


def test_the_landscape_seed_picks_the_instance(capsys):
    """--landscape-seed N traces instance N (run.py --instances pairs search seed s with instance N + s)."""
    optima = []
    for inst in (0, 101):
        assert ecbo_trace.main(["--landscape", "deadpath", "--landscape-seed", str(inst), "--budget", "1"]) == 0
        optima.append(re.search(r"optimum\s+(\[.*\])", capsys.readouterr().out).group(1))
    assert optima[0] != optima[1]


def test_the_trace_runs_on_a_probe_landscape_without_its_prior(capsys):
    """A probe landscape (benchmarks/probe_landscapes.py) by name; --no-prior withholds its prior."""
    assert ecbo_trace.main(["--landscape", "product", "--landscape-seed", "3", "--seed", "0", "--budget", "3", "--no-prior"]) == 0
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if "model at optimum" in line]) == 3
    assert "+prior" not in out  # no model with the prior terms: the prior was withheld
