"""``notebooks/pareto_explorer.ipynb`` runs top to bottom on real search outputs.

Two small searches (``ecbo`` and ``random``, same seed and budget) on a model-free space with an
epsilon sweep write their folders, and a third (``ecbo`` again, in a folder of the same name); the notebook is executed with nbclient in a python3 kernel
of this interpreter, pointed at them through ``TOCSR_SEARCH_DIRS``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from tocsr_nas import search  # noqa: E402
from tocsr_nas.searchspace import SearchSpace  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "pareto_explorer.ipynb"
WIDTHS = {"full": 4.0, "half": 2.0, "quarter": 1.0}
DAMAGE = {"full": 0.0, "half": 0.005, "quarter": 0.02}


def _space() -> SearchSpace:
    return SearchSpace.from_choices({f"down.{i}": list(WIDTHS) for i in range(5)}, name="toy")


def _cost(cfg) -> dict[str, float]:
    return {"gmacs": sum(WIDTHS[v] for v in cfg.values()) / 10, "params": sum(1e5 * WIDTHS[v] ** 2 for v in cfg.values())}


def _quality(cfg) -> float:
    return sum(DAMAGE[v] * (1 + i / 4) for i, v in enumerate(cfg.values()))


def _kernel_name(tmp_path: Path) -> str:
    """A kernel spec that runs THIS interpreter (installed into a temporary folder if needed)."""
    from jupyter_client.kernelspec import KernelSpecManager

    ksm = KernelSpecManager()
    spec = ksm.find_kernel_specs().get("python3")
    if spec is not None:
        argv0 = ksm.get_kernel_spec("python3").argv[0]
        if argv0 in ("python", "python3") or Path(argv0).resolve() == Path(sys.executable).resolve():
            return "python3"
    from ipykernel.kernelspec import install

    prefix = tmp_path / "jupyter"
    install(prefix=str(prefix), kernel_name="tocsr-test")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")])
    return "tocsr-test"


def test_pareto_explorer_runs_on_real_searches(tmp_path, monkeypatch):
    dirs = []
    for strategy in ("ecbo", "random"):
        out = tmp_path / f"search-{strategy}"
        search(_space(), quality=_quality, cost=_cost, epsilon=[0.05, 0.1], strategy=strategy, budget=12, seed=0,
               out_dir=out, progress=False)
        dirs.append(str(out))
    # the same folder name, strategy and seed under another parent: a distinct label, not a dropped search
    again = tmp_path / "again" / "search-ecbo"
    search(_space(), quality=_quality, cost=_cost, epsilon=[0.05, 0.1], strategy="ecbo", budget=6, seed=0,
           out_dir=again, progress=False)
    dirs.append(str(again))
    monkeypatch.setenv("TOCSR_SEARCH_DIRS", ",".join(dirs))
    kernel = _kernel_name(tmp_path)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=kernel, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "\n".join(
        str(o.get("data", {}).get("text/plain", o.get("text", "")))
        for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "search-ecbo (ecbo, seed 0)" in text and "search-random (random, seed 0)" in text
    assert "again/search-ecbo (ecbo, seed 0)" in text  # three searches, three labels
    assert "trials feasible at epsilon 0.05" in text and "replaced" in text  # which blocks feasible trials replace
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # two Pareto panels (one figure), convergence, heat map, bars, replacement shares
    assert "down.0" in text  # the per-block table
