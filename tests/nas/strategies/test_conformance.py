"""The conformance kit (``tocsr_nas.strategies.testing``) on every registered strategy.

Every check of :data:`~tocsr_nas.strategies.testing.CHECKS` on the 8-block x 3-option landscape
of ``small()``: the teacher comes first, nothing inadmissible or repeated is ever proposed, the
same seed gives the same trials, the state round-trips through JSON into a fresh instance, failed
evaluations are survived, and a tiny space is exhausted cleanly. Plus: the runner names the check
a broken strategy fails.
"""

from __future__ import annotations

import random

import pytest
from tocsr_nas.strategies.testing import CHECKS, FAST_OPTIONS, one_torch_thread, run_conformance

from tocsr_nas.strategies import Strategy, available_strategies, base, register_strategy

#: Ax spends about 10 CPU-seconds per check even in its Sobol phase (imports, its experiment
#: bookkeeping): all nine checks are marked slow; tests/nas/strategies/test_ax.py runs three unmarked
STRATEGIES = [pytest.param(n, marks=pytest.mark.slow) if n == "ax" else n for n in available_strategies()]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", STRATEGIES)
def test_conformance(name, check):
    CHECKS[check](name, FAST_OPTIONS.get(name))


def test_runner_names_the_failed_check(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the broken strategy stays in this test

    @register_strategy("test-unseeded")
    class Unseeded(Strategy):
        def _propose(self, n, rng):
            return self._random_unseen(random.Random(), n)  # ignores the seed

    run_conformance("test-unseeded", checks=["teacher_first", "unknown_option"])  # these it passes
    with pytest.raises(AssertionError, match="'test-unseeded' fails conformance check 'same_seed_same_trials'"):
        run_conformance("test-unseeded")
    with pytest.raises(KeyError, match="no_such_check"):
        run_conformance("random", checks=["no_such_check"])
