"""``ecbo``: epsilon-constrained Bayesian optimisation, the default strategy (see :mod:`.strategy`).

One file per job:

* :mod:`.strategy`: :class:`ECBO`, ask/tell, composing the parts below;
* :mod:`.options`: :class:`ECBOOptions`, every option, documented and validated;
* :mod:`.costs`: the known cost of choice-index rows and its per-block deltas;
* :mod:`.warp`, :mod:`.features`, :mod:`.kernel`, :mod:`.gp`: the quality model (output warp,
  feature map, structured kernel, the GP and its MAP fit);
* :mod:`.acquisition`: the score proposals maximise;
* :mod:`.pool`: the candidate-pool generators;
* :mod:`.local`: the trust region and hill climbing;
* :mod:`.chain_knapsack`: exact cost/damage frontiers of the chain model.
"""

from tocsr_nas.strategies.ecbo.options import ECBOOptions
from tocsr_nas.strategies.ecbo.strategy import ECBO

__all__ = ["ECBO", "ECBOOptions"]
