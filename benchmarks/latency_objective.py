"""``--objective latency`` on a surrogate library, against ``--objective gmacs`` (issue 16).

Runs two searches with the same budget, strategy, seed and epsilon on one library (the demo's by
default: ``/work/demo_base``), the first minimising the latency table's predicted milliseconds,
the second GMACs, then times the teacher and both chosen compact UNets end to end, interleaved
over several rounds (median), and writes the latency table, the predicted and measured
milliseconds and the GMACs of each choice as JSON and Markdown::

    python benchmarks/latency_objective.py --teacher /work/demo_base/teacher \\
        --surrogates /work/demo_base/surrogates --out /tmp/latency-objective --threads 1

On a shared CPU the timings are noisy: use ``--threads 1`` and enough ``--repeats``; every figure
is a median. The latency table is cached (``$TOCSR_NAS_CACHE``) like the cost table; pass
``--fresh-cache`` to measure it again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", type=Path, default=Path("/work/demo_base/teacher"))
    p.add_argument("--surrogates", type=Path, default=Path("/work/demo_base/surrogates"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--budget", type=int, default=40, help="evaluations per search (the demo's: 40)")
    p.add_argument("--strategy", default="ecbo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-samples", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per latency-table cell and per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved end-to-end rounds (median of the medians)")
    p.add_argument("--fresh-cache", action="store_true", help="measure the latency table again (a new cache folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    if args.fresh_cache:
        os.environ["TOCSR_NAS_CACHE"] = tempfile.mkdtemp(prefix="latency-cache-")
    import torch

    from tocsr_nas.search.setup import run_search
    from tocsr_nas.stages.costs import model_latency_ms

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    common = dict(
        teacher=args.teacher, surrogates=args.surrogates, epsilon=[args.epsilon], strategy=args.strategy,
        budget=args.budget, seed=args.seed, val_samples=args.val_samples, threads=args.threads, progress=False,
        device=args.device, dtype=args.dtype, latency_repeats=args.repeats,
    )  # fmt: skip
    results, seconds = {}, {}
    for objective in ("latency", "gmacs"):
        out = args.out / objective
        if out.exists():
            import shutil

            shutil.rmtree(out)
        start = time.perf_counter()
        results[objective] = run_search(out=out, objective=objective, **common)
        seconds[objective] = time.perf_counter() - start

    # the latency table and the assembled models, from a fresh set-up (the cached table is reused)
    from tocsr_nas.search.setup import prepare_search

    prepared = prepare_search(
        teacher=args.teacher, surrogates=args.surrogates, val_samples=args.val_samples, device=args.device,
        dtype=args.dtype, latency={"repeats": args.repeats},
    )  # fmt: skip
    table = prepared.latency
    chosen = {name: r.best for name, r in results.items()}
    models = {"teacher": prepared.supernet.assembled(prepared.space.default_config())}
    models.update({name: prepared.supernet.assembled(t.config) for name, t in chosen.items() if t is not None})
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):  # interleaved: a burst of load hits every model alike
        for name, model in models.items():
            rounds[name].append(
                model_latency_ms(model, prepared.teacher, prepared.resolution, device=args.device, dtype=args.dtype,
                                 repeats=args.repeats)  # fmt: skip
            )
    measured = {name: statistics.median(v) for name, v in rounds.items()}
    rows = {}
    for name in models:
        cfg = prepared.space.default_config() if name == "teacher" else chosen[name].config
        predicted = table.latency(cfg)
        rows[name] = {
            "configuration": dict(cfg),
            "gmacs": prepared.cost.gmacs(cfg),
            "params": prepared.cost.params(cfg),
            "quality": None if name == "teacher" else chosen[name].quality,
            "latency_predicted_ms": predicted,
            "latency_measured_ms": measured[name],
            "latency_measured_rounds_ms": rounds[name],
            "predicted_over_measured": predicted / measured[name],
        }
    report = {
        "command": "python benchmarks/latency_objective.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": table.metadata.get("device"),
        "dtype": table.metadata.get("dtype"),
        "threads": args.threads,
        "epsilon": args.epsilon,
        "budget": args.budget,
        "strategy": args.strategy,
        "search_seconds": seconds,
        "best_json": {name: {k: json.loads((args.out / name / "best.json").read_text()).get(k)
                             for k in ("latency_predicted_ms", "latency_measured_ms", "gmacs", "quality")}
                      for name in results},  # fmt: skip
        "table": {"whole_ms": table.whole, "base_ms": table.base, "cells": table.cells},
        "rows": rows,
    }
    (args.out / "latency_objective.json").write_text(json.dumps(report, indent=1))
    (args.out / "latency_objective.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(report: dict) -> str:
    """The Markdown tables of a report: the chosen configurations, then the latency table."""
    lines = [
        f"Device {report['device']} {report['dtype']}, {report['threads']} thread(s); searches: {report['strategy']}, "
        f"budget {report['budget']}, epsilon {report['epsilon']:g}; every time a median.",
        "",
        "| model | GMACs | M params | quality | predicted ms | measured ms | predicted / measured |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["rows"].items():
        label = {"teacher": "teacher", "latency": "--objective latency", "gmacs": "--objective gmacs"}[name]
        q = "" if r["quality"] is None else f"{r['quality']:.4f}"
        lines.append(
            f"| {label} | {r['gmacs']:.4f} | {r['params'] / 1e6:.3f} | {q} | {r['latency_predicted_ms']:.2f} | "
            f"{r['latency_measured_ms']:.2f} | {r['predicted_over_measured']:.2f} |"
        )
    t = report["table"]
    lines += ["", f"Latency table: whole teacher {t['whole_ms']:.2f} ms, outside the searchable blocks {t['base_ms']:.2f} ms.",
              "", "| block | candidate | ms |", "|---|---|---:|"]  # fmt: skip
    for path, row in t["cells"].items():
        for name, ms in row.items():
            lines.append(f"| {path} | {name} | {ms:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
