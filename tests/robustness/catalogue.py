"""The robustness catalogue: bad inputs and faults, one table row each.

A :class:`Case` says what a hostile user runs (``argv``, with ``{placeholders}`` for the session's
artefacts and ``{tmp}`` for the test's own folder), what may be prepared first (``setup``: damage a
copy, fill a folder...), the exit code and the one line the command must print, and which paths must
be byte-identical afterwards. :func:`check` runs a case through :func:`tocsr_nas.cli.main` in this
process and asserts all of it; each test module parametrises one test over its table::

    CASES = [Case("search", "epsilon-nan", ["search", ..., "--epsilon", "nan"], "epsilon")]

    @pytest.mark.parametrize("case", params(CASES))
    def test_catalogue(case, artefacts, tmp_path, capsys):
        check(case, artefacts, tmp_path, capsys)

``pytest tests/robustness -q`` ends with the catalogue's count by command (see ``conftest.py``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tocsr_nas.cli import main

__all__ = ["Case", "case_id", "check", "params", "tree_digest"]


@dataclass(frozen=True)
class Case:
    """One bad input or fault.

    Attributes:
        command: the sub-command it exercises (``search``, ``sr train``, ...), for the count.
        name: a short id, unique within the command.
        argv: the command line; each item is ``str.format``-ed with the artefacts' paths
            (``{teacher}``, ``{library}``, ``{space}``, ``{search}``, ``{compact}``, ``{sr_teacher}``,
            ``{sr}``, ``{onestep}``, ``{image}``) and ``{tmp}``, the test's own empty folder.
        match: a regular expression the single stderr line must contain (``re.search``); for
            ``code == 0`` it is matched against stdout+stderr (empty: not checked).
        code: the expected exit code (2 for every user error).
        setup: ``setup(tmp, artefacts)`` runs before the command (copy and damage an artefact,
            create a file in the way...); it may return a dict of extra placeholders.
        unchanged: paths (formatted like ``argv``) whose bytes, and for a folder its whole tree,
            must be identical before and after the command.
        absent: paths that must not exist afterwards (nothing left behind).
        after: ``after(tmp, artefacts, names)`` runs last, for checks a table cannot say.
    """

    command: str
    name: str
    argv: Sequence[str]
    match: str
    code: int = 2
    setup: Callable[[Path, Any], dict[str, str] | None] | None = None
    unchanged: Sequence[str] = ()
    absent: Sequence[str] = ()
    after: Callable[[Path, Any, dict[str, str]], None] | None = None
    marks: Sequence[Any] = field(default=())


def case_id(case: Case) -> str:
    """The pytest id of a case: ``command:name``."""
    return f"{case.command.replace(' ', '-')}:{case.name}"


def params(cases: Sequence[Case]) -> list[Any]:
    """``pytest.param`` of each case, with its id and marks (``xfail`` marks a known gap, with its reason)."""
    import pytest

    ids = [case_id(c) for c in cases]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"duplicate case ids: {sorted(duplicated)}")
    return [pytest.param(c, id=i, marks=list(c.marks)) for c, i in zip(cases, ids)]


def tree_digest(path: Path) -> str:
    """A digest of a file's bytes, or of a folder's whole tree (names and bytes); ``"absent"`` if missing."""
    if not path.exists():
        return "absent"
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path) if p != path else "").encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def check(case: Case, artefacts: Any, tmp: Path, capsys: Any) -> str:
    """Run ``case`` and assert its exit code, its one line, the unchanged and absent paths.

    Returns:
        What the command printed to stderr.
    """
    names = artefacts.names()
    names["tmp"] = str(tmp)
    if case.setup is not None:
        names.update(case.setup(tmp, artefacts) or {})
    argv = [a.format_map(names) for a in case.argv]
    kept = {p: tree_digest(Path(p.format_map(names))) for p in case.unchanged}
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == case.code, f"exit code {code}, expected {case.code}; stderr:\n{err}"
    if case.code == 2:
        assert len(err.splitlines()) == 1, f"expected one line, got:\n{err}"
        assert re.search(case.match, err), f"{case.match!r} not in {err!r}"
        assert "Traceback" not in err
    elif case.match:
        assert re.search(case.match, captured.out + captured.err), captured.out + captured.err
    for p, digest in kept.items():
        assert tree_digest(Path(p.format_map(names))) == digest, f"{p.format_map(names)} changed"
    for p in case.absent:
        assert not Path(p.format_map(names)).exists(), f"{p.format_map(names)} left behind"
    if case.after is not None:
        case.after(tmp, artefacts, names)
    return err
