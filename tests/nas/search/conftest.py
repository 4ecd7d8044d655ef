"""Fixtures of the search tests: the samplers-only micro library, and ``benchmarks/`` importable for the
smoke tests of its scripts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from micro_spaces import SAMPLERS_SPACE  # tests/micro_spaces.py

#: the repository's ``benchmarks/`` folder (its scripts are not a package)
BENCH = Path(__file__).resolve().parents[3] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="module")
def lib(saved_library):
    """``{"teacher": dir, "surrogates": dir, "space": yaml}``: a saved random tiny teacher and its library
    over the samplers only (:data:`micro_spaces.SAMPLERS_SPACE`)."""
    return saved_library(SAMPLERS_SPACE, steps=2, samples=4, val_samples=2, capture_batch=4, batch_size=2)
