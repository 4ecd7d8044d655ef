"""Fixtures of the robustness catalogue: finished artefacts of every stage, built once per session.

``artefacts`` builds each artefact on first use (a test that needs only the teacher never distils
anything) and hands out its path; they are shared and read-only: a case that damages one copies it
first (:meth:`Artefacts.copy`).

The run ends with the catalogue's count by command: cases, handled (passed), and any case marked
``xfail`` (a known gap) with its reason.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from micro_spaces import micro_space  # tests/micro_spaces.py

#: the micro space of the catalogue: attention blocks and samplers of the tiny teacher
MICRO_SPACE = micro_space("micro", "attentions", "downsamplers")

#: fast settings of a micro search
FAST_SEARCH = ["--val-samples", "4", "--threads", "1", "--no-progress"]


class Artefacts:
    """Lazily built, read-only artefacts of every stage (a property each; the first use builds it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Path] = {}

    def _once(self, key: str, build) -> Path:
        if key not in self._made:
            path = self.root / key
            build(path)
            self._made[key] = path
        return self._made[key]

    @property
    def teacher(self) -> Path:
        """A saved ``tiny`` teacher with random weights (seed 0)."""
        from tocsr_nas.teacher import build_teacher

        return self._once("teacher", lambda p: build_teacher("tiny", seed=0).save(p))

    @property
    def space(self) -> Path:
        """The micro space YAML."""
        return self._once("space.yaml", lambda p: p.write_text(MICRO_SPACE))

    @property
    def library(self) -> Path:
        """A surrogate library distilled for the micro space (3 steps a pair)."""
        from tocsr_nas.cli import main

        teacher, space = self.teacher, self.space

        def build(p: Path) -> None:
            argv = ["distill", "--teacher", str(teacher), "--space", str(space), "--out", str(p), "--steps", "3",
                    "--samples", "8", "--val-samples", "4", "--batch-size", "4",
                    "--threads", "1", "--no-progress"]
            assert main(argv) == 0

        return self._once("library", build)

    @property
    def search(self) -> Path:
        """A finished search (random strategy, 4 evaluations, epsilons 0.05 and 0.5)."""
        from tocsr_nas.cli import main

        teacher, library, space = self.teacher, self.library, self.space

        def build(p: Path) -> None:
            argv = ["search", "--teacher", str(teacher), "--surrogates", str(library), "--space", str(space),
                    "--epsilon", "0.05,0.5", "--strategy", "random", "--budget", "4", "--out", str(p), *FAST_SEARCH]
            assert main(argv) == 0

        return self._once("search", build)

    @property
    def compact(self) -> Path:
        """The compact UNet exported from :attr:`search` (its best at epsilon 0.5)."""
        from tocsr_nas.cli import main

        search = self.search
        return self._once("compact", lambda p: main(["export", "--search", str(search), "--epsilon", "0.5", "--out", str(p)]))

    @property
    def sr_teacher(self) -> Path:
        """A saved micro teacher (``tocsr_nas.sr.testing.micro_teacher``), the base of the SR models."""
        from tocsr_nas.sr.testing import micro_teacher

        return self._once("sr-teacher", lambda p: micro_teacher().save(p))

    @property
    def sr(self) -> Path:
        """A multi-step SR model trained for two steps on :attr:`sr_teacher`."""
        from tocsr_nas.sr.train import SRTrainConfig, train_sr

        base = self.sr_teacher
        config = SRTrainConfig(steps=2, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2,
                               sampler_steps=2, tile=8)
        return self._once("sr", lambda p: train_sr(base, p, config, progress=False))

    @property
    def onestep(self) -> Path:
        """A one-step model distilled from :attr:`sr` for two steps."""
        from tocsr_nas.sr.onestep import DistillConfig, distill_onestep

        sr = self.sr
        config = DistillConfig(
            steps=2, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2, pixel_items=1, refine_steps=2, refine_pool=2
        )
        return self._once("onestep", lambda p: distill_onestep(sr, p, config, progress=False))

    @property
    def image(self) -> Path:
        """A 24x24 RGB PNG of smooth colours."""

        def build(p: Path) -> None:
            y, x = np.mgrid[0:24, 0:24]
            rgb = np.stack([x * 10, y * 10, (x + y) * 5], axis=-1).astype(np.uint8)
            Image.fromarray(rgb).save(p)

        return self._once("image.png", build)

    def names(self) -> dict[str, str]:
        """Placeholders for :class:`~robustness.catalogue.Case` argv: each property, built on first use."""
        return _LazyNames(self)

    def copy(self, name: str, dest: Path) -> Path:
        """Copy artefact ``name`` to ``dest`` (a file or a folder) and return ``dest``."""
        source = getattr(self, name)
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            shutil.copyfile(source, dest)
        return dest


class _LazyNames(dict):
    """A dict for ``str.format`` that builds an artefact only when a placeholder names it."""

    def __init__(self, artefacts: Artefacts) -> None:
        super().__init__()
        self._artefacts = artefacts

    def __missing__(self, key: str) -> str:
        value = str(getattr(self._artefacts, key))
        self[key] = value
        return value


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory) -> Artefacts:
    """The session's :class:`Artefacts` (read-only: copy before damaging)."""
    return Artefacts(tmp_path_factory.mktemp("robustness"))


# --- the count by command ------------------------------------------------------------------------

_outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_gaps: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if "robustness" not in report.nodeid or "[" not in report.nodeid:
        return
    param = report.nodeid.split("[", 1)[1].rstrip("]")
    if ":" not in param:
        return
    command = param.split(":", 1)[0].replace("-", " ")
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            _outcomes[command]["unhandled"] += 1
            _gaps.append(f"{param}: {report.wasxfail}")
        elif report.passed:
            _outcomes[command]["handled"] += 1
        elif report.skipped:
            _outcomes[command]["skipped"] += 1
        else:
            _outcomes[command]["failed"] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if not _outcomes:
        return
    write = terminalreporter.write_line
    write("")
    write("robustness catalogue: cases by command")
    write(f"{'command':<16}{'cases':>7}{'handled':>9}{'unhandled':>11}{'failed':>8}")
    total = defaultdict(int)
    for command in sorted(_outcomes):
        row = _outcomes[command]
        cases = sum(row.values())
        total["cases"] += cases
        for k in ("handled", "unhandled", "failed"):
            total[k] += row[k]
        write(f"{command:<16}{cases:>7}{row['handled']:>9}{row['unhandled']:>11}{row['failed']:>8}")
    write(f"{'all':<16}{total['cases']:>7}{total['handled']:>9}{total['unhandled']:>11}{total['failed']:>8}")
    for gap in _gaps:
        write(f"  unhandled {gap}")
