"""Fixtures shared by the tests of the composing layer (``tocsr_nas``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsr_nas.stages.distill import DistillConfig, distill_teacher
from tocsr_nas.stages.space import build_space
from tocsr_nas.teacher import build_teacher


@pytest.fixture(scope="session")
def saved_library(tmp_path_factory):
    """``make(space_yaml, **distill_config) -> {"teacher", "surrogates", "space", "root"}``: a saved random
    tiny teacher (seed 0), the space YAML and a library distilled for it with the given
    :class:`~tocsr_nas.stages.distill.DistillConfig` fields; each distinct request is built once per session."""
    made: dict[tuple, dict[str, Path]] = {}

    def make(space_yaml: str, **config) -> dict[str, Path]:
        key = (space_yaml, tuple(sorted(config.items())))
        if key not in made:
            root = tmp_path_factory.mktemp("saved-library")
            teacher = build_teacher("tiny", seed=0)
            teacher.save(root / "teacher")
            (root / "space.yaml").write_text(space_yaml)
            probe = teacher.unet_example_inputs(1, resolution=teacher.vae_scale_factor * 8)
            space = build_space(teacher.unet, root / "space.yaml", probe=probe)
            distill_teacher(teacher, space, root / "lib", DistillConfig(**config), progress=False)
            made[key] = {"teacher": root / "teacher", "surrogates": root / "lib", "space": root / "space.yaml", "root": root}
        return made[key]

    return make
