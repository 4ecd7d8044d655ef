"""``tocsr-nas export``: the configuration a search chose, as a standalone compact UNet folder."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from tocsr_nas.errors import UserInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write the searched configuration as a standalone compact UNet (config + safetensors)",
        description="Export a trial of a `tocsr-nas search` folder (by default the best feasible trial at the "
        "search's primary epsilon) as a compact UNet that `tocsr_nas.load_compact(DIR)` rebuilds without the "
        "teacher, the space or the surrogate library.",
    )
    p.add_argument("--search", type=Path, required=True, help="a `tocsr-nas search --out` folder")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=int, help="export this trial id")
    pick.add_argument("--epsilon", type=float, help="export the best feasible trial at this epsilon (one of the search's)")
    p.add_argument("--out", type=Path, required=True, help="the compact folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=run)


def _search_path(search: Path, value: str) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return search / path  # a path relative to the search folder


def pick_trial(result, trial: int | None, epsilon: float | None):
    """The trial to export: by id, or the best feasible at ``epsilon`` (default: the primary one)."""
    from tocsr_nas.search.results import Trial

    if trial is not None:
        rows = result.trials[result.trials["trial"] == trial]
        if rows.empty:
            raise UserInputError(f"no trial {trial} in the search (trials 0..{len(result.trials) - 1})")
        return Trial.from_row(rows.iloc[0], result.epsilons), None
    eps = result.primary_epsilon if epsilon is None else float(epsilon)
    known = [e for e in result.epsilons if math.isclose(eps, e)]
    if not known:
        raise UserInputError(f"epsilon {eps} was not part of the search; its epsilons are {list(result.epsilons)}")
    eps = known[0]
    best = result.bests[eps]
    if best is None:
        raise UserInputError(f"no feasible trial at epsilon {eps}; export one by --trial ID or search longer")
    return best, eps


def run(args: argparse.Namespace) -> int:
    from tocsr_nas.stages.export import export_compact
    from tocsr_nas.search.results import load_search
    from tocsr_nas.surrogates.library import SurrogateLibrary
    from tocsr_nas.teacher import Teacher

    settings_file = args.search / "search.json"
    if not settings_file.is_file():
        raise UserInputError(f"{args.search} is not a `tocsr-nas search` folder (no search.json)")
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    result = load_search(args.search)
    trial, eps = pick_trial(result, args.trial, args.epsilon)
    teacher = Teacher.load(_search_path(args.search, settings["teacher"])).eval()
    library = SurrogateLibrary.open(
        _search_path(args.search, settings["surrogates"]), teacher_fingerprint=teacher.fingerprint()
    )
    resolution = settings.get("resolution")
    info = {
        "search": str(args.search.resolve()),
        "trial": trial.trial,
        "epsilon": eps,
        "quality": trial.quality,
        "quality_name": settings.get("quality"),
        "objective": settings.get("objective"),
        "searched": {"params": trial.params, "gmacs": trial.gmacs},
    }
    meta = export_compact(
        teacher, library.space, library, trial.config, args.out, resolution=resolution, info=info, overwrite=args.overwrite
    )
    measured = meta["measured"]
    print(
        f"exported trial {trial.trial} to {args.out}: {measured['params'] / 1e6:.3f} M params, "
        f"{measured['gmacs']:.4f} GMACs at {meta['resolution']} px (search reported {trial.params / 1e6:.3f} M, "
        f"{trial.gmacs:.4f} GMACs); quality {trial.quality:.4f}"
    )
    return 0
