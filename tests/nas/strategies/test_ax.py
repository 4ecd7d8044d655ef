"""The ``ax`` strategy (Ax's Client with an outcome constraint): conformance, BoTorch steps, a missing Ax.

Skipped where ax-platform is not installed (the strategy is not registered there). The checks
run Ax's Sobol phase (``FAST_OPTIONS["ax"]``); one slow test takes it through BoTorch steps.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from tocsr_nas.strategies.testing import FAST_OPTIONS, build, drive, one_torch_thread, run_conformance, small

from tocsr_nas.strategies import StrategyError, available_strategies

pytestmark = pytest.mark.skipif("ax" not in available_strategies(), reason="ax-platform is not installed")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def test_conformance_subset():
    """Teacher first, failed evaluations survived, unknown options refused (all nine checks: test_conformance, slow)."""
    run_conformance("ax", FAST_OPTIONS["ax"], checks=["teacher_first", "failed_evaluations", "unknown_option"])


def test_options_are_checked():
    with pytest.raises(StrategyError, match="initialization_budget"):
        build("ax", small().problem(), options={"initialization_budget": 0})


@pytest.mark.slow
def test_botorch_steps_respect_the_contract():
    """Past a 2-trial initialisation (the teacher counts), BoTorch proposes distinct admissible configurations,
    and Ax was given the constraint at the primary epsilon."""
    land = small()
    bound = 0.9 * land.cost(land.space.default_config())
    strategy = build("ax", land.problem(max_cost=bound, epsilons=(0.03, 0.05)), seed=1, options={"initialization_budget": 2})
    trials = drive(strategy, land, 4)
    assert len(set(trials)) == 4 and all(land.cost(c) <= bound for c in trials)
    [constraint] = strategy.client._experiment.optimization_config.outcome_constraints
    assert list(constraint.metric_names) == ["quality"] and constraint.bound == pytest.approx(0.03) and not constraint.relative
    assert len(strategy.client._experiment.trials) >= 4  # Ax saw every evaluation (skipped repeats included)


def test_missing_ax_is_a_clear_error(monkeypatch):
    from tocsr_nas.strategies.adapters import ax as adapter

    monkeypatch.setitem(sys.modules, "ax", None)  # import ax -> ImportError
    with pytest.raises(StrategyError, match=r"pip install .*tocsr-nas\[bench\]"):
        adapter.require_ax()


def test_listing_the_strategies_does_not_import_ax():
    code = "import sys; from tocsr_nas.strategies import available_strategies as a; assert 'ax' in a(); print('ax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
