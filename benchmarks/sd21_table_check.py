"""How far the committed sd21-vae16 cost table (landscape B's data) is from one built by today's code.

The committed ``results/sd21_vae16_512px_costs.json`` is landscape B's frozen cost data: every
published B figure was computed on it. It was built before ``bottleneck_resnet``'s ratios began to
mean what they say (its GroupNorm groups now divide the requested width), so its 0.125 and 0.25
bottleneck cells hold the old, rounded widths. This script rebuilds the table with
``cost_table_for`` (about a minute on two cores) and prints which cells differ and how the
headline rows move.

    .venv/bin/python benchmarks/sd21_table_check.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import sd21_cost_table  # noqa: E402
from tocsr_nas.stages.costs import cost_table_for  # noqa: E402
from tocsr_nas.stages.space import CandidateCache, build_space  # noqa: E402
from tocsr_nas.teacher import build_teacher  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    committed = sd21_cost_table()
    teacher = build_teacher("sd21-vae16")
    candidates = CandidateCache()
    space = build_space(teacher.unet, candidates=candidates)
    start = time.perf_counter()
    rebuilt = cost_table_for(teacher, space, 512, cache=False, candidates=candidates)
    print(f"rebuilt in {time.perf_counter() - start:.1f} s; merged candidates: {space.merged or 'none'}")
    keep = {b.path: "teacher" for b in space.blocks}

    def single(path, name):  # one block swapped, the rest kept
        return {**keep, path: name}

    def cheapest_without_skip(table):
        return {b.path: min((n for n in b.names if n != "skip"), key=lambda n: table.gmacs(single(b.path, n)))
                for b in space.blocks}

    for label, table in (("committed", committed), ("rebuilt", rebuilt)):
        cfg = cheapest_without_skip(table)
        print(f"{label:>9}: teacher {table.params(keep) / 1e6:.1f} M params / {table.gmacs(keep):.1f} GMACs; "
              f"smallest without skip {table.params(cfg) / 1e6:.1f} M / {table.gmacs(cfg):.1f} GMACs")
    changed = [(b.path, n) for b in space.blocks for n in b.names
               if committed.gmacs(single(b.path, n)) != rebuilt.gmacs(single(b.path, n))]
    print(f"cells whose GMACs differ: {len(changed)} of {sum(len(b.names) for b in space.blocks)} "
          f"({', '.join(sorted({n for _, n in changed})) or 'none'})")


if __name__ == "__main__":
    main()
