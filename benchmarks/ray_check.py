"""Distillation and search on Ray against local runs: the figures of ``docs/distributed.md``.

    python benchmarks/ray_check.py --out /tmp/ray_check \\
        [--search-teacher runs/demo/teacher --search-library runs/demo/surrogates]

Every run is the real command (``python -m tocsr_nas.cli ...``) in a subprocess, so the timings include
start-up (Python, torch, and for Ray starting or joining the cluster):

1. ``distill`` of the tiny teacher's default space (the command's default sizes unless
   ``--steps``/``--samples`` say otherwise): local with one worker; Ray with 1 and 2 workers, each on
   a local cluster the command starts (``workers * threads`` CPUs): wall time, pairs, final losses
   against the local run.
2. On a 2-CPU cluster this script starts (the commands join it through ``RAY_ADDRESS``): the Ray run
   with one worker process killed (SIGKILL to the pid of a process running a pair task, found by its
   Ray process title ``ray::_ray_job``) once a few pairs are in; then a run whose driver is killed
   (``kill -9`` of its process group) halfway and ``--resume``-d: pairs and final losses against the
   local run.
3. With ``--search-teacher``/``--search-library``: ``search`` with ``--batch-size 4`` on Ray, against
   local ``--batch-size 4`` and ``--batch-size 1``; then a Ray search killed mid-batch and resumed:
   the journal read back after the kill, trials and the best configuration.

Writes ``OUT/ray_check.json`` and ``OUT/ray_check.md`` (the tables the doc quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HANG_S = 1800


def cli(argv: list[str], log: Path, env: dict[str, str], kill_when: Callable[[], bool] | None = None) -> tuple[float, bool]:
    """Run ``tocsr-nas ARGV``; ``kill -9`` its process group when ``kill_when()`` holds. Returns (seconds, killed)."""
    with open(log, "ab") as out:
        out.write(f"\n$ tocsr-nas {' '.join(argv)}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "tocsr_nas.cli", *argv], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        try:
            while proc.poll() is None:
                if kill_when is not None and kill_when():
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return time.perf_counter() - start, True
                if time.perf_counter() - start > HANG_S:
                    raise RuntimeError(f"tocsr-nas {argv[0]} hung; see {log}")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"tocsr-nas {argv[0]} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - start, False


def pairs(lib: Path) -> dict[tuple[str, str], float]:
    """``(block, candidate) -> final_loss`` of a library's manifest (finished pairs only)."""
    manifest = lib / "manifest.json"
    if not manifest.is_file():
        return {}
    return {(p["block"], p["candidate"]): p["final_loss"] for p in json.loads(manifest.read_text())["pairs"]}


def compare(lib: Path, ref: Path) -> dict:
    """Pairs and final losses of ``lib`` against ``ref``: same keys, largest relative difference, identical files."""
    a, b = pairs(lib), pairs(ref)
    rel = max((abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in a if k in b), default=float("nan"))
    manifest = {(p["block"], p["candidate"]): p["file"] for p in json.loads((ref / "manifest.json").read_text())["pairs"]}
    same = sum((lib / f).read_bytes() == (ref / f).read_bytes() for k, f in manifest.items() if (lib / f).is_file())
    return {"pairs": len(a), "same_pairs": a.keys() == b.keys(), "max_rel_loss_diff": rel, "identical_files": same}


def descendants(root: int) -> set[int]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            table[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def running_pair_tasks(root: int) -> list[int]:
    """Pids of this cluster's workers running a pair task now (Ray titles them ``ray::<function>``)."""
    out = []
    for pid in descendants(root):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::_ray_job"):
            out.append(pid)
    return sorted(out)


def trials(out: Path) -> list[tuple[int, str, float]]:
    import pandas as pd

    frame = pd.read_csv(out / "trials.csv", dtype={"config": str})
    return [(int(r.trial), r.config, float(r.quality)) for r in frame.itertuples()]


def best(out: Path) -> dict:
    data = json.loads((out / "best.json").read_text())
    return {"gmacs": data.get("gmacs"), "quality": data.get("quality"), "trial": data.get("trial"),
            "hash": data.get("hash")}


def finished(out: Path) -> int:
    journal = out / "journal.jsonl"
    return journal.read_text().count('"type":"finished"') if journal.is_file() else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/ray_check"))
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder (default: the shipped tiny teacher)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--search-teacher", type=Path, default=None)
    p.add_argument("--search-library", type=Path, default=None)
    p.add_argument("--budget", type=int, default=40)
    args = p.parse_args()

    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = out / "log.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    sizes = [*(["--teacher", str(args.teacher)] if args.teacher else []),
             *(["--steps", str(args.steps)] if args.steps else []),
             *(["--samples", str(args.samples)] if args.samples else []), "--threads", "1", "--no-progress"]
    report: dict = {"machine": f"{os.cpu_count()} CPUs (shared)", "distill": {}, "search": {}}
    d = report["distill"]

    # 1. wall time: local, Ray with 1 and 2 workers (each command starts its own local cluster)
    ref = out / "local"
    d["local_w1"] = {"seconds": cli(["distill", *sizes, "--out", str(ref)], log, env)[0]}
    d["local_w1"].update(compare(ref, ref))
    for workers in (1, 2):
        lib = out / f"ray-w{workers}"
        seconds, _ = cli(["distill", *sizes, "--executor", "ray", "--workers", str(workers), "--out", str(lib)], log, env)
        d[f"ray_w{workers}"] = {"seconds": seconds, **compare(lib, ref)}
        print(json.dumps({f"ray_w{workers}": d[f"ray_w{workers}"]}), flush=True)

    # 2. faults, on a cluster this script holds (the commands join it)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    joined = {**env, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    if "RAY_AUTH_MODE" in os.environ:
        joined["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"]
    try:
        lib = out / "ray-killed-worker"
        killed: list[int] = []

        def kill_a_worker() -> bool:
            if not killed and len(pairs(lib)) >= 3:
                running = running_pair_tasks(os.getpid())
                if running:
                    os.kill(running[0], signal.SIGKILL)
                    killed.append(running[0])
            return False  # the driver runs on

        seconds, _ = cli(["distill", *sizes, "--executor", "ray", "--workers", "2", "--out", str(lib)], log, joined,
                         kill_a_worker)
        d["ray_killed_worker"] = {"seconds": seconds, "killed_pid": killed, **compare(lib, ref)}

        lib = out / "ray-killed-driver"
        total = len(pairs(ref))
        argv = ["distill", *sizes, "--executor", "ray", "--workers", "2", "--out", str(lib)]
        seconds, was_killed = cli(argv, log, joined, lambda: len(pairs(lib)) >= total // 2)
        at = len(pairs(lib))
        kept = pairs(lib)
        seconds2, _ = cli([*argv, "--resume"], log, joined)
        after = pairs(lib)
        d["ray_killed_driver"] = {"killed": was_killed, "pairs_at_kill": at, "seconds_before": seconds,
                                  "seconds_resume": seconds2, "kept_pairs_unchanged": all(after[k] == v for k, v in kept.items()),
                                  **compare(lib, ref)}
        print(json.dumps(d), flush=True)

        # 3. search
        if args.search_teacher and args.search_library:
            s = report["search"]
            base = ["search", "--teacher", str(args.search_teacher), "--surrogates", str(args.search_library),
                    "--epsilon", "0.05,0.02,0.1", "--budget", str(args.budget), "--seed", "0", "--threads", "1",
                    "--no-progress"]
            for name, extra, e in (("local_q1", ["--batch-size", "1"], env), ("local_q4", ["--batch-size", "4"], env),
                                   ("ray_q4", ["--batch-size", "4", "--executor", "ray"], joined)):
                folder = out / f"search-{name}"
                seconds, _ = cli([*base, *extra, "--out", str(folder)], log, e)
                s[name] = {"seconds": seconds, "trials": len(trials(folder)), "best": best(folder)}
            got, want = trials(out / "search-ray_q4"), trials(out / "search-local_q4")
            s["ray_q4_vs_local_q4"] = {
                "same_configs": [t[1] for t in got] == [t[1] for t in want],
                "max_abs_quality_diff": max(abs(a[2] - b[2]) for a, b in zip(got, want)),
            }
            folder = out / "search-ray_q4-killed"
            argv = [*base, "--batch-size", "4", "--executor", "ray", "--out", str(folder)]
            _, was_killed = cli(argv, log, joined, lambda: finished(folder) >= 6)
            from tocsr_nas.search.journal import read_journal

            contents = read_journal(str(folder / "journal.jsonl"))
            kept = {t: r.finished["quality"] for t, r in contents.trials.items() if r.finished is not None}
            cli([*argv, "--resume"], log, joined)
            final = read_journal(str(folder / "journal.jsonl"))
            s["ray_q4_killed"] = {
                "killed": was_killed, "finished_at_kill": len(kept),
                "journal_read_back": True,
                "kept_unchanged": all(final.trials[t].finished["quality"] == q for t, q in kept.items()),
                "trials": len(trials(folder)),
                "same_as_uninterrupted": [t[1] for t in trials(folder)] == [t[1] for t in got],
                "best": best(folder),
            }
    finally:
        ray.shutdown()

    (out / "ray_check.json").write_text(json.dumps(report, indent=1))
    lines = ["| distill run | wall s | pairs | same pairs | max rel. final-loss diff vs local | identical weight files |",
             "|---|---|---|---|---|---|"]
    for name, r in d.items():
        lines.append(f"| {name} | {r.get('seconds', r.get('seconds_resume', 0)):.1f} | {r['pairs']} | {r['same_pairs']} | "
                     f"{r['max_rel_loss_diff']:.2e} | {r['identical_files']} |")
    if report["search"]:
        lines += ["", "| search run | wall s | trials | best GMACs @0.05 | quality | trial |", "|---|---|---|---|---|---|"]
        for name, r in report["search"].items():
            if "best" in r:
                b = r["best"]
                lines.append(f"| {name} | {r.get('seconds', float('nan')):.1f} | {r['trials']} | {b['gmacs']} | "
                             f"{b['quality']} | {b['trial']} |")
    (out / "ray_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
