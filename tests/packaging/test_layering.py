"""The layering of the four folders, read from the source: dependencies point one way, no import cycles.

* ``tocsr_nas.searchspace`` imports nothing else of the project;
* ``tocsr_nas.surrogates`` and ``tocsr_nas.evaluators`` import ``searchspace`` and the leaf modules
  ``tocsr_nas._io``, ``tocsr_nas.errors`` and ``tocsr_nas.locks`` (never each other, never the
  composing layer);
* the core never imports the command line: only ``tocsr_nas.cli`` and ``tocsr_nas.commands`` do;
* module-level imports between the project's modules form no cycle.

Only module-level imports count (an import inside a function runs on first use and is how a
light module defers a heavy one).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"tocsr_nas": "nas", "tocsr_nas.searchspace": "searchspace", "tocsr_nas.surrogates": "surrogates",
           "tocsr_nas.evaluators": "evaluators"}
LEAVES = {"tocsr_nas._io", "tocsr_nas.errors", "tocsr_nas.locks"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _top_level_imports(name: str, path: Path) -> set[str]:
    """Project modules imported at module level (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    out.add(full if full in MODULES else base)

    visit(tree.body)
    return {m for m in out if m in MODULES}


GRAPH = {name: _top_level_imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    for package in ("tocsr_nas.searchspace", "tocsr_nas.surrogates", "tocsr_nas.evaluators"):
        if module == package or module.startswith(package + "."):
            return package
    return "tocsr_nas"


def test_the_source_tree_is_found():
    assert {"tocsr_nas.search.loop", "tocsr_nas.strategies.ecbo", "tocsr_nas.surrogates.supernet"} <= set(MODULES)


@pytest.mark.parametrize("layer,allowed", [
    ("tocsr_nas.searchspace", {"tocsr_nas.searchspace"}),
    ("tocsr_nas.surrogates", {"tocsr_nas.searchspace", "tocsr_nas.surrogates"}),
    ("tocsr_nas.evaluators", {"tocsr_nas.searchspace", "tocsr_nas.evaluators"}),
])
def test_lower_layers_import_only_below_them(layer, allowed):
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items() if _layer(module) == layer
        for target in targets
        if _layer(target) not in allowed and not (layer != "tocsr_nas.searchspace" and target in LEAVES)
    )
    assert not bad, "\n".join(bad)


def test_leaf_modules_import_nothing_of_the_composing_layer():
    for leaf in LEAVES:
        assert all(_layer(t) == "tocsr_nas.searchspace" for t in GRAPH[leaf]), (leaf, GRAPH[leaf])


def test_only_the_command_line_imports_the_command_line():
    cli = {m for m in MODULES if m == "tocsr_nas.cli" or m.startswith("tocsr_nas.commands")}
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if m not in cli for t in targets & cli)
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    # a package's __init__ is imported before any of its submodules: that edge is implicit, not a cycle
    graphlib.TopologicalSorter(GRAPH).static_order()  # raises CycleError naming the cycle
