"""Synthetic landscapes built to break a search strategy's assumptions, each with an exact optimum.

Every one has the interface of :mod:`landscapes` (``space``, ``cost``, ``quality``, ``epsilon``,
``prior()``, ``optimum()``), so :mod:`run` drives them like A and B (``--landscapes deadpath,...``
or ``--landscapes stress`` for all five). The enumerated ones hold every configuration of a small
space in memory (:class:`~landscapes.EnumeratedLandscape`, optimum by a scan); ``chain30`` is a
:class:`~landscapes.ChainLandscape` (optimum by its dynamic programme). Costs are additive: per
block ``w_b * frac_k``, the teacher (``k = 0``) dearest.

* ``deadpath`` (8 blocks x 4: 65,536 configurations): strongly non-additive. Blocks come in pairs;
  skipping a block costs little damage on its own, but a pair whose two blocks are both skipped,
  or one skipped and the other ``light``, is a dead path (quality 10 epsilon). The prior is the
  per-block damage measured in isolation (noisy), i.e. blind to the dead paths.
* ``range100`` (6 blocks x 5: 15,625): the quality range of a real NAS table: architectures with
  three or more ``pool``/``skip`` blocks, or the stem skipped, fail and score about 80 epsilon;
  the others are additive with neighbour interactions. No prior (a black-box table).
* ``chain30`` (30 blocks x 4, about 1e18): additive with neighbour interactions (the quality model
  of B) and no prior: the case where a warp that favours far values loses.
* ``failing`` (7 blocks x 4: 16,384): evaluations fail (quality ``nan``) for every configuration
  below 45% of the teacher's cost and wherever blocks 3 and 4 are both skipped; the cheapest
  feasible configurations lie at the edge of the failing region. A noisy, honest prior.
* ``misleading`` (8 blocks x 4: 65,536): additive with neighbour interactions, and a prior that is
  anti-correlated with the truth: the cells' true damages, handed out in reversed rank order (the
  prior calls the most damaging cell harmless and the most harmless one the most damaging).

Run ``python benchmarks/stress_landscapes.py`` for each landscape's size, epsilon, optimum and
the share of feasible / failed configurations.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import ChainLandscape, EnumeratedLandscape  # noqa: E402

from tocsr_nas.searchspace import Configuration, SearchSpace  # noqa: E402

__all__ = ["STRESS", "BlackBoxChain", "stress_landscape"]

#: the names ``--landscapes`` accepts (``stress`` = all of them)
STRESS = ("deadpath", "range100", "chain30", "failing", "misleading")

_OPTIONS4 = ["teacher", "half", "light", "skip"]
_FRAC4 = np.array([1.0, 0.5, 0.25, 0.0])


def _costs(rng: np.random.Generator, blocks: int, frac: np.ndarray) -> np.ndarray:
    """Additive per-block costs ``(B, K)``: a log-normal block weight times each option's fraction."""
    return rng.lognormal(0.0, 0.6, size=blocks)[:, None] * frac[None, :]


def _damage(rng: np.random.Generator, blocks: int, frac: np.ndarray) -> np.ndarray:
    """Per-block damages ``(B, K)`` (teacher 0), growing as the option gets cheaper, like B's model."""
    sens = rng.lognormal(0.0, 1.0, size=blocks)[:, None]
    power = rng.uniform(0.6, 2.0, size=blocks)[:, None]
    d = sens * (1.0 - frac[None, :]) ** power * rng.lognormal(0.0, 0.25, size=(blocks, len(frac)))
    d[:, 0] = 0.0
    return d


def _chain(d: np.ndarray, idx: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``sum_b d_b[x_b] + sum_b g_b sqrt(d_b[x_b] d_{b+1}[x_{b+1}])`` for index rows ``idx`` ``(N, B)``."""
    per = d[np.arange(d.shape[0])[None, :], idx]  # (N, B)
    root = np.sqrt(per)
    return per.sum(1) + (gain[None, :] * root[:, :-1] * root[:, 1:]).sum(1)


def _enumerate(name: str, choices: list[list[str]], cost: np.ndarray, quality: Callable[[np.ndarray], np.ndarray],
               epsilon: Callable[[np.ndarray], float] | float, prior: np.ndarray | None) -> EnumeratedLandscape:
    """Every configuration of ``choices`` with its additive cost and ``quality(idx)`` (``nan`` = failed)."""
    space = SearchSpace.from_choices({f"block{b}": c for b, c in enumerate(choices)}, name=name)
    idx = np.array(list(itertools.product(*[range(len(c)) for c in choices])), dtype=np.int64)  # (N, B)
    gmacs = cost[np.arange(len(choices))[None, :], idx].sum(1)
    q = quality(idx)
    eps = float(epsilon(q) if callable(epsilon) else epsilon)
    paths = [b.path for b in space.blocks]
    names = [b.names for b in space.blocks]
    table = {}
    for row, c, v in zip(idx.tolist(), gmacs.tolist(), q.tolist()):
        key = Configuration({p: names[b][k] for b, (p, k) in enumerate(zip(paths, row))}).to_json()
        table[key] = (c, 0.0, v)
    prior_table = None
    if prior is not None:
        prior_table = {p: {n: float(prior[b, k]) for k, n in enumerate(names[b])} for b, p in enumerate(paths)}
    return EnumeratedLandscape(name, space, table, eps, prior_table)


def _quantile_eps(fraction: float) -> Callable[[np.ndarray], float]:
    """epsilon = the ``fraction`` quantile of the finite qualities."""
    return lambda q: float(np.quantile(q[np.isfinite(q)], fraction))


def deadpath(seed: int = 0) -> EnumeratedLandscape:
    """Pairs of blocks: one may be skipped only while its partner stays (``teacher`` or ``half``)."""
    rng = np.random.default_rng(5000 + seed)
    B = 8
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    d = d / d[:, -1].sum()  # skipping every block alone: damage 1
    eps = 0.3  # a little under a third of the separately measured skip damage is affordable
    gain = rng.normal(0.2, 0.2, size=B - 1)

    def quality(idx: np.ndarray) -> np.ndarray:
        q = _chain(d, idx, gain)
        a, b = idx[:, 0::2], idx[:, 1::2]  # partners (0,1), (2,3), ...
        dead = ((a == 3) & (b >= 2)) | ((b == 3) & (a >= 2))
        return np.where(dead.any(1), 10.0 * eps * (1.0 + 0.1 * dead.sum(1)), q)

    prior = d * rng.lognormal(0.0, 0.3, size=d.shape)
    return _enumerate("deadpath", [_OPTIONS4] * B, cost, quality, eps, prior)


def range100(seed: int = 0) -> EnumeratedLandscape:
    """A 6 x 5 cell-like space where failed architectures score about 80 epsilon; no prior."""
    rng = np.random.default_rng(6000 + seed)
    B = 6
    frac = np.array([1.0, 0.6, 0.3, 0.05, 0.0])
    options = ["teacher", "conv3", "conv1", "pool", "skip"]
    cost, d = _costs(rng, B, frac), _damage(rng, B, frac)
    gain = rng.normal(0.4, 0.3, size=B - 1)

    def failed(idx: np.ndarray) -> np.ndarray:
        return ((idx >= 3).sum(1) >= 3) | (idx[:, 0] == 4)

    found: dict[str, float] = {}

    def quality(idx: np.ndarray) -> np.ndarray:
        q = _chain(d, idx, gain)
        ok = ~failed(idx)
        found["eps"] = eps = float(np.quantile(q[ok], 0.25))
        jitter = rng.uniform(-1.0, 1.0, size=len(q))
        return np.where(ok, q, 80.0 * eps * (1.0 + 0.05 * jitter))

    return _enumerate("range100", [options] * B, cost, quality, lambda q: found["eps"], None)


@dataclass
class BlackBoxChain(ChainLandscape):
    """A :class:`~landscapes.ChainLandscape` whose prior is withheld (``prior()`` is ``None``)."""

    def prior(self) -> None:  # type: ignore[override]
        return None


def chain30(seed: int = 0) -> BlackBoxChain:
    """30 blocks x 4 options, B's quality model (additive + neighbour interactions + hash noise), no prior."""
    rng = np.random.default_rng(7000 + seed)
    B = 30
    costs = _costs(rng, B, _FRAC4)
    space = SearchSpace.from_choices({f"block{b:02d}": list(_OPTIONS4) for b in range(B)}, name="chain30")
    land = ChainLandscape.from_costs("chain30", space, costs.tolist(), epsilon=0.05, budget_fraction=0.2, seed=seed)
    return BlackBoxChain(**{f: getattr(land, f) for f in land.__dataclass_fields__ if f != "_optimum"})


def failing(seed: int = 0) -> EnumeratedLandscape:
    """Evaluations fail (``nan``) below 45% of the teacher's cost and where blocks 3 and 4 are both skipped."""
    rng = np.random.default_rng(8000 + seed)
    B = 7
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    gain = rng.normal(0.4, 0.3, size=B - 1)
    teacher = cost[:, 0].sum()

    def quality(idx: np.ndarray) -> np.ndarray:
        q = _chain(d, idx, gain)
        c = cost[np.arange(B)[None, :], idx].sum(1)
        fail = (c < 0.45 * teacher) | ((idx[:, 3] == 3) & (idx[:, 4] == 3))
        return np.where(fail, np.nan, q)

    prior = d * rng.lognormal(0.0, 0.5, size=d.shape)
    return _enumerate("failing", [_OPTIONS4] * B, cost, quality, _quantile_eps(0.3), prior)


def misleading(seed: int = 0) -> EnumeratedLandscape:
    """Additive with neighbour interactions; the prior ranks every cell the wrong way round."""
    rng = np.random.default_rng(9000 + seed)
    B = 8
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    gain = rng.normal(0.4, 0.3, size=B - 1)
    # rank-reversed over all non-teacher cells: the least damaging cell gets the largest damage
    # of the table, and so on (anti-correlated, and not an affine map a model could invert)
    cells = d[:, 1:].ravel()
    prior = np.zeros_like(d)
    prior[:, 1:] = np.sort(cells)[::-1][np.argsort(np.argsort(cells))].reshape(B, -1)
    return _enumerate("misleading", [_OPTIONS4] * B, cost, lambda idx: _chain(d, idx, gain), _quantile_eps(0.2), prior)


_BUILDERS = {"deadpath": deadpath, "range100": range100, "chain30": chain30, "failing": failing, "misleading": misleading}


def stress_landscape(name: str, seed: int = 0):
    """The stress landscape ``name`` (one of :data:`STRESS`) drawn with ``seed``."""
    return _BUILDERS[name](seed)


def _describe() -> None:
    for name in STRESS:
        land = stress_landscape(name)
        opt, cfg = land.optimum()
        teacher = land.cost(land.space.default_config())
        line = f"{name}: {land.space.size:.3g} configurations, epsilon {land.epsilon:.4g}, optimum {opt:.4g} ({opt / teacher:.1%} of the teacher)"
        if isinstance(land, EnumeratedLandscape):
            q = np.array([v[2] for v in land.table.values()])
            fin = q[np.isfinite(q)]
            line += (f", feasible {np.mean(q <= land.epsilon):.1%}, failed (nan) {np.mean(~np.isfinite(q)):.1%},"
                     f" worst/epsilon {fin.max() / land.epsilon:.0f}")
        print(line)


if __name__ == "__main__":
    _describe()
