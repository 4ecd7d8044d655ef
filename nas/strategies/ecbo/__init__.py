"""``ecbo``: epsilon-constrained Bayesian optimisation, the default strategy (see :mod:`.strategy`).

One file per job: :mod:`.strategy` (ask/tell), :mod:`.gp` (the quality model),
:mod:`.acquisition` (the score proposals maximise), :mod:`.chain_knapsack` (exact frontiers of
the chain model).
"""

from tocsr_nas.strategies.ecbo.strategy import ECBO

__all__ = ["ECBO"]
