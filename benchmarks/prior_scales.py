"""How a surrogate library's prior maps onto the search's quality, block by block.

The prior ``tocsr-nas search`` hands to the strategy is each candidate's distillation loss,
normalised (:func:`tocsr_nas.search.setup.normalised_prior`). Each loss is measured on its own
block's output features, so its units differ from block to block. This script evaluates every
single change from the teacher (one block replaced, the others the teacher's) with the search's
quality, and prints:

* the rank correlation between prior and damage over all cells, and its mean within blocks;
* each block's scale: the median of damage / prior over its options, and the spread of the scales
  (largest / smallest) across blocks.

A prior that ranks the options within each block but has a different scale per block is the case
for ``ecbo``'s per-block prior scales (option ``prior_block_scale``, model ``linear+prior+blocks``).
With ``--trials`` (a search's ``trials.csv`` on the same teacher and library) it also sets each
trial's quality beside the sum of its blocks' single-change damages: how additive the damage is.

    .venv/bin/python benchmarks/prior_scales.py --teacher RUN/teacher --surrogates RUN/surrogates [--cells] \
        [--trials RUN/search/trials.csv]

One evaluation per (block, option): 87 on ``make demo``'s library, about 20 s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from tocsr_nas.search.setup import prepare_search


def single_changes(teacher: Path, surrogates: Path, val_samples: int = 32) -> pd.DataFrame:
    """Every one-block change from the teacher: ``block, option, prior, damage`` (the search's quality)."""
    prepared = prepare_search(teacher=teacher, surrogates=surrogates, val_samples=val_samples)
    if prepared.prior is None:
        raise SystemExit("the library gives no prior")
    base = prepared.space.teacher_config()
    rows = []
    for block in prepared.space.blocks:
        for name in block.names[1:]:
            config = {**base, block.path: name}
            rows.append({"block": block.path, "option": name, "prior": prepared.prior[block.path][name],
                         "damage": float(prepared.quality(config))})
    cells = pd.DataFrame(rows)
    cells.attrs["teacher"] = dict(base)  # each block's teacher option (additivity: unchanged blocks)
    return cells


def block_scales(cells: pd.DataFrame) -> pd.DataFrame:
    """Per block: the median damage / prior over its options (cells whose prior is 0 left out), and the
    rank correlation of prior and damage within the block (blocks with >= 3 options)."""
    out = []
    for block, g in cells.groupby("block", sort=False):
        pos = g[g["prior"] > 0]
        scale = float((pos["damage"] / pos["prior"]).median()) if len(pos) else np.nan
        rho = float(spearmanr(g["prior"], g["damage"])[0]) if len(g) >= 3 and g["prior"].nunique() > 1 else np.nan
        out.append({"block": block, "options": len(g), "scale": scale, "spearman": rho})
    return pd.DataFrame(out)


def additivity(cells: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Each trial that changes two blocks or more: its quality, the sum of its single-change damages and their ratio.

    ``cells.attrs["teacher"]`` names each block's teacher option (:func:`single_changes` sets it).
    """
    damage = {(r.block, r.option): r.damage for r in cells.itertuples()}
    teacher = cells.attrs.get("teacher", {})
    rows = []
    for t in trials.itertuples():
        changed = [(b, o) for b, o in json.loads(t.config).items() if o != teacher.get(b)]
        unknown = [f"{b}={o}" for b, o in changed if (b, o) not in damage]
        if unknown:
            raise SystemExit(f"trial {t.trial}: {', '.join(unknown)} not in this library's space (another teacher or library?)")
        if len(changed) >= 2 and np.isfinite(t.quality):
            total = sum(damage[c] for c in changed)
            rows.append({"trial": t.trial, "changed": len(changed), "quality": t.quality, "sum_of_singles": total,
                         "ratio": t.quality / total if total > 0 else np.nan})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--surrogates", type=Path, required=True)
    p.add_argument("--val-samples", type=int, default=32)
    p.add_argument("--cells", action="store_true", help="print every cell")
    p.add_argument("--trials", type=Path, help="a search's trials.csv (same teacher, library and validation samples)")
    args = p.parse_args(argv)
    cells = single_changes(args.teacher, args.surrogates, args.val_samples)
    if args.cells:
        print(cells.sort_values("damage").round(5).to_string(index=False))
    blocks = block_scales(cells)
    print(blocks.round(4).to_string(index=False))
    scales = blocks["scale"][blocks["scale"] > 0]
    print(f"{len(cells)} cells in {len(blocks)} blocks; rank correlation of prior and damage: "
          f"{spearmanr(cells['prior'], cells['damage'])[0]:.2f} over all cells, "
          f"{blocks['spearman'].mean():.2f} within blocks (mean)")
    if len(scales):
        print(f"damage / prior per block: {scales.min():.3g} to {scales.max():.3g} ({scales.max() / scales.min():.3g}x)")
    if args.trials is not None:
        joint = additivity(cells, pd.read_csv(args.trials, dtype={"hash": str}))
        print(joint.round(4).to_string(index=False))
        r = joint["ratio"].dropna() if len(joint) else pd.Series(dtype=float)
        if len(r):
            print(f"quality / sum of single-change damages over {len(r)} trials: median {r.median():.2f}, "
                  f"{r.min():.2f} to {r.max():.2f}")
        else:
            print("no trial of two blocks or more with a positive sum of single-change damages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
