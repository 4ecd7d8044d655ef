"""How much does ecbo's block-scale model know about chain30 after N evaluations of a balanced design?

A diagnosis, not a search: for each instance, the teacher, the all-skip configuration and ``N``
random group cuts (each block changed with a probability drawn per row from ``[0.1, P]``, to a
uniformly random other option) are evaluated, and the model that ecbo chooses on chain30 after a
few evaluations (``linear+blocks-rbf``: linear warp, one-hot and neighbour-pair terms, the
per-block-scale term, no RBF; :func:`~tocsr_nas.strategies.ecbo.gp.fit_quality_gp`) is fitted to
them. Printed per instance and ``N``: the model's prediction at the true optimum (posterior mean
+- sd of ``q / epsilon``; the truth is about 1) and the Spearman rank correlation between the
predicted and the true damage of skipping each block alone, for the block shape ecbo uses (each
option's fraction of its block's cost removed) and for an oracle shape (the landscape's own
per-block damage profile): whether a balanced design could teach the model which blocks are
harmless within the budget (docs/BENCHMARKS.md section 5, "chain30: what a balanced design
teaches").

    .venv/bin/python benchmarks/chain30_information.py --instances 100-104 --designs 8,24,40,120
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import make_problem  # noqa: E402
from stress_landscapes import stress_landscape  # noqa: E402

from tocsr_nas.strategies import make_strategy  # noqa: E402
from tocsr_nas.strategies.ecbo.features import DTYPE, ConfigFeatures  # noqa: E402
from tocsr_nas.strategies.ecbo.gp import fit_quality_gp  # noqa: E402


def _range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=_range, default=_range("100-104"), help="chain30 instances, e.g. 100-104")
    p.add_argument("--designs", default="8,24,40,120", help="numbers N of random group cuts (comma-separated)")
    p.add_argument("--max-fraction", type=float, default=0.6, help="P: each row changes each block with probability U(0.1, P)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(n) for n in args.designs.split(",")]
    print("instance  N   mean q/eps | ecbo's shape: model at optimum, rank corr. | oracle shape: model at optimum, rank corr. | true q at optimum")
    for inst in args.instances:
        land = stress_landscape("chain30", inst)
        eps, B = land.epsilon, len(land.space.blocks)
        _, opt_cfg = land.optimum()
        optimum = np.array(land.space.encode(opt_cfg))
        shape_ecbo = make_strategy("ecbo", make_problem(land), seed=0)._features  # ecbo's block shape (no prior)
        oracle = {b.path: {n: float(land.damage[i][k] / max(land.damage[i])) for k, n in enumerate(b.names)}
                  for i, b in enumerate(land.space.blocks)}
        shape_oracle = ConfigFeatures(land.space, None, shared=False, block_shape=oracle)
        teacher = np.array(land.space.encode(land.space.default_config()))
        card = np.array([len(b.names) for b in land.space.blocks])
        single = np.tile(teacher, (B, 1))
        single[np.arange(B), np.arange(B)] = card - 1  # each block skipped alone (the last option)
        true_single = np.array([land.quality_idx(r) for r in single]) / eps
        rng = np.random.default_rng(inst)
        for n in sizes:
            frac = rng.uniform(0.1, args.max_fraction, size=(n, 1))
            cut = rng.random((n, B)) < frac
            other = (teacher[None, :] + 1 + np.floor(rng.random((n, B)) * (card - 1)[None, :]).astype(int)) % card[None, :]
            rows = np.concatenate([teacher[None], (card - 1)[None], np.where(cut, other, teacher[None, :])])
            y = torch.tensor([land.quality_idx(r) for r in rows], dtype=DTYPE) / eps
            line = f"{inst:8d} {n:4d}  {float(y[2:].mean()):6.2f}    "
            for feats in (shape_ecbo, shape_oracle):
                gp = fit_quality_gp(feats(rows), y, feats, use_pairs=True, use_rbf=False, use_prior=False,
                                    use_block_scale=True, mean=0.0)
                mu, var = gp.predict(feats(optimum[None]))
                rho = spearmanr(gp.predict(feats(single))[0].numpy(), true_single)[0]
                line += f"|  {float(mu[0]):5.2f} +- {float(var[0]) ** 0.5:4.2f}   {rho:5.2f}                      "
            print(line + f"|  {land.quality_idx(optimum) / eps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
