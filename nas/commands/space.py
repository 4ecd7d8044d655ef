"""``tocsr-nas space``: the searchable blocks of a teacher, their candidates and costs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tocsr_nas.commands import add_component, add_device_options, add_threads, positive_int
from tocsr_nas.errors import UserInputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "space",
        help="show the search space of a teacher: blocks, candidates, params and GMACs",
        description="Resolve a search space against a teacher UNet and print every block with its "
        "candidates' params and GMACs (fvcore, attention counted), the teacher's totals, the space size "
        "and the smallest params/GMACs reachable, and the candidates dropped as duplicates of an earlier "
        "choice (same architecture), if any.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="teacher preset (tiny, sd21-vae16); default: the shipped tiny teacher")
    src.add_argument("--teacher", type=Path, help="a teacher folder (diffusers layout)")
    p.add_argument("--space", help="search space YAML file (default: the component's packaged space; for the denoiser the one of the teacher's family: unet, unet2d or transformer)")
    add_component(p)
    p.add_argument("--resolution", type=positive_int, help="image side in pixels (default: the preset's, 512 for sd21-vae16)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--no-cache", action="store_true", help="rebuild the cost table even if a cached one exists")
    p.add_argument(
        "--latency", action="store_true",
        help="also measure each candidate's milliseconds on --device (the latency table of --objective latency; cached)",
    )  # fmt: skip
    p.add_argument("--repeats", type=positive_int, default=10, help="timed calls per latency cell, median (default 10)")
    add_device_options(p)
    add_threads(p, help="torch CPU threads (latency tables are keyed on it; 1 is steadiest on a busy machine)")
    p.set_defaults(func=run)


def load_teacher_arg(preset: str | None, teacher_dir: Path | None):
    """The teacher named on the command line: a preset, a folder, or the shipped tiny teacher."""
    from tocsr_nas.teacher import Teacher, build_teacher, default_teacher_dir

    if preset:
        return build_teacher(preset)
    return Teacher.load(teacher_dir or default_teacher_dir())


def space_report(teacher, space, table, latency=None) -> dict:
    """The JSON object ``tocsr-nas space --json`` prints (with ``latency``, a
    :class:`~tocsr_nas.evaluators.LatencyTable`: each candidate's ``ms`` and the latency totals)."""
    teacher_cost = table.teacher()
    blocks = []
    for block in space.blocks:
        cands = []
        for name in block.names:
            cell = table.cell(block.path, name)
            cands.append(
                {
                    "name": name,
                    "params": cell.params,
                    "gmacs": cell.macs / 1e9,
                    "gmacs_no_attention": cell.macs_no_attention / 1e9,
                    **({"ms": latency.cell(block.path, name)} if latency is not None else {}),
                }
            )
        blocks.append({"path": block.path, "type": block.module_type, "rule": block.rule, "candidates": cands})
    min_p_cfg, min_p = table.min_cost("params")
    min_g_cfg, min_g = table.min_cost("gmacs")
    keep_cfg, keep = table.min_cost("params", exclude=("skip",))
    report = {
        "space": space.name,
        "space_hash": space.hash,
        "resolution": table.resolution,
        "size": space.size,
        "num_blocks": len(space),
        "teacher_params": teacher_cost.params,
        "teacher_gmacs": teacher_cost.gmacs,
        "teacher_gmacs_no_attention": table.teacher(count_attention=False).gmacs,
        "min_params": min_p.params,
        "min_gmacs": min_g.gmacs,
        "min_params_config": min_p_cfg,
        "min_gmacs_config": min_g_cfg,
        "min_no_skip": {
            "params": keep.params,
            "gmacs": keep.gmacs,
            "gmacs_no_attention": table.cost(keep_cfg, count_attention=False).gmacs,
            "config": keep_cfg,
        },
        "base_params": table.base.params,
        "base_gmacs": table.base.macs / 1e9,
        "blocks": blocks,
        "merged": space.merged,
    }
    if latency is not None:
        fastest = {b.path: min(b.names, key=lambda n, p=b.path: latency.cell(p, n)) for b in space.blocks}
        report["latency"] = {
            "device": latency.metadata.get("device"),
            "dtype": latency.metadata.get("dtype"),
            "batch": latency.metadata.get("batch"),
            "teacher_ms": latency.teacher(),
            "base_ms": latency.base,
            "min_ms": latency.latency(fastest),
            "min_ms_config": fastest,
        }
    return report


def _print_tables(report: dict, seconds: float) -> None:
    import pandas as pd

    rows = []
    for b in report["blocks"]:
        for c in b["candidates"]:
            rows.append({"block": b["path"], "type": b["type"], "candidate": c["name"],
                         "Mparams": c["params"] / 1e6, "GMACs": c["gmacs"], **({"ms": c["ms"]} if "ms" in c else {})})
    df = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 160, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    keep = report["min_no_skip"]
    if report["merged"]:
        print()
        print("merged (candidates that build the same block as an earlier choice; dropped = kept):")
        for path, drops in report["merged"].items():
            for dropped, kept in drops.items():
                print(f"  {path}: {dropped} = {kept}")
    print()
    print(f"space {report['space']} ({report['space_hash']}): {report['num_blocks']} blocks, "
          f"{report['size']:.4g} configurations, at {report['resolution']} px")
    print(f"teacher:           {report['teacher_params'] / 1e6:10.2f} M params  {report['teacher_gmacs']:10.3f} GMACs "
          f"({report['teacher_gmacs_no_attention']:.3f} without attention)")
    print(f"smallest (params): {report['min_params'] / 1e6:10.2f} M params")
    print(f"smallest (GMACs):  {report['min_gmacs']:25.3f} GMACs")
    print(f"smallest keeping every block (no skip): {keep['params'] / 1e6:.2f} M params, {keep['gmacs']:.3f} GMACs")
    if "latency" in report:
        lat = report["latency"]
        print(f"latency on {lat['device']} {lat['dtype']}, batch {lat['batch']} (median per cell): teacher "
              f"{lat['teacher_ms']:.3f} ms (blocks outside the space {lat['base_ms']:.3f} ms), fastest "
              f"configuration {lat['min_ms']:.3f} ms predicted")
    print(f"({seconds:.1f} s)")


def run(args: argparse.Namespace) -> int:
    from tocsr_nas.devices import resolve
    from tocsr_nas.stages.costs import cost_table_for, latency_table_for
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.teacher.components import get_component
    from tocsr_nas.threads import set_threads

    comp = get_component(args.component)
    if args.latency:
        resolve(args.device, args.dtype)  # an absent device fails before any work
    set_threads(args.threads)
    if args.resolution is not None and args.resolution <= 0:
        raise UserInputError(f"--resolution must be positive, got {args.resolution}")
    start = time.perf_counter()
    teacher = load_teacher_arg(args.preset, args.teacher).eval()
    resolution = args.resolution or teacher.default_resolution
    comp.check_resolution(teacher, resolution)  # validates the resolution against the VAE factor
    candidates = CandidateCache()
    space = build_space(comp.module(teacher), args.space or comp.default_space, probe=comp.probe(teacher), candidates=candidates)
    table = cost_table_for(
        teacher, space, resolution, cache=not args.no_cache, candidates=candidates, component=comp,
        progress=not args.json and sys.stderr.isatty(),  # no bar in a log or a pipe
    )
    latency = None
    if args.latency:
        latency = latency_table_for(
            teacher, space, resolution, device=args.device, dtype=args.dtype, repeats=args.repeats,
            cache=not args.no_cache, candidates=candidates, progress=not args.json and sys.stderr.isatty(),
            component=comp,
        )  # fmt: skip
    report = {"component": comp.name, **space_report(teacher, space, table, latency)}
    seconds = time.perf_counter() - start
    if args.json:
        report["seconds"] = seconds
        print(json.dumps(report, indent=1))
    else:
        _print_tables(report, seconds)
    return 0
