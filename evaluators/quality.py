"""Quality evaluators: how much worse than the teacher is an assembled network, on a fixed set.

Both evaluators score a denoiser ``forward(x_t, t, context) -> eps_hat`` on a
:class:`ValidationSet`: fixed clean latents ``x0`` of held-out photos, fixed timesteps spread over
the schedule, fixed noise ``eps``, the noisy latents ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``
and the teacher's own predictions ``eps_T`` (computed once, when the set is built). Lower is
better; ``0`` is the teacher itself, so ``epsilon`` reads as "at most this fraction worse than
the teacher".

Notation (sums run over every element of every sample of the set, pooled):

=================  ====================================================================
``eps``            the noise that was added (the regression target)
``eps_T``          the teacher's prediction on ``x_t``
``eps_hat``        the evaluated network's prediction on ``x_t``
``L(f)``           ``sum (f - eps)^2 / n``, the denoising loss (MSE) of predictor ``f``
=================  ====================================================================

**denoising** (:class:`DenoisingLossIncrease`)::

    q = L(eps_hat) / L(eps_T) - 1

``epsilon = 0.05`` means: the assembled network's denoising loss is at most 5% above the
teacher's. ``q`` can be negative (a network that denoises the set better than the teacher).

**agreement** (:class:`TeacherAgreement`)::

    q = sum (eps_hat - eps_T)^2 / sum (eps_T - eps)^2

the squared distance to the teacher, measured in units of the teacher's own squared error.
``epsilon = 0.05`` means: the network's deviation from the teacher carries at most 5% of the
energy of the teacher's own denoising error. Why this normalisation makes the two epsilons
comparable: write ``d = eps_hat - eps_T`` and ``r = eps_T - eps``; then

    L(eps_hat) / L(eps_T) - 1 = (|d|^2 + 2 <d, r>) / |r|^2 = q_agree + 2 <d, r> / |r|^2       (1)

If the teacher were the MMSE denoiser, its residual ``r`` would be orthogonal to every function of
``x_t`` (the orthogonality principle), in particular to ``d``, so in expectation
``q_denoise = q_agree``: both read "fraction worse than the teacher". With finite data and an
imperfect teacher, Cauchy-Schwarz on (1) bounds one by the other:
``|q_denoise - q_agree| <= 2 sqrt(q_agree)``. ``q_agree >= 0`` always, and it never rewards a
network for "fixing" the teacher on a finite set: it is the stricter, lower-variance measure.

Determinism: the set is evaluated in fixed chunks (the set's ``chunk_size``, the same chunks the
teacher's predictions were made with), under ``no_grad``, with sums accumulated in float64 in a
fixed order, so the same network gives the same float bit for bit, and the teacher scores exactly
``0.0`` (on hardware whose kernels are deterministic for a given shape, as CPU kernels are).

Any callable ``Configuration -> float`` can serve as a search's quality function; these
evaluators score a *forward function*, and ``tocsr_nas.evaluators.quality.SupernetQuality`` turns one into a
quality function of configurations.

Example:
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> x0, eps = torch.randn(8, 4, 2, 2, generator=gen), torch.randn(8, 4, 2, 2, generator=gen)
    >>> x_t = 0.6 * x0 + 0.8 * eps
    >>> teacher = lambda x, t, c: 1.25 * x  # a fixed linear "denoiser"
    >>> vs = ValidationSet.build(x0=x0, noise=eps, x_t=x_t, timesteps=torch.arange(8),
    ...                          context=torch.zeros(1, 3, 5), forward=teacher, chunk_size=4)
    >>> DenoisingLossIncrease(vs)(teacher), TeacherAgreement(vs)(teacher)
    (0.0, 0.0)
    >>> TeacherAgreement(vs)(lambda x, t, c: 1.3 * x) > 0
    True
    >>> sorted(available_qualities())
    ['agreement', 'denoising']
"""

from __future__ import annotations

import json
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import safe_open

from tocsr_nas._io import save_safetensors
from tocsr_nas.searchspace.errors import TocsrError

__all__ = [
    "Forward",
    "ValidationSet",
    "ValidationSetError",
    "QualityEvaluator",
    "DenoisingLossIncrease",
    "TeacherAgreement",
    "register_quality",
    "get_quality",
    "make_quality",
    "available_qualities",
    "predict",
    "unet_forward",
    "SupernetQuality",
]

logger = logging.getLogger(__name__)

#: ``forward(x_t (b, C, h, w), t (b,), context (b, L, D)) -> eps_hat (b, C, h, w)``
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]

_FORMAT = "tocsr-validation-set"
_TENSORS = ("x0", "timesteps", "noise", "x_t", "context", "teacher_eps")


class ValidationSetError(TocsrError):
    """A validation set with inconsistent tensors, an unreadable file, or a forward of the wrong shape."""


def _as_tensor(output: Any) -> torch.Tensor:
    """A forward's output as a tensor (diffusers' ``(sample,)`` tuples and ``.sample`` objects accepted)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    sample = getattr(output, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    raise ValidationSetError(f"forward must return a tensor eps_hat, got {type(output).__name__}")


@dataclass(frozen=True)
class ValidationSet:
    """A fixed denoising validation set and the teacher's predictions on it (all tensors, one device).

    Attributes:
        x0: clean latents of held-out photos, ``(N, C, h, w)``.
        timesteps: one timestep per sample, ``(N,)`` (long).
        noise: the added noise ``eps``, ``(N, C, h, w)``.
        x_t: noisy latents ``scheduler.add_noise(x0, eps, t)``, ``(N, C, h, w)``.
        context: encoder hidden states, ``(N, L, D)`` or ``(1, L, D)`` (expanded per chunk, no copy).
        teacher_eps: the teacher's predictions on ``(x_t, t, context)``, ``(N, C, h, w)``.
        chunk_size: samples per forward call (the teacher's predictions were made with it).
        meta: provenance (teacher fingerprint, seed, photos...), strings only; saved with the tensors.
    """

    x0: torch.Tensor
    timesteps: torch.Tensor
    noise: torch.Tensor
    x_t: torch.Tensor
    context: torch.Tensor
    teacher_eps: torch.Tensor
    chunk_size: int = 16
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.x0.shape[0]
        if n == 0:
            raise ValidationSetError("a validation set needs at least one sample")
        for name in ("noise", "x_t", "teacher_eps"):
            if getattr(self, name).shape != self.x0.shape:
                raise ValidationSetError(
                    f"validation set: {name} has shape {tuple(getattr(self, name).shape)}, x0 has {tuple(self.x0.shape)}"
                )
        if self.timesteps.shape != (n,):
            raise ValidationSetError(f"validation set: timesteps must have shape ({n},), got {tuple(self.timesteps.shape)}")
        if self.context.dim() != 3 or self.context.shape[0] not in (1, n):
            raise ValidationSetError(
                f"validation set: context must be (1, L, D) or ({n}, L, D), got {tuple(self.context.shape)}"
            )
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ValidationSetError(f"validation set: chunk_size must be a positive integer, got {self.chunk_size!r}")
        # L(eps_T) = sum (eps_T - eps)^2 / n: the teacher's own denoising loss, computed once
        # summed chunk by chunk, in the order QualityEvaluator.sums adds, so the teacher scores exactly 0
        sse = 0.0
        for chunk in self.chunks():
            sse += _sse(self.teacher_eps[chunk], self.noise[chunk])
        if not (math.isfinite(sse) and sse > 0):
            raise ValidationSetError(
                f"validation set: the teacher's squared error on it is {sse}; it must be finite and > 0 "
                "(both qualities are measured in units of it)"
            )
        object.__setattr__(self, "_teacher_sse", sse)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        *,
        x0: torch.Tensor,
        noise: torch.Tensor,
        x_t: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        forward: Forward,
        chunk_size: int = 16,
        meta: Mapping[str, str] | None = None,
    ) -> ValidationSet:
        """A set whose ``teacher_eps`` is ``forward``'s prediction, made in the set's own chunks.

        Args:
            x0, noise, x_t, timesteps, context: see the attributes.
            forward: the teacher's ``forward(x_t, t, context) -> eps``.
            chunk_size: samples per call.
            meta: provenance strings.
        """
        eps_t = predict(forward, x_t, timesteps, context, chunk_size=chunk_size)
        return cls(x0, timesteps, noise, x_t, context, eps_t, chunk_size, dict(meta or {}))

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        return int(self.x0.shape[0])

    @property
    def teacher_loss(self) -> float:
        """``L(eps_T)``: the teacher's denoising MSE on the set."""
        return self._teacher_sse / self.noise.numel()  # type: ignore[attr-defined]

    @property
    def teacher_sse(self) -> float:
        """``sum (eps_T - eps)^2`` in float64."""
        return self._teacher_sse  # type: ignore[attr-defined]

    def chunks(self) -> Iterator[slice]:
        """The fixed chunks of the set, as slices along the batch dimension."""
        n = len(self)
        for start in range(0, n, self.chunk_size):
            yield slice(start, min(start + self.chunk_size, n))

    def context_for(self, chunk: slice) -> torch.Tensor:
        """The context of one chunk, ``(b, L, D)`` (a view: expanded, never copied)."""
        b = chunk.stop - chunk.start
        if self.context.shape[0] == 1:
            return self.context.expand(b, -1, -1)
        return self.context[chunk]

    def to(self, device: str | torch.device) -> ValidationSet:
        """A copy on ``device``."""
        moved = {name: getattr(self, name).to(device) for name in _TENSORS}
        return ValidationSet(**moved, chunk_size=self.chunk_size, meta=dict(self.meta))

    # ------------------------------------------------------------------ disk
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the set to one safetensors file (atomically); ``meta`` and ``chunk_size`` go in its header."""
        path = Path(path)
        tensors = {name: getattr(self, name) for name in _TENSORS}
        header = {"format": _FORMAT, "chunk_size": str(self.chunk_size), "meta": json.dumps(dict(self.meta), sort_keys=True)}
        save_safetensors(path, tensors, header)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> ValidationSet:
        """Read a set written by :meth:`save`.

        Raises:
            ValidationSetError: a missing or unreadable file, or not a validation set.
        """
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as fh:
                header = fh.metadata() or {}
                if header.get("format") != _FORMAT:
                    raise ValidationSetError(f"{path} is not a validation set file (format {_FORMAT!r})")
                missing = [name for name in _TENSORS if name not in fh.keys()]
                if missing:
                    raise ValidationSetError(f"{path} lacks tensors {missing}")
                tensors = {name: fh.get_tensor(name) for name in _TENSORS}
            meta = json.loads(header.get("meta", "{}"))
            chunk_size = int(header["chunk_size"])
        except ValidationSetError:
            raise
        except Exception as exc:  # OSError, JSON/int errors, safetensors' own SafetensorError
            raise ValidationSetError(f"cannot read validation set {path}: {exc}") from None
        return cls(**tensors, chunk_size=chunk_size, meta=meta)


def _sse(a: torch.Tensor, b: torch.Tensor) -> float:
    """``sum (a - b)^2`` accumulated in float64."""
    diff = a - b
    return float(torch.sum(diff * diff, dtype=torch.float64))


@torch.no_grad()
def predict(
    forward: Forward,
    x_t: torch.Tensor,
    timesteps: torch.Tensor,
    context: torch.Tensor,
    *,
    chunk_size: int = 16,
) -> torch.Tensor:
    """``forward`` over a set in fixed chunks, concatenated: ``(N, C, h, w)``."""
    n = x_t.shape[0]
    out = []
    for start in range(0, n, chunk_size):
        sl = slice(start, min(start + chunk_size, n))
        b = sl.stop - sl.start
        ctx = context.expand(b, -1, -1) if context.shape[0] == 1 else context[sl]
        eps_hat = _as_tensor(forward(x_t[sl], timesteps[sl], ctx))
        if eps_hat.shape != x_t[sl].shape:
            raise ValidationSetError(f"forward returned shape {tuple(eps_hat.shape)}, expected {tuple(x_t[sl].shape)}")
        out.append(eps_hat.detach())
    return torch.cat(out)


# ---------------------------------------------------------------------- evaluators
class QualityEvaluator(ABC):
    """Scores a denoiser on a :class:`ValidationSet`; ``0`` is the teacher, lower is better.

    Subclasses say which sums they need (:attr:`needs`) and turn them into a number (:meth:`score`).
    Calling the evaluator runs ``forward`` once per chunk under ``no_grad`` and adds, per chunk,
    ``sum (eps_hat - eps)^2`` and/or ``sum (eps_hat - eps_T)^2`` in float64: no copy of the set is
    made, so one evaluation costs one pass of the network plus a few element-wise operations.

    Args:
        validation: the fixed set.
    """

    #: registered name
    name: ClassVar[str] = ""
    #: the sums :meth:`score` reads: ``"sse_target"`` (vs ``eps``) and/or ``"sse_teacher"`` (vs ``eps_T``)
    needs: ClassVar[tuple[str, ...]] = ()
    #: one line on what epsilon means
    meaning: ClassVar[str] = ""

    def __init__(self, validation: ValidationSet) -> None:
        if not isinstance(validation, ValidationSet):
            raise ValidationSetError(f"a quality evaluator needs a ValidationSet, got {type(validation).__name__}")
        self.validation = validation

    @torch.no_grad()
    def sums(self, forward: Forward) -> dict[str, float]:
        """The float64 sums of squares of ``forward`` over the set (see :attr:`needs`)."""
        vs = self.validation
        totals = dict.fromkeys(self.needs, 0.0)
        for chunk in vs.chunks():
            x_t = vs.x_t[chunk]  # (b, C, h, w), a view
            eps_hat = _as_tensor(forward(x_t, vs.timesteps[chunk], vs.context_for(chunk)))  # (b, C, h, w)
            if eps_hat.shape != x_t.shape:
                raise ValidationSetError(
                    f"forward returned shape {tuple(eps_hat.shape)}, expected {tuple(x_t.shape)} (the noisy latents')"
                )
            if "sse_target" in totals:
                totals["sse_target"] += _sse(eps_hat, vs.noise[chunk])
            if "sse_teacher" in totals:
                totals["sse_teacher"] += _sse(eps_hat, vs.teacher_eps[chunk])
        return totals

    @abstractmethod
    def score(self, sums: Mapping[str, float]) -> float:
        """The quality loss from the sums."""

    def __call__(self, forward: Forward) -> float:
        """Evaluate ``forward``: the quality loss (``inf`` if the network produced NaN/inf)."""
        q = self.score(self.sums(forward))
        if not math.isfinite(q):
            logger.warning("%s: the network's predictions are not finite; quality = inf", self.name)
            return math.inf
        return q

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.validation)} samples)"


_REGISTRY: dict[str, type[QualityEvaluator]] = {}


def register_quality(name: str) -> Callable[[type[QualityEvaluator]], type[QualityEvaluator]]:
    """Register a :class:`QualityEvaluator` subclass under ``name`` (a duplicate name is an error).

    Example:
        >>> @register_quality("my-quality")
        ... class Mine(DenoisingLossIncrease):
        ...     pass
        >>> get_quality("my-quality") is Mine
        True
        >>> _ = _REGISTRY.pop("my-quality")
    """

    def wrap(cls: type[QualityEvaluator]) -> type[QualityEvaluator]:
        if name in _REGISTRY:
            raise ValueError(f"quality evaluator {name!r} is already registered (by {_REGISTRY[name].__name__})")
        if not (isinstance(cls, type) and issubclass(cls, QualityEvaluator)):
            raise TypeError(f"@register_quality({name!r}) needs a QualityEvaluator subclass, got {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_qualities() -> list[str]:
    """Registered quality evaluator names."""
    return sorted(_REGISTRY)


def get_quality(name: str) -> type[QualityEvaluator]:
    """The evaluator class registered as ``name``.

    Raises:
        TocsrError: an unknown name (the message lists the valid ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TocsrError(
            f"unknown quality {name!r}; valid: {', '.join(available_qualities())} "
            "(register your own with @tocsr_nas.evaluators.register_quality, or pass any callable config -> float)"
        ) from None


def make_quality(name: str, validation: ValidationSet) -> QualityEvaluator:
    """An evaluator by name on a validation set."""
    return get_quality(name)(validation)


@register_quality("denoising")
class DenoisingLossIncrease(QualityEvaluator):
    """Relative increase of the denoising loss over the teacher's: ``q = L(eps_hat) / L(eps_T) - 1``.

    ``epsilon = 0.05``: the network's denoising MSE on the set is at most 5% above the teacher's.
    Negative values mean the network denoises this set better than the teacher.
    """

    needs = ("sse_target",)
    meaning = "epsilon = relative increase of the denoising loss over the teacher's (0.05: at most 5% worse)"

    def score(self, sums: Mapping[str, float]) -> float:
        # q = L(eps_hat) / L(eps_T) - 1 = sum (eps_hat - eps)^2 / sum (eps_T - eps)^2 - 1  (same n cancels)
        return sums["sse_target"] / self.validation.teacher_sse - 1.0


@register_quality("agreement")
class TeacherAgreement(QualityEvaluator):
    """Disagreement with the teacher in units of its own error: ``q = |eps_hat - eps_T|^2 / |eps_T - eps|^2``.

    ``epsilon = 0.05``: the deviation from the teacher's predictions carries at most 5% of the
    energy of the teacher's own denoising error (for an MMSE-optimal teacher this equals the
    relative loss increase; see the module docstring). Always ``>= 0``; ``0`` only for the teacher.
    """

    needs = ("sse_teacher",)
    meaning = "epsilon = squared distance to the teacher / the teacher's squared error (0.05: 5% of it)"

    def score(self, sums: Mapping[str, float]) -> float:
        return sums["sse_teacher"] / self.validation.teacher_sse


# ---------------------------------------------------------------------- supernet quality
def unet_forward(unet: torch.nn.Module) -> Forward:
    """``forward(x_t, t, context) -> eps_hat`` for a diffusers UNet (or a supernet wrapping one)."""

    def forward(x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return unet(x_t, t, encoder_hidden_states=context, return_dict=False)[0]  # (b, C, h, w)

    return forward


class SupernetQuality:
    """``quality(config) -> float`` for a supernet and a quality evaluator: the search's quality function.

    Calling it with a configuration sets the supernet's routing (names only, no copying) and runs
    the evaluator once over the validation set. One evaluation costs one forward pass of the
    assembled network over the set plus a few element-wise operations: about the cost of a
    teacher forward over the same batch for the all-teacher configuration, less for smaller
    configurations.

    Args:
        supernet: a :class:`~tocsr_nas.surrogates.SuperNet` (or any module with
            ``set_configuration(cfg)`` called like a diffusers UNet); it is put in eval mode.
        evaluator: e.g. :class:`~tocsr_nas.evaluators.DenoisingLossIncrease` on the search's set.
        make_forward: ``model -> forward(x_t, t, context) -> eps_hat`` (default :func:`unet_forward`;
            the toolkit passes ``Teacher.denoiser_forward`` so any denoiser family is called its way).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x0, eps = torch.randn(4, 2, 2, 2, generator=gen), torch.randn(4, 2, 2, 2, generator=gen)
        >>> class Routed(torch.nn.Module):  # any module with set_configuration(cfg) will do
        ...     scale = 1.0
        ...     def set_configuration(self, cfg):
        ...         self.scale = float(cfg["scale"])
        ...     def forward(self, x, t, encoder_hidden_states=None, return_dict=False):
        ...         return (self.scale * x,)
        >>> vs = ValidationSet.build(x0=x0, noise=eps, x_t=0.6 * x0 + 0.8 * eps, timesteps=torch.arange(4),
        ...                          context=torch.zeros(1, 3, 5), forward=unet_forward(Routed()), chunk_size=2)
        >>> quality = SupernetQuality(Routed(), TeacherAgreement(vs))
        >>> quality({"scale": "1"}), quality({"scale": "1.1"}) > 0
        (0.0, True)
    """

    def __init__(self, supernet: Any, evaluator: QualityEvaluator, make_forward: Callable[[Any], Forward] | None = None) -> None:
        if not callable(getattr(supernet, "set_configuration", None)):
            raise TypeError(f"SupernetQuality needs a module with set_configuration(cfg), got {type(supernet).__name__}")
        if not isinstance(evaluator, QualityEvaluator):
            raise TypeError(f"SupernetQuality needs a QualityEvaluator, got {type(evaluator).__name__}")
        self.supernet = supernet.eval()
        self.evaluator = evaluator
        self._forward = (make_forward or unet_forward)(self.supernet)

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
