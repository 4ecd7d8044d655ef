"""``tocsr-nas export``: the configuration a search chose, as a standalone compact UNet folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tocsr_nas.commands import add_component, add_out, non_negative_int, positive_float


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export``."""
    p = sub.add_parser(
        "export",
        help="write the searched configuration as a standalone compact UNet (config + safetensors)",
        description="Export a trial of a `tocsr-nas search` folder (by default the best feasible trial at the "
        "search's primary epsilon) as a compact UNet that `tocsr_nas.load_compact(DIR)` rebuilds without the "
        "teacher, the space or the surrogate library.",
    )
    p.add_argument("--search", type=Path, required=True, help="a `tocsr-nas search --out` folder")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=non_negative_int, help="export this trial id")
    pick.add_argument("--epsilon", type=positive_float, help="export the best feasible trial at this epsilon (any: one the search did not target is "
                      "read from its trials, quality <= EPSILON)")
    add_out(p, "the compact folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_component(p, "the searched network (default: the search's; a compact decoder folder for vae.decoder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``export`` from parsed arguments."""
    from tocsr_nas.stages.export import export_search

    meta, trial = export_search(
        args.search, args.out, trial=args.trial, epsilon=args.epsilon, overwrite=args.overwrite, component=args.component
    )
    measured = meta["measured"]
    print(
        f"exported trial {trial.trial} to {args.out}: {measured['params'] / 1e6:.3f} M params, "
        f"{measured['gmacs']:.4f} GMACs at {meta['resolution']} px (search reported {trial.params / 1e6:.3f} M, "
        f"{trial.gmacs:.4f} GMACs); quality {trial.quality:.4f}"
    )
    if trial.from_trials:
        print(f"epsilon {args.epsilon:g} was not a target of the search: the trial was picked from its trials (quality <= {args.epsilon:g})")
    return 0
