"""The teacher: the model, its presets, its training and the photos it trains on.

* :mod:`~tocsr_nas.teacher.model`: :class:`Teacher` (VAE + UNet + scheduler + null context),
  loading and saving in the diffusers folder layout;
* :mod:`~tocsr_nas.teacher.presets`: ``tiny`` and ``sd21-vae16``, :func:`build_teacher`,
  :func:`default_teacher_dir` (the shipped trained ``tiny``);
* :mod:`~tocsr_nas.teacher.train`: ``tocsr-nas teacher train`` (VAE, then UNet);
* :mod:`~tocsr_nas.teacher.data`: the photos (scikit-image's or a folder), patches, metrics.
"""

from tocsr_nas.teacher.model import LATENT_CHANNELS, NullContext, Teacher, TeacherLoadError
from tocsr_nas.teacher.presets import (
    PRESETS,
    UnknownPresetError,
    available_presets,
    build_teacher,
    default_teacher_dir,
    register_preset,
    shipped_teacher,
)

__all__ = [
    "LATENT_CHANNELS",
    "NullContext",
    "PRESETS",
    "Teacher",
    "TeacherLoadError",
    "UnknownPresetError",
    "available_presets",
    "build_teacher",
    "default_teacher_dir",
    "register_preset",
    "shipped_teacher",
]
