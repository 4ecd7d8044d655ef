"""Fixtures shared by every test package: the tiny teacher, random and trained.

Both are session-scoped and shared: treat them as read-only (``copy.deepcopy`` one before
training or editing it).
"""

from __future__ import annotations

import pytest
import torch

from tocsr_nas.teacher import Teacher, build_teacher, default_teacher_dir


@pytest.fixture(scope="session")
def tiny_teacher() -> Teacher:
    """The ``tiny`` preset with random weights (seed 0), in eval mode; built in well under a second."""
    return build_teacher("tiny", seed=0)


@pytest.fixture(scope="session")
def trained_tiny_teacher() -> Teacher:
    """The trained ``tiny`` teacher committed at ``nas/assets/teacher-tiny``, in eval mode."""
    return Teacher.load(default_teacher_dir())


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (small models are fastest so, and do not contend with others)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
