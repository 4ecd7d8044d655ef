"""Can ecbo's model class describe a table landscape at all? Least squares on the whole table.

A diagnosis, not a search: every configuration of an enumerated landscape (a real table of
``table_landscapes.py``, or a stress / probe landscape) is fitted at once, with the full table as
data, by ridge-regularised least squares on three feature sets:

* ``additive``: one-hot per block (each block's option adds its own damage);
* ``neighbours``: plus one-hot pairs of neighbouring blocks (``b``, ``b + 1``), the linear part of
  ecbo's quality model (:class:`~tocsr_nas.strategies.ecbo.features.ConfigFeatures`) and the
  structure its chain tables can search exactly;
* ``all pairs``: plus one-hot pairs of every two blocks (what a model would need where one block,
  e.g. a cell's link pattern, changes how every other block acts).

The target is ``min(q / epsilon, CLIP)`` (the threshold at 1; far failures clipped, as ecbo's
hinge warp tames them). Printed per landscape and feature set: R^2; how well the fit labels the
configurations near the threshold (target within ``[1/3, 3]``) feasible or infeasible, as balanced
accuracy (the mean of the shares right among the feasible and among the infeasible ones, so that
a fit calling everything infeasible scores 50%); and the fit's value at the true optimum (truly <= 1). With all the data, a
feature set that still misses the labels is a model class that cannot describe the landscape,
whatever the budget (docs/BENCHMARKS.md section 7, "Confirmation tables").

    .venv/bin/python benchmarks/table_structure.py --landscapes cell-physics@q0.02,cell-cs,graph-arxiv,macro
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import lsqr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import EnumeratedLandscape  # noqa: E402

#: the target's ceiling, in epsilon (ecbo's FAR)
CLIP = 10.0
#: ridge strength (the fits are over thousands of rows; this only breaks the one-hot's collinearity)
DAMP = 1e-3


def _design(idx: np.ndarray, card: np.ndarray, pairs: list[tuple[int, int]]) -> sparse.csr_matrix:
    """One-hot columns per block, then one-hot columns per listed block pair, plus an intercept."""
    n, B = idx.shape
    cols, width = [np.zeros(n, np.int64)], 1  # the intercept
    for b in range(B):
        cols.append(width + idx[:, b])
        width += int(card[b])
    for a, b in pairs:
        cols.append(width + idx[:, a] * int(card[b]) + idx[:, b])
        width += int(card[a] * card[b])
    c = np.stack(cols, axis=1)
    rows = np.repeat(np.arange(n), c.shape[1])
    return sparse.csr_matrix((np.ones(c.size), (rows, c.reshape(-1))), shape=(n, width))


def structure(land: EnumeratedLandscape) -> dict[str, dict[str, float]]:
    """Per feature set: ``r2``, ``label_accuracy`` (balanced, near the threshold), ``at_optimum`` (the fit there) and ``columns``."""
    space = land.space
    configs = list(space.enumerate())
    idx = np.array([space.encode(c) for c in configs], dtype=np.int64)
    y = np.minimum(np.array([land.quality(c) for c in configs]) / land.epsilon, CLIP)
    card = np.array(space.cardinalities, dtype=np.int64)
    B = len(card)
    _, best = land.optimum()
    i_opt = configs.index(best)
    near = (y >= 1 / 3) & (y <= 3)
    sets = {"additive": [], "neighbours": [(b, b + 1) for b in range(B - 1)], "all pairs": list(combinations(range(B), 2))}
    out = {}
    for name, pairs in sets.items():
        X = _design(idx, card, pairs)
        w = lsqr(X, y, damp=DAMP, atol=1e-10, btol=1e-10, iter_lim=20_000)[0]
        pred = X @ w
        r2 = 1.0 - float(((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        feas, said = y[near] <= 1, pred[near] <= 1
        agree = 0.5 * (float(said[feas].mean()) + float((~said[~feas]).mean())) if feas.any() and (~feas).any() else float("nan")
        out[name] = {"r2": r2, "label_accuracy": agree, "at_optimum": float(pred[i_opt]), "columns": X.shape[1]}
    return out


def _landscape(label: str) -> EnumeratedLandscape:
    import run  # the benchmark's own landscape resolver (tables, stress, probe)

    found = run.landscapes_for(label, 0, argparse.Namespace(landscape_seed=0, instances=False))
    if len(found) != 1 or not isinstance(found[0], EnumeratedLandscape):
        raise SystemExit(f"{label!r}: not one enumerated landscape (a table of table_landscapes.py, or a probe landscape)")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--landscapes", default="cell-physics@q0.02,cell-cs,graph-arxiv,macro", help="comma list of enumerated landscapes")
    args = p.parse_args(argv)
    print("| landscape | features | columns | R^2 | labels near the threshold (balanced accuracy) | fit at the optimum (truly <= 1) |")
    print("|---|---|---|---|---|---|")
    for label in args.landscapes.split(","):
        land = _landscape(label.strip())
        for name, r in structure(land).items():
            print(f"| {land.name} | {name} | {r['columns']} | {r['r2']:.3f} | {r['label_accuracy']:.1%} | {r['at_optimum']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
