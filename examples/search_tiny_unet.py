"""The whole search through the Python API on the tiny teacher: the steps of ``tocsr-nas distill``,
``tocsr-nas search`` and ``tocsr-nas export``, in code you can change.

What it shows:

1. The teacher: the trained ``tiny`` teacher that ships with the package
   (``tocsr_nas.teacher.default_teacher_dir()``; the preset with random weights if it is absent).
2. A search space from YAML (``examples/tiny_unet_space.yaml``: rules, a grid, constraints),
   resolved against the UNet and checked (every candidate is built and run on real block inputs).
3. Blockwise distillation of every (block, candidate) pair into a surrogate library.
4. The cost table (fvcore GMACs and parameters of any configuration by lookup), the fixed
   validation set, the supernet and its quality function, and the library's losses as a prior.
5. Epsilon-constrained BO (``ecbo``) over an epsilon sweep, the Pareto plot drawn through the API,
   and the best configuration exported as a standalone compact UNet.

Run::

    python examples/search_tiny_unet.py --out runs/tiny_unet               # 100 steps/pair, budget 40
    python examples/search_tiny_unet.py --quick --out /tmp/tiny            # 3 steps/pair, budget 6 (tests)
    python examples/search_tiny_unet.py --space my_space.yaml --out ...    # your own rules

Time on a laptop CPU: about 2 minutes (documented setting; distillation of 51 pairs dominates),
about 1 minute with ``--quick``. Every stage is resumable: rerun the same command to continue.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

import tocsr_nas
from tocsr_nas.search import prepare_search
from tocsr_nas.teacher import shipped_teacher
from tocsr_nas.stages.distill import DistillConfig, distill_teacher
from tocsr_nas.stages.space import CandidateCache, build_space
from tocsr_nas.searchspace import SpaceSpec

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/tiny_unet"), help="output folder")
    parser.add_argument("--space", type=Path, default=HERE / "tiny_unet_space.yaml", help="search space YAML")
    parser.add_argument("--quick", action="store_true", help="3 distillation steps, budget 6 (the test setting)")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="quality limits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)  # fastest on a busy machine; remove on your own

    # 1-2. teacher and search space
    teacher = shipped_teacher().eval()  # the trained tiny teacher (the preset with random weights if absent)
    spec = SpaceSpec.load(str(args.space))  # a YAML error is one SearchSpaceError line with the position
    candidates = CandidateCache()  # each distinct (block architecture, candidate) is built once
    probe = teacher.unet_example_inputs(1, resolution=teacher.vae_scale_factor * 8)
    space = build_space(teacher.unet, spec, probe=probe, candidates=candidates)
    print(f"{space.summary()}, {sum(len(b.choices) - 1 for b in space)} (block, candidate) pairs to distil")

    # 3. blockwise distillation (resume=True: a rerun finishes an interrupted library)
    steps, samples, budget, val_samples = (3, 8, 6, 4) if args.quick else (100, 128, 40, 16)
    config = DistillConfig(steps=steps, samples=samples, val_samples=8, capture_batch=16, batch_size=8)
    library = distill_teacher(teacher, space, args.out / "library", config, resume=True, progress=not args.quick)

    # 4. cost table, validation set, supernet quality, prior: the set-up of `tocsr-nas search`
    prepared = prepare_search(teacher=teacher, surrogates=library, space=space, candidates=candidates,
                              val_samples=val_samples, cost_cache=args.out / "cache",
                              validation_cache=args.out / "validation.safetensors")
    table = prepared.cost
    print(f"teacher: {table.teacher().gmacs:.4f} GMACs, {table.teacher().params / 1e6:.3f} M params; "
          f"cheapest configuration (constraints aside): {table.min_cost()[1].gmacs:.4f} GMACs")

    # 5. the search (space, quality, cost and prior filled in), the Pareto plot, the export
    result = prepared.search(
        epsilon=args.epsilon,
        strategy="ecbo",
        budget=budget,
        seed=0,
        out_dir=args.out / "search",
        resume=(args.out / "search" / "journal.jsonl").is_file(),
        progress=not args.quick,
    )
    print(result.summary())
    ax = result.plot_pareto()  # a matplotlib Axes: restyle it, add points, save it
    ax.set_title(f"{space.name}: {len(result.trials)} trials")
    ax.figure.savefig(args.out / "pareto.png", dpi=120)
    print(f"Pareto front: {len(result.pareto)} trials; plot at {args.out / 'pareto.png'}")

    if result.best is not None:
        prepared.supernet.restore()  # put the teacher's blocks back before assembling from the library
        meta = tocsr_nas.export_compact(teacher, space, library, result.best.config, args.out / "compact",
                                        info={"epsilon": result.primary_epsilon, "quality": result.best.quality},
                                        overwrite=True)
        unet = tocsr_nas.load_compact(args.out / "compact")
        print(f"exported {args.out / 'compact'}: {meta['measured']}; reloads as {type(unet).__name__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
