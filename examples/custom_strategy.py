"""A new search strategy in one class: written against the ask/tell interface, registered by name,
checked by the shared conformance suite, and run by name from ``tocsr-nas search``.

What it shows:

1. ``GreedyDescent`` (registered as ``greedy-descent``): from the cheapest configuration that is
   feasible so far, propose its cheapest unseen one-block neighbours; explore at random until
   something is feasible. It only implements ``_propose``; the base class handles the teacher-first
   rule, deduplication, pending proposals, admissibility checks and the resumable state.
2. Driving it by hand (``ask`` / ``tell``) and through ``tocsr_nas.search`` next to ``random``.
3. The shared strategy conformance kit (``tocsr_nas.strategies.testing.run_conformance``: teacher
   first, admissible, never repeats, same seed -> same trials, state round-trips, survives failed
   evaluations, exhausts a tiny space), run on this strategy by import (no pytest, no checkout).
4. The command line: ``tocsr-nas --plugin examples/custom_strategy.py search ... --strategy
   greedy-descent`` on a teacher and a small distilled surrogate library (made here).

Run::

    python examples/custom_strategy.py --out runs/custom_strategy          # budget 40 + CLI budget 12
    python examples/custom_strategy.py --quick --out /tmp/cs               # the test setting

Time on a laptop CPU: about 2 minutes (documented setting), about 1 minute with ``--quick``
(the conformance suite and the CLI's model loading dominate).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies import Strategy, StrategyError, register_strategy

log = logging.getLogger("custom_strategy")


@register_strategy("greedy-descent")
class GreedyDescent(Strategy):
    """Greedy descent on cost from the cheapest feasible configuration found so far.

    Each proposal is, in order of preference:

    1. the cheapest unseen, admissible neighbour (one block changed) of the incumbent, i.e. the
       cheapest observation with ``quality <= epsilon`` (skipped with probability ``explore``);
    2. a uniformly random unseen admissible configuration.

    A proposal depends only on the told history, the pending proposals and ``rng`` (a local
    generator derived from the seed and those counts), so replaying the tells resumes it exactly
    and the base class's state is enough.

    Options:
        explore: probability of skipping a neighbour in favour of a random configuration.
    """

    @dataclass(frozen=True)
    class Options:
        explore: float = 0.1

        def __post_init__(self) -> None:
            if not (isinstance(self.explore, (int, float)) and 0.0 <= self.explore <= 1.0):
                raise StrategyError(f"greedy-descent: explore must be in [0, 1], got {self.explore!r}")

    def _propose(self, n: int, rng: random.Random) -> Sequence[Configuration]:
        out: list[Configuration] = []
        incumbent = self.best_feasible(self.target_epsilon())
        if incumbent is not None:
            moves = [
                cfg
                for cfg in self.space.neighbours(incumbent.config)
                if not self.is_seen(cfg) and self.problem.is_admissible(cfg)
            ]
            moves.sort(key=lambda cfg: (self.problem.cost(cfg), cfg.to_json()))  # cheapest first, ties by name
            for cfg in moves:
                if len(out) == n:
                    break
                if rng.random() >= self.options.explore:
                    out.append(cfg)
        out += self._random_unseen(rng, n - len(out), exclude=out)
        return out


# ---------------------------------------------------------------------- the demonstration
def toy_problem():
    """A model-free landscape: 6 blocks x 4 widths, additive cost, damage growing as blocks shrink."""
    from tocsr_nas.searchspace import SearchSpace

    widths = {"full": 1.0, "3/4": 0.75, "1/2": 0.5, "1/4": 0.25}
    space = SearchSpace.from_choices({f"block{i}": list(widths) for i in range(6)}, name="toy")

    def cost(cfg: Configuration) -> float:
        return sum(widths[v] ** 2 * (i + 1) for i, v in enumerate(cfg.values()))

    def quality(cfg: Configuration) -> float:
        return sum((1 - widths[v]) ** 2 * 0.02 * (6 - i) for i, v in enumerate(cfg.values()))

    return space, cost, quality


def by_hand(space, cost, quality) -> None:
    """The ask/tell loop, without the search loop around it."""
    from tocsr_nas.strategies import Observation, Problem, make_strategy

    problem = Problem(space, cost=cost, epsilons=(0.05,))
    strategy = make_strategy("greedy-descent", problem, seed=0, explore=0.0)
    for _ in range(6):
        for cfg in strategy.ask(2):
            strategy.tell(Observation(cfg, quality=quality(cfg), cost=cost(cfg)))
    best = strategy.best_feasible(0.05)
    print(f"by hand, 12 evaluations: best feasible cost {best.cost:.3f} (teacher {cost(space.default_config()):.3f})")


def compare(space, cost, quality, budget: int, out: Path) -> None:
    """The same problem through ``tocsr_nas.search``, against random search."""
    import tocsr_nas

    for name in ("greedy-descent", "random"):
        result = tocsr_nas.search(space, quality=quality, cost=cost, epsilon=0.05, strategy=name, budget=budget,
                                  seed=0, out_dir=out / f"toy-{name}", progress=False)
        best = result.best
        print(f"{name:>15}: {budget} evaluations, best feasible cost "
              f"{best.gmacs if best else math.nan:.3f} (trial {best.trial if best else '-'})")


def conformance(name: str = "greedy-descent") -> int:
    """Run the shared strategy conformance kit on ``name`` (in this process, where it is registered)."""
    from tocsr_nas.strategies.testing import conformance_checks, run_conformance

    try:
        run_conformance(name)
    except AssertionError as exc:
        print(f"conformance suite on {name!r}: FAILED ({exc})")
        return 1
    print(f"conformance suite on {name!r}: passed ({len(conformance_checks())} checks)")
    return 0


def cli_search(out: Path, *, budget: int, quick: bool) -> int:
    """Make a teacher folder and a small surrogate library, then run the CLI with ``--strategy greedy-descent``."""
    from tocsr_nas.stages.distill import DistillConfig, distill_teacher
    from tocsr_nas.stages.space import build_space
    from tocsr_nas.searchspace import SpaceSpec
    from tocsr_nas.teacher import Teacher, build_teacher, default_teacher_dir
    from tocsr_nas.errors import TocsrError

    try:
        teacher_dir = default_teacher_dir()
        teacher = Teacher.load(teacher_dir)
    except TocsrError as exc:  # a checkout without the trained teacher: use the preset's random weights
        log.warning("shipped teacher unavailable (%s); using the tiny preset with random weights", exc)
        teacher, teacher_dir = build_teacher("tiny", seed=0), out / "teacher"
        teacher.save(teacher_dir)
    spec = SpaceSpec.from_yaml("""
name: attention-and-samplers
rules:
  - {name: attentions, match: "*attentions.*", type: Transformer2DModel, candidates: [skip, conv_mixer]}
  - {name: downsamplers, match: "*downsamplers.*", candidates: [pool_down]}
  - {name: upsamplers, match: "*upsamplers.*", candidates: [light_up]}
""")
    space = build_space(teacher.unet, spec, probe=teacher.unet_example_inputs(1, resolution=64))
    library = out / "library"
    if not (library / "manifest.json").is_file():
        steps, samples = (3, 8) if quick else (60, 64)
        distill_teacher(teacher, space, library, DistillConfig(steps=steps, samples=samples, val_samples=4,
                                                              capture_batch=8, batch_size=4), progress=False)
    command = [
        sys.executable, "-m", "tocsr_nas.cli", "--plugin", str(Path(__file__).resolve()),
        "search", "--teacher", str(teacher_dir), "--surrogates", str(library), "--epsilon", "0.1,0.3",
        "--strategy", "greedy-descent", "--budget", str(budget), "--val-samples", "4" if quick else "16",
        "--threads", "1", "--no-progress", "--out", str(out / "cli-search"),
    ]
    print("$", " ".join(command[2:]).replace("tocsr_nas.cli", "tocsr-nas", 1))
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/custom_strategy"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="small budgets (the test setting)")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line search (no model needed then)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    space, cost, quality = toy_problem()
    by_hand(space, cost, quality)
    compare(space, cost, quality, budget=15 if args.quick else 40, out=args.out)
    if conformance() != 0:
        return 1
    if not args.no_cli:
        return cli_search(args.out, budget=5 if args.quick else 12, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
