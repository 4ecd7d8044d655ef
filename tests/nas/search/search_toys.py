"""Model-free toy landscapes for the search-loop tests (also run as a script by the kill -9 test), and a small space YAML.

The toy: 4 blocks x 3 options (81 configurations). Cost is additive; quality loss grows as the
model shrinks, with one interaction term, so the feasible set is not a box.
"""

from __future__ import annotations

import json
import sys
import time

from tocsr_nas.searchspace import Configuration, SearchSpace

OPTIONS = {"full": 4.0, "half": 2.0, "tiny": 1.0}
DAMAGE = {"full": 0.0, "half": 0.01, "tiny": 0.035}
BLOCKS = ("b0", "b1", "b2", "b3")


def toy_space() -> SearchSpace:
    return SearchSpace.from_choices({b: list(OPTIONS) for b in BLOCKS}, name="toy")


def toy_gmacs(cfg: Configuration) -> float:
    return sum(OPTIONS[v] for v in cfg.values()) / 4.0


def toy_params(cfg: Configuration) -> float:
    return sum(10.0 * OPTIONS[v] + i for i, v in enumerate(cfg.values()))


def toy_cost(cfg: Configuration) -> dict[str, float]:
    return {"gmacs": toy_gmacs(cfg), "params": toy_params(cfg)}


def toy_quality(cfg: Configuration) -> float:
    values = [cfg[b] for b in BLOCKS]
    q = sum(DAMAGE[v] for v in values)
    if values[0] == "tiny" and values[1] == "tiny":
        q += 0.02
    return round(q, 10)


class SlowQuality:
    """The toy quality, sleeping a little per call (so a subprocess can be killed mid-search)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, cfg: Configuration) -> float:
        time.sleep(self.delay)
        return toy_quality(cfg)


if __name__ == "__main__":
    # python search_toys.py OUT_DIR KWARGS_JSON: a search the kill -9 test interrupts
    from tocsr_nas import search

    out_dir, kwargs = sys.argv[1], json.loads(sys.argv[2])
    delay = kwargs.pop("delay", 0.0)
    search(toy_space(), quality=SlowQuality(delay), cost=toy_cost, out_dir=out_dir, progress=False, **kwargs)
