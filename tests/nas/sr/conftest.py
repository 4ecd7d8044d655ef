"""Fixtures of the SR tests: a micro teacher folder, an SR model and a one-step model trained for a step.

All are session-scoped and read-only; a test that trains or edits copies them first.
"""

from __future__ import annotations

import pytest

from tocsr_nas.sr.onestep import DistillConfig, distill_onestep
from tocsr_nas.sr.testing import micro_teacher
from tocsr_nas.sr.train import SRTrainConfig, train_sr

#: the smallest settings that run every code path (micro models, 32 px patches, 4x4 latent crops)
SMALL_SR = dict(steps=2, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2, sampler_steps=2, tile=8)
SMALL_DISTILL = dict(
    steps=2, batch_size=2, pool_size=2, pool_patch=32, crop=4, val_patches=2, pixel_items=1, refine_steps=2, refine_pool=2
)


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """A saved micro teacher (a teacher folder: teacher.json, vae/, unet/, scheduler/, context/)."""
    return micro_teacher().save(tmp_path_factory.mktemp("sr") / "teacher")


@pytest.fixture(scope="session")
def sr_dir(teacher_dir, tmp_path_factory):
    """A multi-step SR model folder trained for two steps."""
    out = tmp_path_factory.mktemp("sr") / "sr"
    train_sr(teacher_dir, out, SRTrainConfig(**SMALL_SR), progress=False)
    return out


@pytest.fixture(scope="session")
def onestep_dir(sr_dir, tmp_path_factory):
    """A one-step model folder distilled from ``sr_dir`` for two steps."""
    out = tmp_path_factory.mktemp("sr") / "onestep"
    distill_onestep(sr_dir, out, DistillConfig(**SMALL_DISTILL), progress=False)
    return out
