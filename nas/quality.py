"""Quality of a configuration: route the supernet, evaluate the assembled network on the fixed set.

:class:`SupernetQuality` is the search's quality function for a distilled library: calling it
with a configuration sets the supernet's routing (names only, no copying) and runs the evaluator
once over the validation set. One evaluation costs one forward pass of the assembled network over
the set plus a few element-wise operations: about the cost of a teacher forward over the same
batch for the all-teacher configuration, less for smaller configurations.

Example:
    >>> from tocsr_nas.evaluators import TeacherAgreement
    >>> from tocsr_nas.searchspace import SearchSpace
    >>> from tocsr_nas.teacher import build_teacher
    >>> from tocsr_nas.validation import build_validation_set
    >>> teacher = build_teacher("tiny")
    >>> vs = build_validation_set(teacher, samples=2)
    >>> class Routed(torch.nn.Module):  # any module with set_configuration(cfg) will do
    ...     def __init__(self, unet):
    ...         super().__init__()
    ...         self.unet, self.scale = unet, 1.0
    ...     def set_configuration(self, cfg):
    ...         self.scale = float(cfg["scale"])
    ...     def forward(self, *args, **kwargs):
    ...         return (self.scale * self.unet(*args, **kwargs)[0],)
    >>> quality = SupernetQuality(Routed(teacher.unet), TeacherAgreement(vs))
    >>> quality({"scale": "1"}), quality({"scale": "1.1"}) > 0
    (0.0, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tocsr_nas.evaluators.quality import QualityEvaluator
from tocsr_nas.validation import unet_forward

__all__ = ["SupernetQuality"]


class SupernetQuality:
    """``quality(config) -> float`` for a supernet and a quality evaluator.

    Args:
        supernet: a :class:`~tocsr_nas.surrogates.SuperNet` (or any module with
            ``set_configuration(cfg)`` called like a diffusers UNet); it is put in eval mode.
        evaluator: e.g. :class:`~tocsr_nas.evaluators.DenoisingLossIncrease` on the search's set.
    """

    def __init__(self, supernet: Any, evaluator: QualityEvaluator) -> None:
        if not callable(getattr(supernet, "set_configuration", None)):
            raise TypeError(f"SupernetQuality needs a module with set_configuration(cfg), got {type(supernet).__name__}")
        if not isinstance(evaluator, QualityEvaluator):
            raise TypeError(f"SupernetQuality needs a QualityEvaluator, got {type(evaluator).__name__}")
        self.supernet = supernet.eval()
        self.evaluator = evaluator
        self._forward = unet_forward(self.supernet)

    @property
    def name(self) -> str:
        """The evaluator's registered name (``denoising``, ``agreement``...)."""
        return self.evaluator.name

    @torch.no_grad()
    def __call__(self, config: Mapping[str, str]) -> float:
        """Route the supernet to ``config`` and return the evaluator's quality loss."""
        self.supernet.set_configuration(config)
        return self.evaluator(self._forward)

    def __repr__(self) -> str:
        return f"SupernetQuality({self.evaluator!r})"
