"""``benchmarks/chain30_information.py`` (docs/BENCHMARKS.md section 5) at its smallest setting, so it never rots."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import chain30_information  # noqa: E402


def test_more_design_points_bring_the_model_closer_to_the_optimum(capsys):
    """One instance, 4 and 120 random group cuts: with 120 the model's prediction at the optimum is
    nearer the truth (about 1 epsilon) and its block ranking better, for both block shapes."""
    assert chain30_information.main(["--instances", "100", "--designs", "4,120"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 2
    (few, few_o, truth), (many, many_o, _) = ([r[1], r[2], r[3]] for r in rows)
    q_true = float(truth)
    for a, b in ((few, many), (few_o, many_o)):
        (mu_a, _, _, rho_a), (mu_b, _, _, rho_b) = a.split(), b.split()
        assert abs(float(mu_b) - q_true) < abs(float(mu_a) - q_true)
        assert float(rho_b) > float(rho_a)
