"""Landscape B: how much of the exact optimum rests on lucky hash noise.

The quality of landscape B is ``S(x) + a u(x)`` with a structured part ``S`` and a hash noise
``|a u| <= a = 2%`` of epsilon. The exact optimum may sit where ``S > epsilon`` and the noise
happens to be negative enough. This prints the exact optimum next to the cheapest configuration
with ``S <= epsilon`` (no noise) and with ``S <= epsilon - a`` (feasible whatever the noise), and
their regrets against the exact optimum. A search that cannot predict the noise finds the last
one for certain; anything cheaper it finds by trying configurations near the threshold.

    .venv/bin/python benchmarks/b_noise_floor.py            # well under a minute
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from landscapes import paper_landscape  # noqa: E402


def main() -> int:
    land, _ = paper_landscape()
    best, cfg = land.optimum()
    idx = land.space.encode(cfg)
    print(f"exact optimum: {best:.2f} GMACs, S = {land.structured_idx(idx) / land.epsilon:.4f} eps, "
          f"noise = {land.noise * land.unit_noise(idx) / land.epsilon:+.4f} eps")
    for label, limit in (("S <= epsilon", land.epsilon), ("S <= epsilon - a", land.epsilon - land.noise)):
        cost, found = land.structured_optimum(limit)
        feasible = land.quality(found) <= land.epsilon
        print(f"{label:>17}: {cost:.2f} GMACs, regret {100 * (cost / best - 1):+.2f}%, "
              f"feasible with its noise: {feasible}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
