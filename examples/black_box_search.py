"""Black-box search: ``tocsr_nas.search`` on a model-free space read from NNI's search-space JSON,
with your own cost and quality functions. No model, no teacher, no distillation.

What it shows:

1. ``SearchSpace.from_nni(json)``: NNI's ``choice`` / ``randint`` entries become categorical blocks
   (the first option of each is the default configuration, evaluated first).
2. A cost function returning ``{"gmacs": ..., "params": ...}`` (any callable works; a number is
   taken as the objective) and a quality function ``config -> float`` (lower is better).
3. Epsilon-constrained BO (``ecbo``) with an epsilon sweep: every evaluation serves every epsilon.
4. The outputs: ``trials.csv`` (into pandas in one line), ``pareto.csv``, ``best.json``,
   ``plots/pareto.png``, and the best configuration as NNI parameters (``space.values(cfg)``).

The "network" here is a made-up family of image classifiers whose cost is counted analytically
and whose quality loss is a smooth formula: replace ``cost`` and ``quality`` with your own
measurements (a training run, a benchmark lookup table, a hardware latency measurement).

Run::

    python examples/black_box_search.py --out runs/black_box            # 60 evaluations
    python examples/black_box_search.py --quick --out /tmp/bb           # 10 evaluations (the tests)

Time on a laptop CPU: about 30 s (documented setting), about 10 s with ``--quick``, most of it
importing torch and botorch.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

import tocsr_nas
from tocsr_nas.searchspace import Configuration, SearchSpace

#: NNI's search-space format, as you would pass it to ``nnictl`` / ``nni.experiment``.
NNI_SEARCH_SPACE = """
{
    "depth":      {"_type": "choice",  "_value": [16, 12, 8, 4]},
    "width":      {"_type": "choice",  "_value": [128, 96, 64, 32]},
    "kernel":     {"_type": "choice",  "_value": [7, 5, 3]},
    "expansion":  {"_type": "randint", "_value": [2, 7]},
    "activation": {"_type": "choice",  "_value": ["gelu", "relu"]}
}
"""


def cost(cfg: Configuration) -> dict[str, float]:
    """GMACs and parameters of the made-up classifier at 32x32 px, counted by hand.

    Each of ``depth`` inverted-residual layers has a 1x1 expansion ``w -> e w``, a ``k x k``
    depthwise convolution and a 1x1 projection back: ``params = w * e w * 2 + e w * k^2``.
    """
    v = space.values(cfg)  # the original NNI values: ints and strings
    w, e, k, d = v["width"], v["expansion"], v["kernel"], v["depth"]
    params_per_layer = 2 * w * e * w + e * w * k * k
    pixels = 16 * 16  # the layers run at half resolution
    return {"gmacs": d * params_per_layer * pixels / 1e9, "params": float(d * params_per_layer)}


def quality(cfg: Configuration) -> float:
    """A smooth stand-in for "validation error increase over the largest model" (lower is better).

    Capacity ``log(params)`` buys accuracy with diminishing returns; small kernels and ReLU cost a
    little extra. Replace it with a real measurement.
    """
    v = space.values(cfg)
    largest = cost(space.default_config())["params"]
    shortfall = math.log(largest / cost(cfg)["params"])  # 0 for the largest model
    return 0.004 * shortfall**2 + 0.003 * (7 - v["kernel"]) / 4 + (0.002 if v["activation"] == "relu" else 0.0)


space = SearchSpace.from_nni(json.loads(NNI_SEARCH_SPACE), name="toy-classifier")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/black_box"), help="output folder (new or empty)")
    parser.add_argument("--quick", action="store_true", help="10 evaluations (the test setting)")
    parser.add_argument("--budget", type=int, help="evaluations (default 60, 10 with --quick)")
    parser.add_argument("--strategy", default="ecbo", help="any registered strategy: ecbo, random, evolution, ...")
    args = parser.parse_args(argv)
    budget = args.budget or (10 if args.quick else 60)

    print(f"{space.summary()}; the default (first option everywhere): {space.values(space.default_config())}")
    result = tocsr_nas.search(
        space,
        quality=quality,
        cost=cost,
        epsilon=[0.02, 0.05, 0.1],  # the first is the primary one (best.json)
        strategy=args.strategy,
        budget=budget,
        seed=0,
        out_dir=args.out,
        progress=False,
    )
    print(result.summary())

    # The outputs, as files: trials into pandas in one line.
    trials = pd.read_csv(args.out / "trials.csv")
    print(trials[["trial", "gmacs", "params", "quality", "feasible"]].head().to_string(index=False))
    best = json.loads((args.out / "best.json").read_text())
    if result.best is not None:
        # Back to NNI: the parameters an NNI trial would receive for this configuration.
        print("best at epsilon", best["epsilon"], "as NNI parameters:", space.values(result.best.config))
    print(f"outputs: {args.out}/trials.csv, pareto.csv, best.json, plots/pareto.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
