"""Fixtures shared by every test package: the tiny teacher, random and trained.

Both are session-scoped and shared: treat them as read-only (``copy.deepcopy`` one before
training or editing it).
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

from tocsr_nas.teacher import Teacher, build_teacher, default_teacher_dir

# tests/ on the path: its helper modules (micro_spaces.py) import from every test package
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


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


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster (2 CPUs, loopback, no dashboard), started once per session; its address.

    This process is connected to it (``ray.is_initialized()``), so executors made in-process join it;
    a subprocess joins it through ``RAY_ADDRESS``. Tests that use it are marked ``ray``.
    """
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    if not ray.is_initialized():
        # the workers of this session's job import the test modules' helpers as pytest does
        paths = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 runtime_env={"env_vars": paths})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
