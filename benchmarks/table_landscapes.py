"""Real, published NAS benchmark tables as landscapes with an exact constrained optimum.

Each table is committed as a small CSV under ``benchmarks/data/`` (where it comes from, how it was
converted and the sanity checks: ``benchmarks/data/SOURCE.md``) and read into an
:class:`~landscapes.EnumeratedLandscape`: every configuration of a small categorical space with its
cost and quality loss, the optimum ``min cost s.t. quality <= epsilon`` a scan of the table.

* ``macro``: NAS-Bench-Macro (CIFAR-10): 8 layers x {``mb6_k5``, ``mb3_k3``, ``identity``}, all
  6,561 architectures. Cost = FLOPs (MFLOPs, the benchmark's own count); quality loss = the
  teacher's mean test accuracy minus the architecture's, in accuracy fraction (0.01 = one point),
  teacher = the largest choice in every layer (``mb6_k5`` x 8, 92.95%).
* ``graph-arxiv`` and ``graph-cora``: NAS-Bench-Graph (ogbn-arXiv, Cora), the chain sub-space of
  its cell: the link pattern fixed to ``[0, 1, 2, 3]`` (each of the four GNN layers takes the previous one's output), each
  layer one of the benchmark's 9 operations; the all-``skip`` configuration (no GNN layer at all,
  absent from the benchmark) is excluded by a space constraint (at most three ``skip``):
  6,560 configurations, 4,680 distinct architectures of the benchmark (the others are
  isomorphic: the benchmark's own canonical hash, committed per row). Cost = parameters (millions;
  the benchmark has no FLOPs); quality loss = the reference architecture's test accuracy minus
  the architecture's (fraction). The reference (= the teacher, proposed first) is the most accurate
  architecture of the sub-space, not the largest: the largest operation in every layer (``arma``
  x 4, 1.46 M parameters) scores 15.2% on Cora (deep GNNs over-smooth), which would make almost
  every architecture "better than the teacher" and the problem trivial. On Cora the cheapest
  architecture (one GCN layer) is feasible at every quantile from 0.02 to 0.2, so ``graph-cora``
  is an easy landscape; on arXiv depth pays and the optimum (0.089 M at ``q = 0.1``) is more than
  twice the cheapest architecture (0.039 M): ``graph-arxiv`` is the discriminating one.
* ``cell-<dataset>`` (``citeseer``, ``pubmed``, ``photo``, ``computers``, ``cs``, ``physics``):
  NAS-Bench-Graph's whole cell on six datasets no default was tuned on (confirmation tables): a
  ``links`` block (the benchmark's 9 link patterns, e.g. ``0123`` the chain, ``0000`` four
  parallel layers on the input) and four layers x 9 operations, the all-``skip`` operations
  excluded as above: 59,040 configurations onto all 26,206 architectures of the benchmark (the
  benchmark's canonical hash of every configuration is committed in one table shared by the
  datasets). Cost, quality and teacher as for ``graph-*``; the link pattern interacts with every
  layer (which layers are parallel, which stacked), so this space is not additive per block.

Epsilon: the ``q``-quantile of all qualities of the table (a fraction ``q`` of the space is
feasible), written ``LABEL@qQ`` (``macro@q0.05``); the default ``q`` is :data:`DEFAULT_QUANTILE`.
No prior: these are black-box landscapes (``prior()`` is ``None``, so ``make_problem(land)`` and
``make_problem(land, with_prior=False)`` are the same problem).
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from landscapes import EnumeratedLandscape

from tocsr_nas.searchspace import Configuration, MaxCount, SearchSpace

__all__ = ["DATA", "DEFAULT_QUANTILE", "TABLES", "CELL_DATASETS", "TableLandscape", "cell_landscape", "graph_landscape", "macro_landscape", "table_landscape"]

DATA = Path(__file__).resolve().parent / "data"
#: epsilon = this quantile of all qualities unless the label says otherwise (one tenth feasible)
DEFAULT_QUANTILE = 0.1

#: NAS-Bench-Macro's encoding: '0' Identity, '1' MB3_K3, '2' MB6_K5 (its README); teacher first
MACRO_CHOICES = {"2": "mb6_k5", "1": "mb3_k3", "0": "identity"}
#: NAS-Bench-Graph's operations (``gnn_list`` of its ``architecture.py``)
GRAPH_OPS = ["gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip"]
#: the datasets whose whole-cell tables are committed (``nas_bench_graph_<dataset>.csv.gz``)
CELL_DATASETS = ("citeseer", "pubmed", "photo", "computers", "cs", "physics")


@dataclass
class TableLandscape(EnumeratedLandscape):
    """An :class:`EnumeratedLandscape` whose cost is also defined on the configurations the space's
    constraints exclude (``invalid_cost``): strategies may price a configuration before checking
    it (the tuner adapters report a penalty at its cost), but never evaluate one."""

    invalid_cost: float = math.nan

    def cost(self, config: Mapping[str, str]) -> float:
        row = self.table.get(Configuration(dict(config)).to_json())
        return self.invalid_cost if row is None else row[0]

    def with_epsilon(self, epsilon: float) -> "TableLandscape":
        return replace(self, epsilon=float(epsilon))


def _finish(name: str, space: SearchSpace, table: dict[str, tuple[float, float, float]], quantile: float) -> TableLandscape:
    n_valid = sum(1 for _ in space.enumerate())
    if len(table) != n_valid:
        raise ValueError(f"{name}: {len(table)} rows, the space has {n_valid} valid configurations")
    # an excluded configuration is priced like the cheapest one (NAS-Bench-Graph's all-skip: no GNN layer)
    land = TableLandscape(name, space, table, math.nan, None, min(v[0] for v in table.values()))
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"{name}: the epsilon quantile must lie in (0, 1), got {quantile}")
    return land.with_epsilon(land.epsilon_at_quantile(quantile))


def macro_landscape(quantile: float = DEFAULT_QUANTILE, *, path: Path = DATA / "nas_bench_macro_cifar10.csv") -> TableLandscape:
    """NAS-Bench-Macro (CIFAR-10): cost MFLOPs, quality = teacher accuracy - accuracy (fraction).

    Args:
        quantile: epsilon is this quantile of all 6,561 qualities.
        path: the committed CSV (``arch``, ``mean_acc``, ``std``, ``params``, ``flops``).

    Returns:
        The landscape, named ``macro`` (``table`` values: ``(MFLOPs, params, quality)``).
    """
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    space = SearchSpace.from_choices({f"layer{i}": list(MACRO_CHOICES.values()) for i in range(8)}, name="nas-bench-macro")
    acc = {r["arch"]: float(r["mean_acc"]) for r in rows}
    teacher = acc["2" * 8]
    table = {}
    for r in rows:
        cfg = Configuration({f"layer{i}": MACRO_CHOICES[ch] for i, ch in enumerate(r["arch"])})
        table[cfg.to_json()] = (float(r["flops"]) / 1e6, float(r["params"]), (teacher - acc[r["arch"]]) / 100.0)
    return _finish("macro", space, table, quantile)


def graph_landscape(dataset: str = "cora", quantile: float = DEFAULT_QUANTILE, *, path: Path | None = None) -> TableLandscape:
    """NAS-Bench-Graph's chain sub-space on ``dataset``: cost = parameters (M), quality = reference accuracy - accuracy.

    Args:
        dataset: the dataset whose CSV is committed (``nas_bench_graph_<dataset>_chain.csv``).
        quantile: epsilon is this quantile of all 6,560 qualities.
        path: the CSV (``op0..op3``, ``bench_hash``, ``perf``, ``params_m``, ``latency_s``);
            default the committed one.

    Returns:
        The landscape, named ``graph-<dataset>``; each layer's first choice is the reference
        architecture's operation (the teacher).
    """
    path = path or DATA / f"nas_bench_graph_{dataset}_chain.csv"
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["perf"] != ""]  # the all-skip row has no entry
    ref = max(rows, key=lambda r: (float(r["perf"]), -float(r["params_m"])))
    choices = {f"layer{i}": [ref[f"op{i}"]] + [o for o in GRAPH_OPS if o != ref[f"op{i}"]] for i in range(4)}
    space = SearchSpace.from_choices(choices, [MaxCount(candidate="skip", count=3)], name=f"nas-bench-graph-{dataset}-chain")
    best = float(ref["perf"])
    table = {}
    for r in rows:
        cfg = Configuration({f"layer{i}": r[f"op{i}"] for i in range(4)})
        table[cfg.to_json()] = (float(r["params_m"]), float(r["params_m"]) * 1e6, best - float(r["perf"]))
    return _finish(f"graph-{dataset}", space, table, quantile)


def _read_gz_csv(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="", encoding="ascii") as fh:
        return list(csv.DictReader(fh))


def cell_landscape(dataset: str, quantile: float = DEFAULT_QUANTILE, *, data: Path = DATA) -> TableLandscape:
    """NAS-Bench-Graph's whole cell on ``dataset``: a link pattern and four operations; cost = parameters (M).

    Args:
        dataset: one of :data:`CELL_DATASETS` (its ``nas_bench_graph_<dataset>.csv.gz``: ``bench_hash``,
            ``perf``, ``params_m``, ``latency_s`` for every architecture of the benchmark).
        quantile: epsilon is this quantile of all 59,040 qualities.
        data: the folder holding those files and ``nas_bench_graph_cell_hashes.csv.gz`` (``link``,
            ``op0..op3``, ``bench_hash``: the benchmark's canonical hash of each configuration).

    Returns:
        The landscape, named ``cell-<dataset>``: blocks ``links`` and ``layer0..3``; each block's first
        choice is the reference's (the most accurate configuration, the cheaper one on a tie: the teacher).
    """
    bench = {r["bench_hash"]: (float(r["perf"]), float(r["params_m"])) for r in _read_gz_csv(data / f"nas_bench_graph_{dataset}.csv.gz")}
    rows = _read_gz_csv(data / "nas_bench_graph_cell_hashes.csv.gz")
    missing = {r["bench_hash"] for r in rows} - bench.keys()
    if missing:
        raise ValueError(f"cell-{dataset}: {len(missing)} architectures of the cell have no entry in the table")
    ref = max(rows, key=lambda r: (bench[r["bench_hash"]][0], -bench[r["bench_hash"]][1]))
    links = sorted({r["link"] for r in rows})
    choices = {"links": [ref["link"]] + [lk for lk in links if lk != ref["link"]]}
    choices |= {f"layer{i}": [ref[f"op{i}"]] + [o for o in GRAPH_OPS if o != ref[f"op{i}"]] for i in range(4)}
    space = SearchSpace.from_choices(choices, [MaxCount(candidate="skip", count=3)], name=f"nas-bench-graph-{dataset}-cell")
    best = bench[ref["bench_hash"]][0]
    table = {}
    for r in rows:
        perf, params = bench[r["bench_hash"]]
        cfg = Configuration({"links": r["link"], **{f"layer{i}": r[f"op{i}"] for i in range(4)}})
        table[cfg.to_json()] = (params, params * 1e6, best - perf)
    return _finish(f"cell-{dataset}", space, table, quantile)


#: landscape label -> builder taking the epsilon quantile
TABLES = {
    "macro": macro_landscape,
    "graph-arxiv": lambda q: graph_landscape("arxiv", q),
    "graph-cora": lambda q: graph_landscape("cora", q),
    **{f"cell-{ds}": (lambda q, ds=ds: cell_landscape(ds, q)) for ds in CELL_DATASETS},
}


def table_landscape(label: str) -> TableLandscape:
    """The table landscape ``label``: ``NAME`` or ``NAME@qQ`` (epsilon at quantile ``Q``), NAME in :data:`TABLES`.

    Raises:
        KeyError: an unknown NAME or a malformed suffix.
    """
    name, _, suffix = label.partition("@")
    if name not in TABLES or (suffix and not suffix.startswith("q")):
        raise KeyError(f"unknown table landscape {label!r}; choose from {sorted(TABLES)} (optionally NAME@qQUANTILE)")
    quantile = float(suffix[1:]) if suffix else DEFAULT_QUANTILE
    land = TABLES[name](quantile)
    land.name = label
    return land


def brute_force_optimum(land: EnumeratedLandscape) -> float:
    """The optimum cost by a vectorised scan (a check on :meth:`EnumeratedLandscape.optimum`)."""
    vals = np.array(list(land.table.values()))
    return float(vals[vals[:, 2] <= land.epsilon, 0].min())
