"""Every script in ``examples/`` runs at its ``--quick`` setting and writes what it promises.

Each example runs in a subprocess (as a user would run it) with ``--out`` in a temporary folder;
the test checks the exit code, the printed summary and the output files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, out: Path, *extra: str, timeout: int = 600) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def check_search_folder(folder: Path, trials: int) -> pd.DataFrame:
    """The files a search writes: trials.csv with one row per evaluation, pareto.csv, best.json, plots."""
    table = pd.read_csv(folder / "trials.csv")
    assert len(table) == trials
    for column in ("trial", "strategy", "config", "hash", "gmacs", "params", "quality", "feasible", "seconds"):
        assert column in table.columns, column
    assert not pd.read_csv(folder / "pareto.csv").empty
    best = json.loads((folder / "best.json").read_text())
    assert best["n_trials"] == trials
    assert (folder / "plots" / "pareto.png").stat().st_size > 0
    return table


def test_every_example_is_tested():
    tested = {"black_box_search.py", "custom_strategy.py", "custom_surrogate.py", "search_tiny_unet.py",
              "custom_space_dit.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_header_says_what_and_how_long(name):
    text = (EXAMPLES / name).read_text()
    doc = text.split('"""')[1]
    assert "--quick" in doc and "Time on a laptop CPU" in doc, name


def test_black_box_search(tmp_path):
    stdout = run_example("black_box_search.py", tmp_path)
    table = check_search_folder(tmp_path, trials=10)
    assert table["quality"].iloc[0] == 0.0  # the first trial is the default configuration: the largest model
    assert "as NNI parameters" in stdout


def test_custom_strategy(tmp_path):
    stdout = run_example("custom_strategy.py", tmp_path)
    assert "conformance suite on 'greedy-descent': passed" in stdout
    table = check_search_folder(tmp_path / "cli-search", trials=5)  # the CLI run, by name through --plugin
    assert set(table["strategy"]) == {"greedy-descent"}
    assert set(pd.read_csv(tmp_path / "toy-greedy-descent" / "trials.csv")["strategy"]) == {"greedy-descent"}


def test_custom_surrogate(tmp_path):
    stdout = run_example("custom_surrogate.py", tmp_path)
    assert re.search(r"conformance kit: [1-9]\d* cases passed", stdout), stdout
    manifest = json.loads((tmp_path / "library" / "manifest.json").read_text())
    assert any(p["type"] == "lowrank_linear_attention" for p in manifest["pairs"])
    check_search_folder(tmp_path / "search", trials=6)


def test_search_tiny_unet(tmp_path):
    stdout = run_example("search_tiny_unet.py", tmp_path)
    check_search_folder(tmp_path / "search", trials=6)
    assert (tmp_path / "pareto.png").stat().st_size > 0
    assert "exported" in stdout and (tmp_path / "compact" / "compact.json").is_file()


def test_custom_space_dit(tmp_path):
    stdout = run_example("custom_space_dit.py", tmp_path)
    table = check_search_folder(tmp_path / "search", trials=6)
    assert "transformer_blocks.1" in table["config"].iloc[0]
    assert "dit_mlp" in stdout
    assert "$ tocsr-nas export" in stdout and (tmp_path / "compact" / "compact.json").is_file()
    assert "load_compact: DiTTransformer2DModel -> Transformer2DModelOutput (2, 16, 16, 16)" in stdout
