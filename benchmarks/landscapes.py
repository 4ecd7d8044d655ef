"""Benchmark landscapes whose constrained optimum ``min cost s.t. quality <= epsilon`` is known exactly.

Every landscape offers the same small interface, which :mod:`benchmarks.run` drives:
``space`` (a :class:`~tocsr_nas.searchspace.SearchSpace`), ``cost(config)`` (GMACs),
``quality(config)`` (lower is better, teacher = 0), ``epsilon``, ``prior()`` (what the strategies
may use as a cheap per-block prior, or ``None``) and ``optimum() -> (cost, config)``.

* :class:`EnumeratedLandscape` (landscape A): every configuration of a small space evaluated once
  and stored in a CSV (``config``, ``gmacs``, ``params``, ``quality``); the optimum is a scan.
  :func:`build_tiny_landscape` makes it from the real tiny teacher, its distilled surrogate library
  and :class:`~tocsr_nas.evaluators.quality.SupernetQuality`, on a subspace of the library's space (the other
  blocks stay ``teacher``).
* :class:`ChainLandscape` (landscape B): a known additive cost table (the ``sd21-vae16`` one at
  512 px, or a random one for the smoke test) and a synthetic quality model over the chain of
  blocks::

      q(x) = sum_b d_b[x_b] + sum_b g_b * sqrt(d_b[x_b]) * sqrt(d_{b+1}[x_{b+1}]) + a * u(x)

  ``d_b[k] = sens_b * (1 - f_{b,k})^{p_b} * r_{b,k}`` where ``f_{b,k}`` is candidate ``k``'s share of
  the teacher block's GMACs (clipped to ``[0, 1]``), ``sens_b`` a log-normal block sensitivity,
  ``p_b`` a returns exponent, ``r`` a jitter; ``g_b ~ N(0.4, 0.3)`` couples neighbours (mostly
  compounding damage); ``u(x) in [-1, 1]`` is a hash of the configuration, ``a = 2%`` of epsilon.
  The damages are scaled so that epsilon is ``budget_fraction`` of the all-cheapest damage.

  The exact optimum (:meth:`ChainLandscape.optimum`) is a dynamic programme along the chain whose
  state is the previous block's choice. Derivation: write ``q = S(x) + a u(x)`` with ``S`` the
  structured part. For two partial assignments ``y, x`` of blocks ``0..b`` ending in the same
  choice, every completion ``s`` adds the same cost and the same structured damage to both (the
  only coupling across ``b`` is through ``x_b``, equal in both). If ``cost(y) <= cost(x)`` and
  ``S(y) <= S(x) - 2a`` then ``q(y+s) <= S(y+s) + a <= S(x+s) - a <= q(x+s)``: ``y+s`` is feasible
  whenever ``x+s`` is, and no dearer, so ``x`` can be dropped (dominance *with margin* ``2a``).
  Partials whose damage already exceeds ``epsilon + a`` (minus the most negative damage the rest
  could still subtract) or whose cost plus the cheapest completion exceeds a known feasible cost
  are dropped too. The survivors are scanned in cost order with the exact (noisy) quality. The
  result is checked by a first-improvement local search (one- and two-block moves) that must not
  find anything cheaper and feasible (:meth:`ChainLandscape.check_optimum`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tocsr_nas.searchspace import Configuration, SearchSpace
from tocsr_nas.strategies import Problem

logger = logging.getLogger(__name__)

__all__ = [
    "ChainLandscape",
    "EnumeratedLandscape",
    "TINY_SUBSPACE",
    "build_tiny_landscape",
    "paper_landscape",
    "toy_chain_landscape",
    "toy_enumerated_landscape",
]


# -- landscape A: enumerated ----------------------------------------------------------------------
@dataclass
class EnumeratedLandscape:
    """Every configuration of ``space`` with a known cost and quality (landscape A).

    Attributes:
        name: label in tables.
        space: the (small) search space.
        table: canonical config JSON -> ``(gmacs, params, quality)``.
        epsilon: the quality threshold.
        prior_table: optional ``block -> candidate -> damage`` prior handed to the strategies.
    """

    name: str
    space: SearchSpace
    table: dict[str, tuple[float, float, float]]
    epsilon: float
    prior_table: dict[str, dict[str, float]] | None = None

    def _row(self, config: Mapping[str, str]) -> tuple[float, float, float]:
        return self.table[Configuration(dict(config)).to_json()]

    def cost(self, config: Mapping[str, str]) -> float:
        return self._row(config)[0]

    def quality(self, config: Mapping[str, str]) -> float:
        return self._row(config)[2]

    def prior(self) -> dict[str, dict[str, float]] | None:
        return self.prior_table

    def optimum(self) -> tuple[float, Configuration]:
        """The cheapest feasible configuration, by a scan of the whole table."""
        best = min((c, key) for key, (c, _, q) in self.table.items() if q <= self.epsilon)
        return best[0], Configuration(json.loads(best[1]))

    def with_epsilon(self, epsilon: float) -> "EnumeratedLandscape":
        return EnumeratedLandscape(self.name, self.space, self.table, float(epsilon), self.prior_table)

    def epsilon_at_quantile(self, fraction: float) -> float:
        """The quality threshold under which ``fraction`` of all configurations are feasible."""
        return float(np.quantile([q for _, _, q in self.table.values()], fraction))

    @classmethod
    def from_csv(cls, path: str | Path, space: SearchSpace, *, name: str, epsilon: float = math.nan,
                 prior: dict[str, dict[str, float]] | None = None) -> "EnumeratedLandscape":
        table = {}
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                table[row["config"]] = (float(row["gmacs"]), float(row["params"]), float(row["quality"]))
        if len(table) != space.size:
            raise ValueError(f"{path}: {len(table)} rows, the space has {space.size} configurations")
        return cls(name, space, table, epsilon, prior)


def pareto_prune(c: np.ndarray, d: np.ndarray, x: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partial solutions of a chain DP sorted by cost, keeping those whose damage beats every cheaper one's by ``margin``.

    ``c``, ``d``: cost and damage of each partial configuration ``x`` (one row each). A row is dropped
    when a cheaper (or equally cheap, less damaged) row has a damage at most ``d - margin``: no
    completion can make it the cheaper feasible choice.
    """
    order = np.lexsort((d, c))
    c, d, x = c[order], d[order], x[order]
    best = np.minimum.accumulate(np.concatenate([[np.inf], d[:-1]]))  # least damage of the cheaper rows
    keep = d < best + margin
    return c[keep], d[keep], x[keep]


def write_table_csv(path: Path, rows: Sequence[tuple[str, float, float, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["config", "gmacs", "params", "quality"])
        writer.writerows(rows)
    tmp.replace(path)


#: landscape A's subspace of the tiny library's space: block -> kept candidates (teacher first);
#: every other block stays ``teacher``. The six dearest blocks at 64 px: 4^5 x 2 = 2048 configurations.
TINY_SUBSPACE: dict[str, list[str]] = {
    "down_blocks.1.attentions.0": ["teacher", "light_transformer(ff_mult=1)", "conv_mixer", "skip"],
    "up_blocks.1.resnets.0": ["teacher", "bottleneck_resnet(ratio=0.5)", "dwsep_resnet", "skip"],
    "up_blocks.1.attentions.0": ["teacher", "light_transformer(ff_mult=1)", "conv_mixer", "skip"],
    "up_blocks.1.upsamplers.0": ["teacher", "light_up"],
    "up_blocks.2.resnets.0": ["teacher", "bottleneck_resnet(ratio=0.125)", "dwsep_resnet", "skip"],
    "up_blocks.2.resnets.1": ["teacher", "bottleneck_resnet(ratio=0.125)", "dwsep_resnet", "skip"],
}


def build_tiny_landscape(
    library_dir: str | Path,
    cache_csv: str | Path,
    *,
    subspace: Mapping[str, Sequence[str]] = TINY_SUBSPACE,
    quality: str = "denoising",
    val_samples: int = 16,
    epsilon_quantile: float = 0.2,
    threads: int = 1,
) -> EnumeratedLandscape:
    """Landscape A: the committed tiny teacher, its library, every configuration of ``subspace`` evaluated once.

    Args:
        library_dir: a complete surrogate library distilled from the committed tiny teacher
            (``tocsr-nas distill --out DIR``); its fingerprint is checked.
        cache_csv: where the evaluations are stored; reused when present and complete (delete it
            after changing the library, the subspace or the validation settings).
        subspace: block -> candidate names kept (teacher first); other blocks stay teacher.
        quality: ``denoising`` or ``agreement``.
        val_samples: validation samples per evaluation (seed 0).
        epsilon_quantile: epsilon is this quantile of all qualities (that fraction is feasible).
        threads: torch threads for the evaluations.
    """
    import torch

    from tocsr_nas.search.setup import normalised_prior, prepare_search
    from tocsr_nas.surrogates.library import SurrogateLibrary
    from tocsr_nas.teacher import Teacher, default_teacher_dir

    torch.set_num_threads(threads)
    space = SearchSpace.from_choices({k: list(v) for k, v in subspace.items()}, name="tiny-subspace")
    teacher = Teacher.load(default_teacher_dir()).eval()
    library = SurrogateLibrary.open(library_dir, teacher_fingerprint=teacher.fingerprint())
    full_prior = normalised_prior(library)
    prior = {p: {n: full_prior[p][n] for n in names} for p, names in subspace.items()}
    cache_csv = Path(cache_csv)
    # what the evaluations depend on; a cache made under other settings (say, before the teacher
    # was retrained) is evaluated afresh instead of silently reused
    made_with = {"teacher": teacher.fingerprint(), "library_space": library.space.hash, "quality": quality,
                 "val_samples": val_samples, "subspace": space.hash}
    sidecar = cache_csv.with_suffix(".json")
    if cache_csv.is_file():
        stored = json.loads(sidecar.read_text()) if sidecar.is_file() else None
        if stored == made_with:
            land = EnumeratedLandscape.from_csv(cache_csv, space, name="A-tiny", prior=prior)
            return land.with_epsilon(land.epsilon_at_quantile(epsilon_quantile))
        logger.warning("%s was made with other settings (%s, now %s): evaluating afresh", cache_csv, stored, made_with)
    # the set-up of `tocsr-nas search` on the library's whole space (validation seed 0, no cache)
    prepared = prepare_search(teacher=teacher, surrogates=library, quality=quality, val_samples=val_samples, prior=False)
    full_space, table, evaluate = prepared.space, prepared.cost, prepared.quality
    base = dict(full_space.default_config())
    rows, t0 = [], time.perf_counter()
    for i, cfg in enumerate(space.enumerate()):
        full = {**base, **cfg}
        cost = table.cost(full)
        rows.append((cfg.to_json(), cost.macs / 1e9, float(cost.params), float(evaluate(full))))
        if (i + 1) % 100 == 0:
            logger.info("landscape A: %d/%d configurations evaluated (%.0f s)", i + 1, space.size, time.perf_counter() - t0)
    cache_csv.parent.mkdir(parents=True, exist_ok=True)
    write_table_csv(cache_csv, rows)
    sidecar.write_text(json.dumps(made_with, indent=1) + "\n")
    land = EnumeratedLandscape.from_csv(cache_csv, space, name="A-tiny", prior=prior)
    return land.with_epsilon(land.epsilon_at_quantile(epsilon_quantile))


# -- landscape B: chain with synthetic quality -----------------------------------------------------
@dataclass
class ChainLandscape:
    """Known additive costs, synthetic chain-structured quality (landscape B); see the module docstring.

    Attributes:
        name: label in tables.
        space: the search space (block order = chain order).
        block_cost: per block, the GMACs of each choice (ragged: blocks have different choice counts).
        damage: per block, the structured damage of each choice (teacher = 0).
        pair_gain: ``g_b`` for each neighbouring pair ``(b, b+1)``.
        noise: ``a``, the bound of the hash noise.
        epsilon: the quality threshold.
        prior_table: per block, the prior damage handed to the strategies (noisy ``damage``).
        seed: seed of the landscape (and of the hash noise).
        base_cost: GMACs outside the searched blocks (added to every configuration's cost).
    """

    name: str
    space: SearchSpace
    block_cost: list[np.ndarray]
    damage: list[np.ndarray]
    pair_gain: np.ndarray
    noise: float
    epsilon: float
    prior_table: list[np.ndarray]
    seed: int
    base_cost: float = 0.0
    _optimum: tuple[float, Configuration] | None = field(default=None, repr=False)

    @classmethod
    def from_costs(
        cls,
        name: str,
        space: SearchSpace,
        block_cost: Sequence[Sequence[float]],
        *,
        base_cost: float = 0.0,
        epsilon: float = 0.05,
        budget_fraction: float = 0.12,
        prior_noise: float = 0.5,
        seed: int = 0,
    ) -> "ChainLandscape":
        """Draw the quality model for a known per-block cost table (``block_cost[b][k]``, ``k = 0`` teacher)."""
        rng = np.random.default_rng(seed)
        costs = [np.asarray(c, dtype=float) for c in block_cost]
        B = len(costs)
        sens = rng.lognormal(0.0, 1.0, size=B)
        power = rng.uniform(0.6, 2.0, size=B)
        damage = []
        for b, c in enumerate(costs):
            frac = np.clip(c / c[0], 0.0, 1.0) if c[0] > 0 else np.zeros_like(c)
            d = sens[b] * (1.0 - frac) ** power[b] * rng.lognormal(0.0, 0.25, size=len(c))
            d[0] = 0.0
            damage.append(d)
        pair_gain = rng.normal(0.4, 0.3, size=B - 1)
        worst = sum(float(d.max()) for d in damage)
        scale = epsilon / (budget_fraction * worst)
        damage = [d * scale for d in damage]
        prior = [d * rng.lognormal(0.0, prior_noise, size=len(d)) for d in damage]
        return cls(name, space, costs, damage, pair_gain, 0.02 * epsilon, epsilon, prior, seed, base_cost)

    # -- evaluation -------------------------------------------------------------------------------
    def _idx(self, config: Mapping[str, str]) -> list[int]:
        return self.space.encode(config)

    def cost_idx(self, idx: Sequence[int]) -> float:
        return self.base_cost + float(sum(c[k] for c, k in zip(self.block_cost, idx)))

    def structured_idx(self, idx: Sequence[int]) -> float:
        d = np.array([dam[k] for dam, k in zip(self.damage, idx)])
        s = np.sqrt(d)
        return float(d.sum() + (self.pair_gain * s[:-1] * s[1:]).sum())

    def unit_noise(self, idx: Sequence[int]) -> float:
        if not any(idx):
            return 0.0
        h = hashlib.sha256(f"{self.seed}|{list(idx)}".encode()).digest()
        return int.from_bytes(h[:8], "little") / 2**64 * 2.0 - 1.0

    def quality_idx(self, idx: Sequence[int]) -> float:
        return self.structured_idx(idx) + self.noise * self.unit_noise(idx)

    def cost(self, config: Mapping[str, str]) -> float:
        return self.cost_idx(self._idx(config))

    def quality(self, config: Mapping[str, str]) -> float:
        return self.quality_idx(self._idx(config))

    def prior(self) -> dict[str, dict[str, float]]:
        return {b.path: {n: float(self.prior_table[i][k]) for k, n in enumerate(b.names)} for i, b in enumerate(self.space.blocks)}

    def with_epsilon(self, epsilon: float) -> "ChainLandscape":
        """The same landscape (same damages and noise seed) at another threshold."""
        return ChainLandscape(self.name, self.space, self.block_cost, self.damage, self.pair_gain, self.noise,
                              float(epsilon), self.prior_table, self.seed, self.base_cost)

    # -- the exact optimum ------------------------------------------------------------------------
    def _greedy(self) -> list[int]:
        """A feasible configuration: best cost-per-damage single swaps from the teacher while feasible."""
        idx = [0] * len(self.block_cost)
        while True:
            q0, c0 = self.quality_idx(idx), self.cost_idx(idx)
            best, best_ratio = None, -math.inf
            for b, c in enumerate(self.block_cost):
                for k in range(len(c)):
                    if k == idx[b]:
                        continue
                    x = list(idx)
                    x[b] = k
                    q, cc = self.quality_idx(x), self.cost_idx(x)
                    if q <= self.epsilon and cc < c0:
                        ratio = (c0 - cc) / max(q - q0, 1e-12)
                        if ratio > best_ratio:
                            best, best_ratio = x, ratio
            if best is None:
                return idx
            idx = best

    def optimum(self) -> tuple[float, Configuration]:
        """Exact ``min cost s.t. quality <= epsilon`` (dynamic programme with margin dominance)."""
        if self._optimum is not None:
            return self._optimum
        B = len(self.block_cost)
        margin = 2.0 * self.noise
        upper = self.cost_idx(self._greedy())
        cheapest = np.array([c.min() for c in self.block_cost])
        rest_cost = np.concatenate([np.cumsum(cheapest[::-1])[::-1][1:], [0.0]])  # (B,) cheapest completion after b
        # the most damage a completion can remove (negative pair gains only)
        neg = [min(0.0, float(self.pair_gain[i])) * math.sqrt(self.damage[i].max() * self.damage[i + 1].max()) for i in range(B - 1)]
        rest_gain = [sum(neg[b:]) for b in range(B)]  # coupling terms (b, b+1), (b+1, b+2), ...
        limit = self.epsilon + self.noise
        states = [(np.array([self.block_cost[0][k]]), np.array([self.damage[0][k]]), np.array([[k]]))
                  for k in range(len(self.block_cost[0]))]
        for b in range(1, B):
            new = []
            for k in range(len(self.block_cost[b])):
                cs, ds, xs = [], [], []
                for j, (c, d, x) in enumerate(states):
                    if len(c) == 0:
                        continue
                    inter = self.pair_gain[b - 1] * math.sqrt(self.damage[b - 1][j] * self.damage[b][k])
                    cs.append(c + self.block_cost[b][k])
                    ds.append(d + self.damage[b][k] + inter)
                    xs.append(np.concatenate([x, np.full((len(x), 1), k)], axis=1))
                if not cs:
                    new.append((np.zeros(0), np.zeros(0), np.zeros((0, b + 1), dtype=int)))
                    continue
                c, d, x = np.concatenate(cs), np.concatenate(ds), np.concatenate(xs)
                keep = (d + rest_gain[b] <= limit) & (self.base_cost + c + rest_cost[b] <= upper + 1e-9)
                c, d, x = c[keep], d[keep], x[keep]
                new.append(pareto_prune(c, d, x, margin))
            states = new
        c = np.concatenate([s[0] for s in states])
        x = np.concatenate([s[2] for s in states])
        for i in np.argsort(c, kind="stable"):
            if self.quality_idx(x[i].tolist()) <= self.epsilon:
                self._optimum = (self.base_cost + float(c[i]), self.space.decode(x[i].tolist()))
                return self._optimum
        raise RuntimeError("no feasible configuration (the teacher always is)")

    def structured_optimum(self, limit: float) -> tuple[float, Configuration]:
        """``min cost s.t. S(x) <= limit`` for the structured (noise-free) part ``S`` of the quality.

        With ``limit = epsilon - a`` every such configuration is feasible whatever its hash noise:
        the cheapest configuration a search can find without betting on the noise. The exact
        optimum is cheaper when it sits on lucky noise.
        """
        return replace(self, noise=0.0, epsilon=float(limit), _optimum=None).optimum()

    def check_optimum(self, *, pairs: bool = True) -> int:
        """Local search around the optimum: count of cheaper feasible neighbours (must be 0).

        Tries every one-block change and (with ``pairs``) every change of two neighbouring blocks.
        """
        cost, cfg = self.optimum()
        idx = self._idx(cfg)
        found = 0
        B = len(idx)
        for b in range(B):
            for k in range(len(self.block_cost[b])):
                x = list(idx)
                x[b] = k
                if self.cost_idx(x) < cost - 1e-9 and self.quality_idx(x) <= self.epsilon:
                    found += 1
                if pairs and b + 1 < B:
                    for k2 in range(len(self.block_cost[b + 1])):
                        y = list(x)
                        y[b + 1] = k2
                        if self.cost_idx(y) < cost - 1e-9 and self.quality_idx(y) <= self.epsilon:
                            found += 1
        return found


RESULTS = Path(__file__).resolve().parent / "results"
#: the sd21-vae16 cost table at 512 px, as :meth:`CostTable.to_json` writes it (made once by :func:`sd21_cost_table`)
SD21_TABLE = RESULTS / "sd21_vae16_512px_costs.json"
#: exact optima of landscape B, keyed by landscape seed, epsilon and budget fraction (the DP takes minutes)
B_OPTIMA = RESULTS / "landscape_b_optima.json"


def sd21_cost_table(resolution: int = 512, *, path: Path | None = SD21_TABLE):
    """The ``sd21-vae16`` cost table (GMACs and params per block x candidate) at ``resolution`` px.

    Read from ``path`` when present, else built with :func:`~tocsr_nas.stages.costs.cost_table_for` (which
    caches under ``~/.cache/tocsr-nas``; a cold build takes minutes on two cores) and written there.
    """
    from tocsr_nas.evaluators import CostTable

    if path is not None and Path(path).is_file() and resolution == 512:
        return CostTable.from_dict(json.loads(Path(path).read_text()))
    from tocsr_nas.stages.costs import cost_table_for
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.teacher import build_teacher

    teacher = build_teacher("sd21-vae16")
    candidates = CandidateCache()
    space = build_space(teacher.unet, None, candidates=candidates)
    table = cost_table_for(teacher, space, resolution, candidates=candidates)
    if path is not None and resolution == 512:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(table.to_json())
    return table


def paper_landscape(*, seed: int = 0, epsilon: float = 0.05, budget_fraction: float = 0.12, prior_noise: float = 0.5,
                    optima: Path | None = B_OPTIMA) -> tuple[ChainLandscape, object]:
    """Landscape B: the ``sd21-vae16`` cost table at 512 px with a synthetic quality model.

    The block order of the chain is the cost table's (the UNet's module order). The exact optimum
    is read from / written to ``optima`` (the dynamic programme takes minutes at this size).
    ``prior_noise`` is the sigma of the log-normal error of the prior handed to the strategies
    (0: the true additive damages); it changes neither the landscape nor its optimum.

    Returns:
        ``(landscape, cost_table)``; the landscape's costs are GMACs with attention counted.
    """
    table = sd21_cost_table()
    space = SearchSpace.from_choices({p: table.candidates(p) for p in table.paths}, name="sd21-vae16")
    block_cost = [[table.cell(b.path, n).macs / 1e9 for n in b.names] for b in space.blocks]
    base = table.teacher().macs / 1e9 - sum(c[0] for c in block_cost)
    land = ChainLandscape.from_costs("B-sd21", space, block_cost, base_cost=base, epsilon=epsilon,
                                     budget_fraction=budget_fraction, prior_noise=prior_noise, seed=seed)
    if optima is not None:
        key = f"seed={seed}|epsilon={epsilon:g}|budget_fraction={budget_fraction:g}"
        known = json.loads(Path(optima).read_text()) if Path(optima).is_file() else {}
        if key in known:
            cfg = Configuration(json.loads(known[key]["config"]))
            land._optimum = (land.cost(cfg), cfg)
        else:
            t0 = time.perf_counter()
            cost, cfg = land.optimum()
            known[key] = {"gmacs": cost, "config": cfg.to_json(), "dp_seconds": time.perf_counter() - t0,
                          "local_search_cheaper_neighbours": land.check_optimum()}
            Path(optima).write_text(json.dumps(known, indent=1))
    return land, table


def toy_chain_landscape(blocks: int = 8, *, seed: int = 0, epsilon: float = 0.05) -> ChainLandscape:
    """A small chain landscape with random ragged costs (the smoke test's stand-in for landscape B)."""
    rng = np.random.default_rng(1000 + seed)
    sizes = rng.integers(2, 5, size=blocks)
    choices, costs = {}, []
    for b, k in enumerate(sizes):
        w = rng.lognormal(0.0, 1.0)
        frac = np.concatenate([[1.0], np.sort(rng.uniform(0.0, 0.9, size=k - 1))[::-1]])
        choices[f"block{b}"] = ["teacher"] + [f"c{i}" for i in range(1, k)]
        costs.append(w * frac)
    space = SearchSpace.from_choices(choices, name="toy-chain")
    return ChainLandscape.from_costs("toy-chain", space, costs, epsilon=epsilon, seed=seed)


def toy_enumerated_landscape(blocks: int = 5, *, seed: int = 0, path: Path | None = None) -> EnumeratedLandscape:
    """A chain landscape enumerated into the CSV format of landscape A (the smoke test's stand-in for A)."""
    chain = toy_chain_landscape(blocks, seed=seed)
    rows = [(cfg.to_json(), chain.cost(cfg), 0.0, chain.quality(cfg)) for cfg in chain.space.enumerate()]
    if path is not None:
        write_table_csv(Path(path), rows)
        land = EnumeratedLandscape.from_csv(path, chain.space, name="toy-enumerated", prior=chain.prior())
    else:
        land = EnumeratedLandscape("toy-enumerated", chain.space, {r[0]: r[1:] for r in rows}, math.nan, chain.prior())
    return land.with_epsilon(land.epsilon_at_quantile(0.2))


def make_problem(land, *, with_prior: bool = True) -> Problem:
    """The :class:`~tocsr_nas.strategies.Problem` every strategy gets for ``land``."""
    return Problem(land.space, cost=land.cost, epsilons=(land.epsilon,), prior=land.prior() if with_prior else None)


Evaluate = Callable[[Configuration], float]
