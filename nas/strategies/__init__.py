"""Search strategies behind one ask/tell interface, registered by name.

Example:
    >>> from tocsr_nas.searchspace import SearchSpace
    >>> from tocsr_nas.strategies import Observation, Problem, make_strategy
    >>> space = SearchSpace.from_choices({"a": ["big", "small"], "b": ["big", "small"]})
    >>> cost = lambda c: sum(2.0 if v == "big" else 1.0 for v in c.values())
    >>> strategy = make_strategy("exhaustive", Problem(space, cost=cost, epsilons=(0.1,)))
    >>> [cfg] = strategy.ask()
    >>> strategy.tell([Observation(cfg, quality=0.0, cost=cost(cfg))])
    >>> "random" in available_strategies() and "ecbo" in available_strategies()
    True
"""

from importlib.util import find_spec as _find_spec

from tocsr_nas.strategies.base import (
    Observation,
    Problem,
    Strategy,
    StrategyError,
    available_strategies,
    get_strategy,
    make_strategy,
    register_strategy,
)
# the built-in strategies register themselves on import
from tocsr_nas.strategies import ecbo, evolution, exhaustive, random_search  # noqa: F401,E402
from tocsr_nas.strategies.adapters import nni as _nni  # noqa: F401,E402

if _find_spec("ax") is not None:  # optional, and Ax itself is imported only when an "ax" strategy is built
    from tocsr_nas.strategies.adapters import ax as _ax  # noqa: F401

try:  # optional: Optuna's samplers register only where optuna is installed
    from tocsr_nas.strategies.adapters import optuna as _optuna  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    pass

__all__ = [
    "Observation",
    "Problem",
    "Strategy",
    "StrategyError",
    "available_strategies",
    "get_strategy",
    "make_strategy",
    "register_strategy",
]
