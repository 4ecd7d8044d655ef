"""Every ```python block of ``README.md`` and ``docs/*.md`` runs, so the guides never rot.

The blocks of one file run in order in ONE namespace (a later block may use what an earlier one
defined), in a fresh temporary working directory. A block preceded by the line
``<!-- skip-test -->`` is not run (for commands that need minutes or files you do not have);
``text``/``bash``/``yaml`` blocks never run. A block that is meant to fail shows it with
``pytest.raises``-like code of its own (``try``/``except``), so a run that raises fails the test.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARK = "<!-- skip-test -->"
_FENCE = re.compile(r"^```(\w*)\s*$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``[(first line number, code)]`` of the ```python blocks not marked with :data:`SKIP_MARK`.

    Example:
        >>> python_blocks("x\\n```python\\nprint(1)\\n```\\n<!-- skip-test -->\\n```python\\nboom\\n```\\n")
        [(3, 'print(1)\\n')]
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match and match.group(1):
            lang, start = match.group(1), i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            if lang == "python" and previous != SKIP_MARK:
                blocks.append((start + 1, "\n".join(lines[start:end]) + "\n"))
            i = end + 1
            continue
        i += 1
    return blocks


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_block_extraction_honours_the_skip_mark():
    text = "```python\na = 1\n```\n\n<!-- skip-test -->\n\n```python\nraise SystemExit\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "a = 1\n")]


#: registries the guides add to (a strategy, a surrogate type...): restored after each document
_REGISTRIES = (
    ("tocsr_nas.searchspace.constraints", "_CONSTRAINTS"),
    ("tocsr_nas.surrogates.registry", "_REGISTRY"),
    ("tocsr_nas.strategies.base", "_REGISTRY"),
    ("tocsr_nas.evaluators.quality", "_REGISTRY"),
)


@pytest.fixture
def isolated_registries():
    saved = [(registry, dict(registry)) for registry in
             (getattr(importlib.import_module(mod), name) for mod, name in _REGISTRIES)]
    yield
    for registry, content in saved:
        registry.clear()
        registry.update(content)


@pytest.mark.parametrize("path", _documents(), ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch, isolated_registries):
    monkeypatch.chdir(tmp_path)
    # a real module, so that classes defined in the guide (dataclasses, pickling) find their module
    module = types.ModuleType(f"docs_{path.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for line, code in python_blocks(path.read_text(encoding="utf-8")):
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), module.__dict__)  # noqa: S102 - our own docs
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"{path.name}, block at line {line} failed: {type(exc).__name__}: {exc}") from exc
