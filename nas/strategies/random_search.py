"""``random``: uniform admissible samples (after the teacher configuration, like every strategy)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import Strategy, register_strategy

__all__ = ["RandomSearch"]


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform random search over admissible, unseen configurations.

    Rejection sampling against ``problem.admissible``; when a small space runs low on unseen
    configurations it falls back to enumeration, and returns fewer (then none) when exhausted.

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> from tocsr_nas.strategies import Problem, make_strategy
        >>> space = SearchSpace.from_choices({"a": ["x", "y"], "b": ["x", "y"]})
        >>> s = make_strategy("random", Problem(space, cost=lambda c: 1.0, epsilons=(0.1,)))
        >>> len(s.ask(10))  # the space has only 4 configurations
        4
    """

    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        return self._random_unseen(rng, n)
