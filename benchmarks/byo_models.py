"""Bring your own model: every supported denoiser family through the CLI, end to end.

For each micro pipeline of :mod:`tocsr_nas.teacher.testing` (a DDPM ``UNet2DModel``, an SD1.5-style
``UNet2DConditionModel`` with a 4-channel VAE, an SDXL-style ``text_time`` UNet, a DiT; random
weights, written with ``save_pretrained`` as a diffusers pipeline folder with null text encoders)
it runs, each as its own ``tocsr-nas`` process::

    tocsr-nas space   --teacher DIR --json
    tocsr-nas distill --teacher DIR --out LIB --steps S --samples N ...
    tocsr-nas search  --teacher DIR --surrogates LIB --epsilon E --strategy random --budget B --out SEARCH
    tocsr-nas export  --search SEARCH --out COMPACT

then ``tocsr_nas.load_compact(COMPACT)`` and one forward with the teacher's own inputs, and prints
a table: family, denoiser class, teacher params (and whether they equal the model's own count),
seconds per stage, the reduction found (GMACs and params, teacher / compact) and the output check.

Run (2 CPU cores, about 5 minutes)::

    nice python benchmarks/byo_models.py --out /tmp/byo

Times are wall-clock seconds of each command, process start (about 5-20 s of imports on a busy
machine) included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

FAMILIES = ("ddpm", "sd15", "sdxl", "dit")


def cli(*args: str, env: dict[str, str]) -> tuple[float, str]:
    """Run ``tocsr-nas ARGS`` in a fresh process; ``(seconds, stdout)``; raise on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tocsr_nas.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"tocsr-nas {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return seconds, proc.stdout


def run_family(family: str, out: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    """The four commands and the load_compact check for one family."""
    import torch

    import tocsr_nas
    from tocsr_nas.teacher import Teacher
    from tocsr_nas.teacher.testing import write_micro_pipeline

    base = out / family
    teacher_dir = write_micro_pipeline(family, base / "pipeline", seed=args.seed)
    teacher = Teacher.load(teacher_dir)
    own_params = sum(p.numel() for p in teacher.unet.parameters())
    row: dict[str, object] = {"family": family, "class": type(teacher.unet).__name__, "own_params": own_params}
    t, stdout = cli("space", "--teacher", str(teacher_dir), "--json", env=env)
    report = json.loads(stdout)
    row.update(space_s=t, teacher_params=report["teacher_params"], teacher_gmacs=report["teacher_gmacs"], blocks=report["num_blocks"])
    lib, search, compact = base / "library", base / "search", base / "compact"
    row["distill_s"], _ = cli(
        "distill", "--teacher", str(teacher_dir), "--out", str(lib), "--steps", str(args.steps), "--samples", str(args.samples),
        "--val-samples", "8", "--batch-size", "8", "--threads", "1", "--no-progress", env=env,
    )  # fmt: skip
    row["search_s"], _ = cli(
        "search", "--teacher", str(teacher_dir), "--surrogates", str(lib), "--epsilon", str(args.epsilon), "--strategy",
        "random", "--budget", str(args.budget), "--val-samples", "8", "--out", str(search), "--threads", "1",
        "--no-progress", env=env,
    )  # fmt: skip
    row["export_s"], _ = cli("export", "--search", str(search), "--out", str(compact), env=env)
    meta = json.loads((compact / "compact.json").read_text())
    row.update(compact_params=meta["measured"]["params"], compact_gmacs=meta["measured"]["gmacs"])
    start = time.perf_counter()
    model = tocsr_nas.load_compact(compact)
    call_args, call_kwargs = teacher.unet_example_inputs(2)
    call_kwargs.pop("return_dict")  # the teacher's own default call: a diffusers output
    with torch.no_grad():
        got, want = model(*call_args, **call_kwargs), teacher.unet(*call_args, **call_kwargs)
    row["load_s"] = time.perf_counter() - start
    row["forward_ok"] = type(got) is type(want) and got.sample.shape == want.sample.shape
    row["output"] = f"{type(got).__name__} {tuple(got.sample.shape)}"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/byo"), help="work folder (new or empty)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", type=int, default=20, help="distillation steps per pair")
    parser.add_argument("--samples", type=int, default=32, help="distillation samples")
    parser.add_argument("--budget", type=int, default=12, help="search trials")
    parser.add_argument("--epsilon", type=float, default=0.3, help="search epsilon")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    env = {**os.environ, "TOCSR_NAS_CACHE": str(args.out / "cache")}
    rows = [run_family(f, args.out, args, env) for f in args.families]
    head = (f"{'family':7} {'denoiser':24} {'teacher params':>14} {'= own':>5} {'blocks':>6} {'space s':>7} {'distill s':>9} "
            f"{'search s':>8} {'export s':>8} {'GMACs T/C':>16} {'params T/C':>18} {'reduction':>9}  load_compact forward")
    print(head)
    for r in rows:
        red = r["teacher_gmacs"] / r["compact_gmacs"]
        print(
            f"{r['family']:7} {r['class']:24} {r['teacher_params']:>14,} {str(r['teacher_params'] == r['own_params']):>5} "
            f"{r['blocks']:>6} {r['space_s']:>7.1f} {r['distill_s']:>9.1f} {r['search_s']:>8.1f} {r['export_s']:>8.1f} "
            f"{r['teacher_gmacs']:>7.4f}/{r['compact_gmacs']:<8.4f} {r['teacher_params']:>8,}/{r['compact_params']:<9,} "
            f"{red:>8.2f}x  {r['output']} {'ok' if r['forward_ok'] else 'MISMATCH'}"
        )  # fmt: skip
    return 0 if all(r["forward_ok"] and r["teacher_params"] == r["own_params"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
