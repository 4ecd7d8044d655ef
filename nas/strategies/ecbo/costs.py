"""The known cost of configurations as choice-index rows, and its per-block deltas.

``ecbo`` works on choice-index rows ``(N, B)`` (:meth:`SearchSpace.encode`). The cost is known
and exact but may be slow, so :class:`KnownCost` caches it, tabulates the single swaps from the
teacher ``dc[b, k] = c(teacher with b=k) - c(teacher)`` and, when random probes show the cost to
be additive over blocks, costs whole matrices of rows from that table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

from tocsr_nas.searchspace import Configuration, SearchSpace

__all__ = ["KnownCost"]


class KnownCost:
    """Costs of index rows, with the table of single-swap cost deltas from the teacher.

    Args:
        space: the search space (row ``i`` holds block ``i``'s choice index).
        cost: the known cost of a configuration.
        seed: seeds the probes that check whether the cost is additive over blocks.

    Attributes:
        card: choices per block ``(B,)``.
        n_blocks: ``B``.
        kmax: the most choices of any block.
        valid_k: ``(B, Kmax)``, whether block ``b`` has choice ``k``.
        c0: the teacher's cost.
        dc: ``(B, Kmax)`` single-swap cost deltas from the teacher (``inf`` where invalid).
        additive: whether the cost is additive over blocks (then ``c0 + sum_b dc[b, x_b]`` is
            exact and :meth:`__call__` does not call ``cost``).

    Example:
        >>> from tocsr_nas.searchspace import SearchSpace
        >>> space = SearchSpace.from_choices({"a": ["t", "s"], "b": ["t", "s"]})
        >>> price = {"t": 2.0, "s": 0.5}
        >>> known = KnownCost(space, lambda c: sum(price[v] for v in c.values()), seed=0)
        >>> known.additive, known(np.array([[0, 1], [1, 1]])).tolist()
        (True, [2.5, 1.0])
    """

    def __init__(self, space: SearchSpace, cost: Callable[[Configuration], float], seed: int) -> None:
        self.space = space
        self._cost = cost
        self.card = np.array(space.cardinalities, dtype=np.int64)  # (B,)
        self.n_blocks = len(self.card)
        self.kmax = int(self.card.max())
        self.valid_k = np.arange(self.kmax)[None, :] < self.card[:, None]  # (B, Kmax)
        self._cache: dict[tuple[int, ...], float] = {}
        # per-block cost deltas of single swaps from the teacher: dc[b, k] = c(t with b=k) - c(t)
        base = np.zeros(self.n_blocks, dtype=np.int64)
        self.c0 = self.cost_of(base)
        self.dc = np.full((self.n_blocks, self.kmax), np.inf)  # (B, Kmax)
        for b in range(self.n_blocks):
            for k in range(self.card[b]):
                x = base.copy()
                x[b] = k
                self.dc[b, k] = self.cost_of(x) - self.c0
        self.additive = self._check_additive(random.Random(f"ecbo-additive|{seed}"))

    def cost_of(self, idx: np.ndarray) -> float:
        """The cost of one index row ``(B,)`` (cached)."""
        key = tuple(int(i) for i in idx)
        cost = self._cache.get(key)
        if cost is None:
            cost = float(self._cost(self.space.decode(key)))
            self._cache[key] = cost
        return cost

    def _check_additive(self, rng: random.Random, probes: int = 8) -> bool:
        for _ in range(probes):
            x = np.array([rng.randrange(k) for k in self.card])
            predicted = self.c0 + self.dc[np.arange(self.n_blocks), x].sum()
            if not math.isclose(predicted, self.cost_of(x), rel_tol=1e-9, abs_tol=1e-12 * max(1.0, abs(self.c0))):
                return False
        return True

    def saving_prior(self) -> dict[str, dict[str, float]]:
        """A prior derived from the cost alone: each cell's fraction of its block's cost removed.

        ``p[b, k] = (c(teacher) - c(teacher with b=k)) / max_k' (c(teacher) - c(teacher with b=k'))``
        (0 for the teacher's own choice, 1 for the block's cheapest; 0 in a block none of whose
        options saves cost), as ``block path -> candidate -> value``, the form of
        :attr:`~tocsr_nas.strategies.base.Problem.prior`. It encodes only "the cheaper a block's
        option, the more it is likely to damage"; the GP learns each block's scale from the data.

        Example:
            >>> from tocsr_nas.searchspace import SearchSpace
            >>> space = SearchSpace.from_choices({"a": ["t", "half", "skip"]})
            >>> price = {"t": 4.0, "half": 2.0, "skip": 0.0}
            >>> KnownCost(space, lambda c: price[c["a"]], seed=0).saving_prior()
            {'a': {'t': 0.0, 'half': 0.5, 'skip': 1.0}}
        """
        out: dict[str, dict[str, float]] = {}
        for b, block in enumerate(self.space.blocks):
            save = np.maximum(-self.dc[b, : self.card[b]], 0.0)
            top = float(save.max())
            out[block.path] = {name: (float(s) / top if top > 0 else 0.0) for name, s in zip(block.names, save)}
        return out

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        """Known costs of index rows ``(N, B)`` -> ``(N,)``."""
        if self.additive:
            return self.c0 + self.dc[np.arange(self.n_blocks)[None, :], idx].sum(axis=1)
        return np.array([self.cost_of(row) for row in idx])
