"""Probe landscapes: classes of landscape the stress suite does not have, each with an exact optimum.

The stress landscapes (:mod:`stress_landscapes`) and the real tables are what ``ecbo``'s defaults
were developed on. Every one of them shares some assumptions: options ordered by cost with the
teacher dearest and damage growing as the option gets cheaper, a quality that is a sum over
blocks (plus neighbour terms), 4 to 5 options per block, epsilon near a quantile of 0.2 to 0.3,
and a prior that is either honest up to noise, anti-correlated, or absent. The probe landscapes
break one assumption each, to find failure modes before held-out landscapes do. Same interface
as :mod:`landscapes` (``space``, ``cost``, ``quality``, ``epsilon``, ``prior()``, ``optimum()``;
``run.py --landscapes probe`` or any name below, with ``--landscape-seed`` / ``--instances``).
Every one is an :class:`~landscapes.EnumeratedLandscape` (at most 65,536 configurations; optimum
by a scan); the cost is additive over blocks; the teacher (choice 0) has quality 0.

* ``unordered`` (6 blocks x 6 options: 46,656): options are unordered categories, as in a NAS
  cell table: each option's cost is a random fraction (0 to 1.4) of the teacher block's, so in
  most blocks some option is dearer than the teacher, and its damage is drawn independently of
  its cost (log-normal; 15% of cells slightly *better* than the teacher, negative damage). A cost
  never says which option is harmless. Neighbour interactions; no prior; epsilon the 0.15
  quantile.
* ``plateau`` (8 x 4: 65,536): quantised quality, like accuracy reported in steps: B's quality
  model rounded up to steps of epsilon / 3, so many configurations tie exactly and the feasible
  boundary is a step (a model sees flat regions and no gradient towards the threshold). Honest
  noisy prior.
* ``product`` (8 x 4: 65,536): multiplicative, compounding quality: accuracy is the product of
  per-block retentions, quality ``1 - prod_b r_b[x_b]``, with retentions low enough that many
  cheap configurations saturate near 1 (a range of only a few epsilon, where the additive suite
  spans up to 80 epsilon). The prior is each cell's exact single-swap quality ``1 - r_b[k]``:
  right in isolation, wrong by the compounding.
* ``wide`` (4 blocks x 10 options: 10,000): few blocks with many options (widths in tenths of the
  teacher's), damage decreasing with width but jittered (not monotone between adjacent widths)
  and strong neighbour interactions; no prior; epsilon the 0.1 quantile.
* ``binary`` (16 blocks x 2: 65,536): keep / drop per block (drop saves 70 to 100% of a block), a
  binary space with long chains of interactions; the prior is the square of each block's true
  drop damage (ranks right, magnitudes wrong: right only up to a monotone transform).
* ``tight`` (8 x 4: 65,536): a very tight epsilon: the feasible set is the 8 best configurations
  (the teacher among them), and the prior is random noise (uninformative). Every infeasible
  proposal is a wasted evaluation and most of the space is infeasible.
* ``loose`` (8 x 4: 65,536): a very loose epsilon (the 0.8 quantile): most configurations are
  feasible and the optimum lies far from the teacher (most blocks at their cheapest), many steps
  from where a teacher-first, trust-region search starts. Honest noisy prior.

Run ``python benchmarks/probe_landscapes.py`` for each landscape's size, epsilon, optimum and the
share of feasible configurations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import EnumeratedLandscape  # noqa: E402
from stress_landscapes import _FRAC4, _OPTIONS4, _chain, _costs, _damage, _enumerate, _quantile_eps  # noqa: E402

__all__ = ["PROBE", "probe_landscape"]

#: the names ``--landscapes`` accepts (``probe`` = all of them)
PROBE = ("unordered", "plateau", "product", "wide", "binary", "tight", "loose")


def _signed_chain(d: np.ndarray, idx: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """:func:`stress_landscapes._chain` for damages that may be negative: neighbours couple through their positive parts."""
    per = d[np.arange(d.shape[0])[None, :], idx]  # (N, B)
    root = np.sqrt(np.maximum(per, 0.0))
    return per.sum(1) + (gain[None, :] * root[:, :-1] * root[:, 1:]).sum(1)


def unordered(seed: int = 0) -> EnumeratedLandscape:
    """Unordered categorical options: costs in random order (some dearer than the teacher), damage independent of cost."""
    rng = np.random.default_rng(10000 + seed)
    B, K = 6, 6
    frac = np.concatenate([np.ones((B, 1)), rng.uniform(0.0, 1.4, size=(B, K - 1))], axis=1)
    cost = rng.lognormal(0.0, 0.6, size=B)[:, None] * frac
    sens = rng.lognormal(0.0, 1.0, size=B)[:, None]
    d = sens * rng.lognormal(0.0, 0.8, size=(B, K))
    better = rng.random((B, K)) < 0.15
    d = np.where(better, -0.1 * sens * rng.random((B, K)), d)
    d[:, 0] = 0.0
    gain = rng.normal(0.3, 0.3, size=B - 1)
    options = ["teacher", "op1", "op2", "op3", "op4", "op5"]
    return _enumerate("unordered", [options] * B, cost, lambda idx: _signed_chain(d, idx, gain), _quantile_eps(0.15), None)


def plateau(seed: int = 0) -> EnumeratedLandscape:
    """B's quality model rounded up to steps of epsilon / 3 (many exact ties, a stepped feasibility boundary)."""
    rng = np.random.default_rng(11000 + seed)
    B = 8
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    gain = rng.normal(0.4, 0.3, size=B - 1)
    found: dict[str, float] = {}

    def quality(idx: np.ndarray) -> np.ndarray:
        q = _chain(d, idx, gain)
        step = float(np.quantile(q, 0.2)) / 3.0
        found["eps"] = 3.0 * step
        return step * np.ceil(q / step - 1e-9)

    prior = d * rng.lognormal(0.0, 0.3, size=d.shape)
    return _enumerate("plateau", [_OPTIONS4] * B, cost, quality, lambda q: found["eps"], prior)


def product(seed: int = 0) -> EnumeratedLandscape:
    """Quality ``1 - prod_b r_b[x_b]``: compounding retentions that saturate; the prior is each cell's single-swap quality."""
    rng = np.random.default_rng(12000 + seed)
    B = 8
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    d = d / d[:, -1].sum() * 4.0  # every block at its cheapest: retention e^-4 (2%)
    retention = np.exp(-d)  # (B, 4), teacher 1

    def quality(idx: np.ndarray) -> np.ndarray:
        return 1.0 - retention[np.arange(B)[None, :], idx].prod(1)

    return _enumerate("product", [_OPTIONS4] * B, cost, quality, _quantile_eps(0.25), 1.0 - retention)


def wide(seed: int = 0) -> EnumeratedLandscape:
    """4 blocks x 10 widths; jittered, not always monotone damage; strong neighbour interactions; no prior."""
    rng = np.random.default_rng(13000 + seed)
    B = 4
    frac = np.linspace(1.0, 0.1, 10)
    cost = _costs(rng, B, frac)
    d = _damage(rng, B, frac) * rng.lognormal(0.0, 0.5, size=(B, len(frac)))
    d[:, 0] = 0.0
    gain = rng.normal(0.6, 0.3, size=B - 1)
    options = [f"w{round(100 * f)}" for f in frac]
    return _enumerate("wide", [options] * B, cost, lambda idx: _chain(d, idx, gain), _quantile_eps(0.1), None)


def binary(seed: int = 0) -> EnumeratedLandscape:
    """16 keep / drop blocks with neighbour interactions; the prior is the square of the true drop damages."""
    rng = np.random.default_rng(14000 + seed)
    B = 16
    frac = np.stack([np.ones(B), rng.uniform(0.0, 0.3, size=B)], axis=1)  # drop keeps 0 to 30% of the block
    cost = rng.lognormal(0.0, 0.6, size=B)[:, None] * frac
    d = np.zeros((B, 2))
    d[:, 1] = rng.lognormal(0.0, 1.0, size=B)
    gain = rng.normal(0.4, 0.3, size=B - 1)
    prior = d**2
    return _enumerate("binary", [["keep", "drop"]] * B, cost, lambda idx: _chain(d, idx, gain), _quantile_eps(0.1), prior)


def tight(seed: int = 0) -> EnumeratedLandscape:
    """Only the 8 best configurations are feasible; the prior is noise."""
    rng = np.random.default_rng(15000 + seed)
    B = 8
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    gain = rng.normal(0.4, 0.3, size=B - 1)
    prior = rng.lognormal(0.0, 1.0, size=d.shape)
    prior[:, 0] = 0.0
    eps = lambda q: float(np.sort(q)[7])  # noqa: E731
    return _enumerate("tight", [_OPTIONS4] * B, cost, lambda idx: _chain(d, idx, gain), eps, prior)


def loose(seed: int = 0) -> EnumeratedLandscape:
    """Epsilon at the 0.8 quantile: most configurations feasible, the optimum far from the teacher."""
    rng = np.random.default_rng(16000 + seed)
    B = 8
    cost, d = _costs(rng, B, _FRAC4), _damage(rng, B, _FRAC4)
    gain = rng.normal(0.4, 0.3, size=B - 1)
    prior = d * rng.lognormal(0.0, 0.3, size=d.shape)
    return _enumerate("loose", [_OPTIONS4] * B, cost, lambda idx: _chain(d, idx, gain), _quantile_eps(0.8), prior)


_BUILDERS = {"unordered": unordered, "plateau": plateau, "product": product, "wide": wide, "binary": binary,
             "tight": tight, "loose": loose}


def probe_landscape(name: str, seed: int = 0) -> EnumeratedLandscape:
    """The probe landscape ``name`` (one of :data:`PROBE`) drawn with ``seed``.

    Args:
        name: one of :data:`PROBE`.
        seed: the instance.

    Returns:
        The landscape (an :class:`~landscapes.EnumeratedLandscape` named ``name``).

    Raises:
        KeyError: ``name`` is not a probe landscape.
    """
    return _BUILDERS[name](seed)


def _describe(seed: int = 0) -> None:
    for name in PROBE:
        land = probe_landscape(name, seed)
        opt, cfg = land.optimum()
        teacher = land.cost(land.space.default_config())
        q = np.array([v[2] for v in land.table.values()])
        c = np.array([v[0] for v in land.table.values()])
        ties = 1.0 - len(np.unique(q)) / len(q)
        changed = sum(cfg[b.path] != b.names[0] for b in land.space.blocks)
        print(f"{name}: {land.space.size} configurations, epsilon {land.epsilon:.4g}, optimum {opt:.4g} "
              f"({opt / teacher:.1%} of the teacher, {changed} of {len(land.space.blocks)} blocks changed), "
              f"feasible {np.mean(q <= land.epsilon):.2%}, dearer than the teacher {np.mean(c > teacher):.1%}, "
              f"tied qualities {ties:.0%}, worst/epsilon {q.max() / land.epsilon:.1f}")


if __name__ == "__main__":
    _describe(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
