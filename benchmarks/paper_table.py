"""The paper-scale table of docs/BENCHMARKS.md: sd21-vae16 at 512 px, params and GMACs.

Rows: the teacher UNet; the smallest configuration (fewest GMACs, every block at its cheapest
candidate); the configuration ecbo finds on landscape B (synthetic quality, see landscapes.py)
at several epsilons, next to B's exact optimum where it is cached; the configuration closest
to the paper's 130M-parameter UNet; the 16-channel VAE encoder and decoder (fvcore, batch 1).

Run (writes ``benchmarks/results/paper_table.csv`` and prints a markdown table)::

    .venv/bin/python benchmarks/paper_table.py [--budget 80] [--epsilons 0.02,0.05,0.1] [--no-vae]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import B_OPTIMA, RESULTS, paper_landscape  # noqa: E402
from run import run_search  # noqa: E402

PAPER_UNET_PARAMS = 130e6


def closest_to_params(land, table, target: float) -> dict[str, str]:
    """Greedy: from the teacher, apply the block swap that saves most params per unit of landscape-B damage until <= target."""
    idx = [0] * len(land.space.blocks)
    params = lambda x: table.params(land.space.decode(x))  # noqa: E731
    while params(idx) > target:
        best, best_ratio = None, -math.inf
        p0, q0 = params(idx), land.structured_idx(idx)
        for b, block in enumerate(land.space.blocks):
            for k in range(len(block.choices)):
                x = list(idx)
                x[b] = k
                saved = p0 - params(x)
                if saved <= 0:
                    continue
                ratio = saved / max(land.structured_idx(x) - q0, 1e-12)
                if ratio > best_ratio:
                    best, best_ratio = x, ratio
        if best is None:
            break
        idx = best
    return dict(land.space.decode(idx))


def row(label: str, table, config, note: str = "", command: str = "") -> dict:
    with_att = table.cost(config, count_attention=True)
    without = table.cost(config, count_attention=False)
    changed = sum(1 for v in config.values() if v != "teacher")
    return {"model": label, "params_M": with_att.params / 1e6, "gmacs": with_att.gmacs,
            "gmacs_no_attention": without.gmacs, "blocks_changed": changed, "note": note}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=int, default=80)
    p.add_argument("--epsilons", default="0.02,0.05,0.1")
    p.add_argument("--seed", type=int, default=0, help="search seed")
    p.add_argument("--no-vae", action="store_true", help="skip the VAE traces (build the sd21-vae16 teacher: ~1 min)")
    p.add_argument("--out", default=str(RESULTS / "paper_table.csv"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(1)
    land, table = paper_landscape()
    rows = [row("teacher UNet (SD2.1 layout, 16-ch latent)", table, {})]
    smallest, _ = table.min_cost("gmacs")
    rows.append(row("smallest configuration (cheapest candidate everywhere)", table, smallest))
    keep_all, _ = table.min_cost("gmacs", exclude=("skip",))
    rows.append(row("smallest keeping every block (no skip)", table, keep_all))
    optima = json.loads(Path(B_OPTIMA).read_text()) if Path(B_OPTIMA).is_file() else {}
    found = {}
    for eps in (float(e) for e in args.epsilons.split(",")):
        le = land.with_epsilon(eps)
        t0 = time.perf_counter()
        res = run_search(le, "ecbo", args.seed, args.budget)
        best_cost, cfg = res["curve"][-1], dict(res["best_config"])
        key = f"seed=0|epsilon={eps:g}|budget_fraction=0.12"
        note = f"ecbo, {args.budget} evaluations, seed {args.seed}, {time.perf_counter() - t0:.0f} s"
        if key in optima:
            note += f"; exact optimum {optima[key]['gmacs']:.1f} GMACs (regret {100 * (best_cost / optima[key]['gmacs'] - 1):.1f}%)"
        rows.append(row(f"landscape B, epsilon {eps:g}: found by ecbo", table, cfg, note))
        found[eps] = cfg
    near = closest_to_params(land, table, PAPER_UNET_PARAMS)
    rows.append(row("closest to the paper's 130M UNet (greedy params/damage on B)", table, near))
    if not args.no_vae:
        from tocsr_nas.evaluators import count_complexity
        from tocsr_nas.teacher import build_teacher

        vae = build_teacher("sd21-vae16").vae.eval()
        x = torch.zeros(1, 3, 512, 512)  # (B, 3, H, W)
        z = torch.zeros(1, vae.config.latent_channels, 64, 64)  # (B, 16, h, w)
        with torch.no_grad():
            enc = count_complexity(vae.encoder, x)
            dec = count_complexity(vae.decoder, z)
        for label, c in (("VAE encoder (16-ch latent), 512 px in", enc), ("VAE decoder (16-ch latent), 64x64 latent in", dec)):
            rows.append({"model": label, "params_M": c.params / 1e6, "gmacs": c.gmacs, "gmacs_no_attention": math.nan,
                         "blocks_changed": "", "note": "count_complexity(vae.encoder/decoder); attention counted"})
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Path(args.out).with_suffix(".configs.json").write_text(json.dumps(
        {"smallest": smallest, "keep_all": keep_all, "closest_130M": near,
         **{f"ecbo_epsilon_{e:g}": c for e, c in found.items()}}, indent=1, sort_keys=True))
    print("| model | params (M) | GMACs (attention counted) | GMACs (fvcore default, no attention) | blocks changed | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_M']:.1f} | {r['gmacs']:.1f} | {r['gmacs_no_attention']:.1f} | {r['blocks_changed']} | {r['note']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
