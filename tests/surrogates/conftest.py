"""Micro teacher blocks (real diffusers blocks, tiny widths) shared by the surrogate tests.

Session-scoped and shared: surrogates copy teacher weights under ``no_grad`` and never modify the
teacher, so treat these as read-only.
"""

from __future__ import annotations

import pytest
from torch import nn

from tocsr_nas.surrogates.testing import micro_teacher_blocks


@pytest.fixture(scope="session")
def micro_blocks() -> dict[str, nn.Module]:
    """``{id: block}`` from :func:`tocsr_nas.surrogates.testing.micro_teacher_blocks` (seed 0, eval mode)."""
    return micro_teacher_blocks(seed=0)
