"""``exhaustive``: every admissible configuration in order of increasing known cost.

With the cost known exactly, the first configuration found feasible at ``e`` in this order is the
constrained optimum at ``e``; once every target epsilon has one, all remaining configurations are
dearer than a known optimum, so the strategy stops (``stop_when_solved``, on by default).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies.base import Problem, Strategy, StrategyError, register_strategy

__all__ = ["Exhaustive"]


@register_strategy("exhaustive")
class Exhaustive(Strategy):
    """Enumerate a small space, cheapest first (after the teacher), ties in enumeration order.

    Options:
        max_size: refuse spaces with more configurations than this (before constraints).
        stop_when_solved: return no more proposals once every epsilon has a feasible optimum.

    Raises:
        StrategyError: the space is larger than ``max_size``.

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> from tocsr_nas.strategies import Problem, make_strategy
        >>> space = SearchSpace.from_choices({"a": ["big", "small"], "b": ["big", "small"]})
        >>> cost = lambda c: sum(2.0 if v == "big" else 1.0 for v in c.values())
        >>> s = make_strategy("exhaustive", Problem(space, cost=cost, epsilons=(0.1,)))
        >>> [cost(c) for c in s.ask(4)]  # teacher first, then cheapest first
        [4.0, 2.0, 3.0, 3.0]
    """

    @dataclass(frozen=True)
    class Options:
        max_size: int = 200_000
        stop_when_solved: bool = True

        def __post_init__(self) -> None:
            if not (isinstance(self.max_size, int) and self.max_size >= 1):
                raise StrategyError(f"exhaustive: max_size must be a positive integer, got {self.max_size!r}")
            if not isinstance(self.stop_when_solved, bool):
                raise StrategyError(f"exhaustive: stop_when_solved must be true or false, got {self.stop_when_solved!r}")

    def __init__(self, problem: Problem, *, seed: int = 0, **options) -> None:
        super().__init__(problem, seed=seed, **options)
        size = self.space.size
        if size > self.options.max_size:
            raise StrategyError(
                f"exhaustive: the space has {size:.3g} configurations, more than max_size={self.options.max_size}; "
                "use a sampling strategy (ecbo, evolution, random) or restrict the space"
            )
        order = [(float(problem.cost(cfg)), i, cfg) for i, cfg in enumerate(self.space.enumerate(limit=size))]
        order.sort(key=lambda t: (t[0], t[1]))
        self._order = [cfg for _, _, cfg in order if problem.admissible(cfg)]
        self._costs = {cfg: c for c, _, cfg in order}
        self._cursor = 0  # everything before it is seen (a cache; recomputed lazily)

    def _solved(self) -> bool:
        """Every epsilon has a feasible told configuration no dearer than anything still untold."""
        untold = next((cfg for cfg in self._order if cfg not in self._told), None)
        if untold is None:
            return True
        c_next = self._costs[untold]
        for e in self.problem.epsilons:
            best = self.best_feasible(e)
            if best is None or best.cost > c_next:
                return False
        return True

    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        if self.options.stop_when_solved and self.history and self._solved():
            return []
        out: list[Configuration] = []
        while self._cursor < len(self._order) and self.is_seen(self._order[self._cursor]):
            self._cursor += 1
        i = self._cursor
        while len(out) < n and i < len(self._order):
            cfg = self._order[i]
            if not self.is_seen(cfg):
                out.append(cfg)
            i += 1
        return out
