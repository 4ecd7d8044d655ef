"""The search set-up as a library function: teacher + surrogate library -> everything a search needs.

:func:`prepare_search` assembles, in order (each step fails with one clear :class:`~tocsr_nas.errors.TocsrError`):

1. the teacher and the surrogate library, which must have been distilled from this very teacher
   (fingerprint) and for the search space in use (a ``space`` YAML is resolved against the
   teacher and its hash compared with the library's; without one the library's own space is used);
2. the cost table of that space at ``resolution`` (default: the library's), fvcore, cached;
3. the fixed validation set (held-out photos, fixed timesteps and noise, teacher predictions);
4. the supernet (every surrogate loaded once; a configuration only re-routes blocks) and the
   quality function (``quality="denoising"`` or ``"agreement"``);
5. the per-block prior: each candidate's distillation loss from the library, scaled to ``[0, 1]``.

:func:`run_search` is the search *stage* (``tocsr-nas search`` after argument parsing): it checks
the arguments, prepares, records the settings in ``OUT/search.json`` (``resume=True`` refuses to
continue a search made with another teacher, library, quality or validation set), caches the
validation set as ``OUT/validation.safetensors`` and runs :func:`tocsr_nas.search` into ``OUT``.

The module imports nothing heavy; torch and the models load on first use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tocsr_nas.errors import UserInputError
from tocsr_nas.locks import locks_folder

if TYPE_CHECKING:
    from tocsr_nas.evaluators import CostTable, ValidationSet
    from tocsr_nas.evaluators.quality import SupernetQuality
    from tocsr_nas.search.results import SearchResult
    from tocsr_nas.searchspace import SearchSpace
    from tocsr_nas.stages.space import CandidateCache
    from tocsr_nas.surrogates.library import SurrogateLibrary
    from tocsr_nas.surrogates.supernet import SuperNet
    from tocsr_nas.teacher import Teacher

__all__ = [
    "DEFAULT_BUDGET",
    "SETTINGS_FILE",
    "VALIDATION_FILE",
    "PreparedSearch",
    "normalised_prior",
    "prepare_search",
    "run_search",
]

logger = logging.getLogger(__name__)

#: evaluations when neither ``budget`` nor ``time_budget`` is given
DEFAULT_BUDGET = 50
#: the settings file in OUT
SETTINGS_FILE = "search.json"
#: the cached validation set in OUT
VALIDATION_FILE = "validation.safetensors"
#: settings that must match for ``resume``
_RESUME_KEYS = ("teacher_fingerprint", "library_space_hash", "quality", "val_samples", "val_seed", "resolution", "component")

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class PreparedSearch:
    """Everything a search over a surrogate library needs (see :func:`prepare_search`).

    Attributes:
        teacher: the :class:`~tocsr_nas.teacher.Teacher` (in eval mode); its UNet is wrapped by ``supernet``.
        library: the :class:`~tocsr_nas.surrogates.library.SurrogateLibrary`, checked against the teacher.
        space: the search space (the library's, or the given one with the same hash).
        cost: the :class:`~tocsr_nas.evaluators.CostTable` of ``space`` at ``resolution`` or, with a
            latency table, both read together (:class:`~tocsr_nas.evaluators.TableCosts`).
        validation: the fixed :class:`~tocsr_nas.evaluators.ValidationSet`.
        supernet: the :class:`~tocsr_nas.surrogates.supernet.SuperNet` over the teacher's UNet
            (``supernet.restore()`` puts the teacher's blocks back, e.g. before an export).
        quality: ``quality(config) -> float`` (:class:`~tocsr_nas.evaluators.quality.SupernetQuality`).
        prior: ``block -> candidate -> [0, 1]`` from the library's losses, or ``None`` (``prior=False``).
        resolution: image side in pixels of the costs and the validation set.
        settings: what identifies the set-up (teacher and its fingerprint, library and its space
            hash, space, quality, validation samples and seed, resolution, prior), as recorded in
            ``search.json``.
        latency: the :class:`~tocsr_nas.evaluators.LatencyTable` measured on the device, or ``None``.
        device, dtype: where the search computes (``--device``, ``--dtype`` resolved).
    """

    teacher: Teacher
    library: SurrogateLibrary
    space: SearchSpace
    cost: CostTable
    validation: ValidationSet
    supernet: SuperNet
    quality: SupernetQuality
    prior: dict[str, dict[str, float]] | None
    resolution: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    latency: Any = None
    device: str = "cpu"
    dtype: str = "float32"

    def measured_latency_ms(self, config: Mapping[str, str], *, batch: int = 1, warmup: int = 3, repeats: int = 10) -> float:
        """``config``'s assembled compact UNet timed end to end on the search's device (median ms),
        with the latency table's inputs, to set beside the table's prediction."""
        from tocsr_nas.stages.costs import model_latency_ms

        model = self.supernet.assembled(config)
        return model_latency_ms(model, self.teacher, self.resolution, device=self.device, dtype=self.dtype,
                                batch=batch, warmup=warmup, repeats=repeats)  # fmt: skip

    def search(self, **options: Any) -> SearchResult:
        """:func:`tocsr_nas.search` over this set-up: ``space``, ``quality``, ``cost`` and ``prior`` are filled in.

        Args:
            **options: the other keyword arguments of :func:`tocsr_nas.search` (``epsilon``,
                ``strategy``, ``budget``, ``seed``, ``out_dir``, ``resume``, ...).

        Returns:
            The :class:`~tocsr_nas.search.results.SearchResult`.
        """
        from tocsr_nas.search.api import search

        return search(self.space, quality=self.quality, cost=self.cost, prior=self.prior, **options)


def normalised_prior(library: Any) -> dict[str, dict[str, float]]:
    """The library's per-pair distillation losses scaled into ``[0, 1]`` (``teacher`` = 0).

    Non-finite losses are left out (the strategy fills in the block's mean).

    Example:
        >>> from types import SimpleNamespace
        >>> lib = SimpleNamespace(prior=lambda: {"b": {"teacher": 0.0, "skip": 0.5, "x": float("nan")}, "c": {"teacher": 0.0, "y": 0.25}})
        >>> normalised_prior(lib)
        {'b': {'teacher': 0.0, 'skip': 1.0}, 'c': {'teacher': 0.0, 'y': 0.5}}
    """
    raw = library.prior()
    finite = [v for row in raw.values() for v in row.values() if math.isfinite(v) and v >= 0]
    top = max(finite, default=0.0) or 1.0
    return {
        block: {name: float(v) / top for name, v in row.items() if math.isfinite(v) and v >= 0}
        for block, row in raw.items()
    }


# ---------------------------------------------------------------------- checks
def _check_choice(kind: str, name: Any, valid: Sequence[str]) -> None:
    if name not in valid:
        raise UserInputError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_folder(flag: str, path: Any) -> None:
    if not Path(path).is_dir():
        raise UserInputError(f"{flag} {path}: no such folder")


def _check_space_file(space: Any) -> None:
    if isinstance(space, (str, os.PathLike)) and not Path(space).is_file():
        from tocsr_nas.stages.space import DEFAULT_SPACES

        if space not in DEFAULT_SPACES:
            raise UserInputError(f"--space {space}: no such file")


def _check_out(out: Path, resume: bool, **inputs: Any) -> None:
    """``out`` apart from the ``inputs``; empty, or (``resume``) a search that can be continued."""
    from tocsr_nas._io import check_out_path
    from tocsr_nas.search.journal import JOURNAL_NAME
    from tocsr_nas.search.loop import check_fresh_start

    check_out_path(out, **inputs)
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise UserInputError(
            f"--out {out} exists and is not empty; pass --resume to continue the search in it, or choose a new "
            "folder (nothing was changed)"
        )
    if resume:
        check_fresh_start(out)
        visible = [p.name for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
        if visible and not any((out / name).exists() for name in (SETTINGS_FILE, JOURNAL_NAME, VALIDATION_FILE)):
            raise UserInputError(
                f"cannot resume --out {out}: it holds no search ({SETTINGS_FILE} missing) but other files; choose a "
                "new folder (nothing was changed)"
            )


def _recorded_path(path: PathLike) -> str:
    """A path as ``search.json`` records it: absolute, so the folder can be used from any directory."""
    return os.path.abspath(path)


def _check_resume(out: Path, settings: Mapping[str, Any], extra: Sequence[str] = ()) -> None:
    path = out / SETTINGS_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"cannot read {path}: {exc}") from None
    old.setdefault("component", "denoiser")  # searches that predate components searched the denoiser
    for key in (*_RESUME_KEYS, *extra):
        if old.get(key) != settings.get(key):
            raise UserInputError(
                f"cannot resume {out}: it was searched with {key}={old.get(key)!r}, not {settings[key]!r}; "
                "use the same teacher, library, --quality, --val-samples, --val-seed and --resolution, or a new --out"
            )


def _space_name(space: PathLike) -> str:
    """A space as ``search.json`` records it: a YAML file's absolute path, a packaged space's name."""
    return _recorded_path(space) if Path(space).is_file() else str(space)


# ---------------------------------------------------------------------- set-up
@dataclass
class _Opened:
    """The first, cheap half of the set-up: what identifies it (checked on resume before anything is built)."""

    teacher: Teacher
    library: SurrogateLibrary
    space: SearchSpace
    candidates: CandidateCache
    resolution: int
    settings: dict[str, Any]
    component: Any = None
    placement: Any = None


def _open(
    teacher: Teacher | PathLike,
    surrogates: SurrogateLibrary | PathLike,
    space: SearchSpace | PathLike | None,
    quality: str,
    resolution: int | None,
    val_samples: int,
    val_seed: int,
    prior: bool,
    candidates: CandidateCache | None,
    after_checks: Callable[[], None] | None = None,
    component: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> _Opened:
    """Check the arguments (then run ``after_checks``), load the teacher and the library (opened
    again from its folder when given as an object: the fingerprint check is the library's own),
    resolve the space and the resolution. ``component`` (default: the library's) must be the one the
    library was distilled for; ``quality`` ``None`` is the component's default."""
    from tocsr_nas.evaluators import available_qualities
    from tocsr_nas.searchspace import SearchSpace
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.surrogates.library import LibraryMismatchError, SurrogateLibrary
    from tocsr_nas.teacher import Teacher

    from tocsr_nas.devices import resolve

    placement = resolve(device, dtype) if device is not None or dtype is not None else None
    _check_count("val_samples", val_samples, 1)
    if isinstance(val_seed, bool) or not isinstance(val_seed, int):
        raise UserInputError(f"val_seed must be an integer, got {val_seed!r}")
    if resolution is not None:
        _check_count("resolution", resolution, 1)
    library_root = surrogates.root if isinstance(surrogates, SurrogateLibrary) else surrogates
    if not isinstance(teacher, Teacher):
        _check_folder("--teacher", teacher)
    _check_folder("--surrogates", library_root)
    _check_space_file(space)
    if after_checks is not None:
        after_checks()
    from tocsr_nas.teacher.components import check_library_component, get_component

    comp = get_component(check_library_component(library_root, component))
    if comp.name == "denoiser":
        quality = "denoising" if quality is None else quality
        _check_choice("quality", quality, available_qualities())
    else:
        quality = comp.check_quality(quality)

    teacher_path = None if isinstance(teacher, Teacher) else teacher
    teacher = (teacher if teacher_path is None else Teacher.load(teacher_path)).eval()
    fingerprint = teacher.fingerprint()
    library = SurrogateLibrary.open(library_root, teacher_fingerprint=fingerprint)
    candidates = candidates if candidates is not None else CandidateCache()
    if space is None:
        resolved = library.space
    else:
        if isinstance(space, SearchSpace):
            resolved = space
        else:
            resolved = build_space(comp.module(teacher), space, probe=comp.probe(teacher), candidates=candidates)
        if resolved.hash != library.space_hash:
            raise LibraryMismatchError(
                f"--space {space} resolves to search space {resolved.hash}, but the library {library_root} was "
                f"distilled for space {library.space_hash}; pass the YAML it was distilled with, or leave --space out"
            )
    resolution = resolution or library.resolution or teacher.default_resolution
    comp.check_resolution(teacher, resolution)  # validates the resolution against the VAE factor
    settings = {
        "teacher": _recorded_path(teacher_path) if teacher_path is not None else None,
        "teacher_fingerprint": fingerprint,
        "surrogates": _recorded_path(library_root),
        "library_space_hash": library.space_hash,
        "space": None if space is None or isinstance(space, SearchSpace) else _space_name(space),
        "quality": quality,
        "val_samples": val_samples,
        "val_seed": val_seed,
        "resolution": resolution,
        "prior": bool(prior),
        "component": comp.name,
    }
    if placement is not None:
        settings.update(placement.to_dict())
    return _Opened(teacher, library, resolved, candidates, resolution, settings, comp, placement)


def _finish(
    opened: _Opened,
    *,
    quality: str,
    prior: bool,
    cost_cache: bool | PathLike,
    validation_cache: PathLike | None,
    progress: bool,
    latency: Mapping[str, Any] | None = None,
) -> PreparedSearch:
    """The expensive half: cost table, latency table (``latency``: the options of
    :func:`~tocsr_nas.stages.costs.latency_table_for`, or ``None`` for none), validation set,
    supernet, quality function, prior."""
    import torch

    from tocsr_nas.stages.costs import cost_table_for
    from tocsr_nas.surrogates.supernet import SuperNet

    o = opened
    comp = o.component
    table = cost_table_for(
        o.teacher, o.space, o.resolution, cache=cost_cache, candidates=o.candidates, progress=progress, component=comp
    )
    if o.placement is not None and not o.placement.is_default():  # space and cost table: CPU, float32 (MACs are the same)
        o.teacher.to(o.placement.device, o.placement.dtype)
    latency_table = None
    device, dtype = str(o.teacher.device), str(o.teacher.dtype).removeprefix("torch.")
    if latency is not None:
        from tocsr_nas.evaluators import TableCosts
        from tocsr_nas.stages.costs import latency_table_for

        latency_table = latency_table_for(
            o.teacher, o.space, o.resolution, device=device, dtype=dtype, cache=cost_cache, candidates=o.candidates,
            progress=progress, component=comp, **latency,
        )  # fmt: skip
        table = TableCosts(table, latency_table)
    validation = comp.validation(
        o.teacher,
        samples=o.settings["val_samples"],
        resolution=o.resolution,
        seed=o.settings["val_seed"],
        cache=validation_cache if comp.name == "denoiser" else None,
    )
    supernet = SuperNet(comp.module(o.teacher), o.library, o.space)
    if o.teacher.device.type != "cpu" or o.teacher.dtype != torch.float32:
        supernet.to(o.teacher.device, o.teacher.dtype)  # the loaded surrogates join the teacher, once
    return PreparedSearch(
        teacher=o.teacher,
        library=o.library,
        space=o.space,
        cost=table,
        validation=validation,
        supernet=supernet,
        quality=comp.quality(supernet, o.settings["quality"], validation, teacher=o.teacher),
        prior=normalised_prior(o.library) if prior else None,
        resolution=o.resolution,
        settings=o.settings,
        latency=latency_table,
        device=device,
        dtype=dtype,
    )


def prepare_search(
    *,
    teacher: Teacher | PathLike,
    surrogates: SurrogateLibrary | PathLike,
    space: SearchSpace | PathLike | None = None,
    quality: str | None = None,
    resolution: int | None = None,
    val_samples: int = 32,
    val_seed: int = 0,
    prior: bool = True,
    candidates: CandidateCache | None = None,
    cost_cache: bool | PathLike = True,
    validation_cache: PathLike | None = None,
    progress: bool = False,
    component: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    latency: Mapping[str, Any] | None = None,
) -> PreparedSearch:
    """Teacher + surrogate library -> search space, cost table, validation set, quality function and prior.

    Args:
        teacher: a :class:`~tocsr_nas.teacher.Teacher` or its folder (diffusers layout). A teacher
            object is used in place: its UNet is wrapped by the returned ``supernet`` (call
            ``prepared.supernet.restore()`` before handing it to anything else).
        surrogates: a :class:`~tocsr_nas.surrogates.library.SurrogateLibrary` or its folder; it
            must have been distilled from ``teacher`` (fingerprint).
        space: the search space the library was distilled for: a resolved
            :class:`~tocsr_nas.searchspace.SearchSpace`, a YAML file or a default space name
            (resolved against the teacher); its hash must equal the library's. ``None``: the
            library's own space.
        quality: the quality evaluator, ``"denoising"`` (relative loss increase over the teacher)
            or ``"agreement"`` (see :func:`~tocsr_nas.evaluators.available_qualities`).
        resolution: image side in pixels (default: the library's, else the teacher's).
        val_samples: validation samples.
        val_seed: seed of the validation timesteps and noise.
        prior: give the strategy the library's distillation losses (:func:`normalised_prior`).
        candidates: the :class:`~tocsr_nas.stages.space.CandidateCache` the space was built with,
            if any (each candidate is then built once for the space check and the cost table).
        cost_cache: where the cost table is cached (see :func:`~tocsr_nas.stages.costs.cost_table_for`).
        validation_cache: a ``.safetensors`` path for the validation set (reused when it matches).
        progress: show a progress bar while the cost table is traced.
        component: the searched network (:mod:`~tocsr_nas.teacher.components`; default: the one
            the library was distilled for). For ``"vae.decoder"`` the qualities are
            ``"reconstruction"`` (default) and ``"agreement"``
            (:mod:`~tocsr_nas.evaluators.reconstruction`) and ``validation`` is a
            :class:`~tocsr_nas.evaluators.reconstruction.ReconstructionSet`.
        device, dtype: where to compute (:func:`tocsr_nas.devices.resolve`; ``None``: leave the
            teacher where it is); the validation set and the surrogates move there once.
        latency: measure a latency table on that device too (options of
            :func:`~tocsr_nas.stages.costs.latency_table_for`: ``batch``, ``warmup``, ``repeats``;
            ``{}`` for the defaults), so that ``objective="latency"`` can be searched.

    Returns:
        The :class:`PreparedSearch`; ``prepared.search(epsilon=..., budget=...)`` runs a search on it.

    Raises:
        UserInputError: an unknown quality, a missing folder or space file, a bad count.
        LibraryMismatchError: the library was distilled from another teacher or for another space.
        TocsrError: a resolution the VAE cannot take.

    Example:
        >>> from tocsr_nas.search import prepare_search
        >>> prepared = prepare_search(teacher="runs/teacher", surrogates="runs/surrogates")  # doctest: +SKIP
        >>> result = prepared.search(epsilon=0.05, budget=40, out_dir="runs/search")  # doctest: +SKIP
        >>> prepared.cost.gmacs(result.best.config) < prepared.cost.teacher().gmacs  # doctest: +SKIP
        True
    """
    opened = _open(
        teacher, surrogates, space, quality, resolution, val_samples, val_seed, prior, candidates, component=component,
        device=device, dtype=dtype,
    )
    return _finish(
        opened, quality=opened.settings["quality"], prior=prior, cost_cache=cost_cache, validation_cache=validation_cache,
        progress=progress, latency=latency,
    )  # fmt: skip


# ---------------------------------------------------------------------- the stage
@locks_folder("out", "search")
def run_search(
    *,
    teacher: PathLike,
    surrogates: PathLike,
    out: PathLike,
    epsilon: float | Sequence[float],
    space: PathLike | None = None,
    objective: str = "gmacs",
    strategy: str = "ecbo",
    strategy_options: Mapping[str, Any] | None = None,
    budget: int | None = None,
    time_budget: float | None = None,
    seed: int = 0,
    quality: str | None = None,
    batch_size: int = 1,
    sweep: str = "cycle",
    max_gmacs: float | None = None,
    max_params: float | None = None,
    resolution: int | None = None,
    val_samples: int = 32,
    val_seed: int = 0,
    resume: bool = False,
    prior: bool = True,
    progress: bool = True,
    threads: int | None = None,
    component: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_latency: float | None = None,
    latency_repeats: int = 10,
    executor: str = "local",
    ray_address: str | None = None,
) -> SearchResult:
    """The search stage: :func:`prepare_search`, then :func:`tocsr_nas.search` into ``out``.

    Writes ``out/search.json`` (the settings), ``out/validation.safetensors`` (the validation set,
    reused on resume) and the search's outputs (``journal.jsonl``, ``trials.csv``, ``pareto.csv``,
    ``best.json``, ``plots/``). Nothing is written before the arguments, the teacher, the library,
    the space and (on resume) the recorded settings have been checked.

    Args:
        teacher: the teacher's folder.
        surrogates: the surrogate library's folder (distilled from ``teacher``).
        out: the output folder: new or empty, or the one to resume.
        epsilon: the quality limit(s); the first is the primary one (``best.json``).
        space: the search space YAML (or default space name) the library was distilled with
            (default: the library's own).
        objective: ``"gmacs"`` or ``"params"``: what to minimise.
        strategy: a registered strategy name.
        strategy_options: keyword options of the strategy (recorded in ``search.json``).
        budget: evaluations (default :data:`DEFAULT_BUDGET` unless ``time_budget`` is given).
        time_budget: wall seconds (checked before each batch).
        seed: seed of the strategy.
        quality: the quality evaluator (``"denoising"`` or ``"agreement"``).
        batch_size: proposals per round.
        sweep: how several epsilons share the proposals (``"cycle"`` or ``"gain"``).
        max_gmacs, max_params: hard bounds: nothing above them is evaluated.
        resolution: image side in pixels (default: the library's).
        val_samples, val_seed: size and seed of the validation set.
        resume: continue the search journalled in ``out`` (the teacher, library, quality,
            validation set and resolution must be those recorded there).
        prior: give the strategy the library's distillation losses.
        progress: progress bars.
        threads: torch CPU threads (``None``: torch's choice).
        component: the searched network (default: the library's), recorded in ``search.json``.
        device, dtype: where to compute (:func:`tocsr_nas.devices.resolve`; ``None``: the CPU in float32).
        max_latency: hard bound on the predicted milliseconds.
        latency_repeats: timed calls per latency-table cell (median). With ``objective="latency"``
            or ``max_latency`` a latency table is measured on the device (cached), and ``best.json``
            records ``latency_predicted_ms`` (the table) and ``latency_measured_ms`` (the assembled
            compact model timed end to end) of the best configuration.
        threads: torch CPU threads (``None``: torch's choice; each Ray evaluator: 1).
        executor: where the trials are evaluated: ``"local"`` (in this process, one after the
            other) or ``"ray"`` (the ``batch_size`` proposals of a round in parallel on Ray actors,
            each holding the teacher, the library and the quality function; :mod:`tocsr_nas.executors`).
            The journal is written here either way, so a search resumes with any executor.
        ray_address: the Ray cluster to join (``None``: ``RAY_ADDRESS``, else a local cluster of
            ``batch_size * threads`` CPUs). The teacher and library folders must be readable
            at the same paths on every node.

    Returns:
        The :class:`~tocsr_nas.search.results.SearchResult`.

    Raises:
        UserInputError: Ray asked for but not installed or unreachable; a bad argument, an ``out`` that is a file or is, contains or lies inside the
            teacher, the library or the space file, a busy ``out`` without ``resume``, a resume of a
            folder that holds no search, or a resume with other settings.
        TocsrError: a bad strategy option (before anything is written), or (``resume``) results
            without their journal, which are never started over.
        LibraryMismatchError: the library does not belong to the teacher or the space.

    Example:
        >>> from tocsr_nas.search import run_search
        >>> result = run_search(teacher="runs/teacher", surrogates="runs/surrogates", out="runs/search",
        ...                     epsilon=[0.05, 0.1], budget=40)  # doctest: +SKIP
    """
    from tocsr_nas._io import atomic_write_json
    from tocsr_nas.executors import EXECUTORS, require_ray
    from tocsr_nas.strategies import available_strategies, get_strategy
    from tocsr_nas.strategies.base import check_sweep

    start = time.perf_counter()
    out = Path(out)
    _check_choice("executor", executor, EXECUTORS)
    if executor == "ray":
        require_ray()  # one line before anything is loaded or written
    elif ray_address is not None:
        raise UserInputError("--ray-address needs --executor ray")
    _check_choice("strategy", strategy, available_strategies())
    strategy_options = dict(strategy_options or {})
    get_strategy(strategy).parse_options(**strategy_options)  # a bad option fails before anything is written
    check_sweep(sweep)

    def before_loading() -> None:
        space_file = space if isinstance(space, (str, os.PathLike)) and Path(space).is_file() else None
        _check_out(out, resume, teacher=teacher, surrogates=surrogates, space=space_file)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)

    opened = _open(
        teacher, surrogates, space, quality, resolution, val_samples, val_seed, prior, None, after_checks=before_loading,
        component=component, device=device, dtype=dtype,
    )
    quality = opened.settings["quality"]
    epsilons = list(epsilon) if isinstance(epsilon, Sequence) else epsilon
    setup = opened.settings
    settings = {
        **{k: v for k, v in setup.items() if k != "prior"},
        "objective": objective,
        "strategy": strategy,
        "epsilons": epsilons,
        "seed": seed,
        "batch_size": batch_size,
        "sweep": sweep,
        "budget": budget,
        "time_budget": time_budget,
        "max_gmacs": max_gmacs,
        "max_params": max_params,
        **({"max_latency": max_latency} if max_latency is not None else {}),
        "prior": setup["prior"],
        "strategy_options": strategy_options,
    }
    timed = objective == "latency" or max_latency is not None
    if resume:  # predicted milliseconds belong to one device and dtype
        _check_resume(out, settings, extra=("device", "dtype") if timed else ())
    with _undo_if_not_started(out):
        out.mkdir(parents=True, exist_ok=True)
        prepared = _finish(
            opened, quality=quality, prior=prior, cost_cache=True, validation_cache=out / VALIDATION_FILE,
            progress=progress, latency={"repeats": latency_repeats} if timed else None,
        )  # fmt: skip
        atomic_write_json(out / SETTINGS_FILE, settings)
        logger.info(
            "searching %s over %s configurations (%d blocks), %s quality on %d samples, set up in %.1f s",
            objective, f"{prepared.space.size:.3g}", len(prepared.space), quality, len(prepared.validation),
            time.perf_counter() - start,
        )
        with _evaluators(executor, ray_address, prepared, batch_size, threads) as evaluator:
            result = prepared.search(
                evaluator=evaluator,
                epsilon=epsilon,
                strategy=strategy,
                budget=budget if budget is not None or time_budget is not None else DEFAULT_BUDGET,
                time_budget=time_budget,
                seed=seed,
                objective=objective,
                max_gmacs=max_gmacs,
                max_params=max_params,
                max_latency=max_latency,
                batch_size=batch_size,
                sweep=sweep,
                out_dir=out,
                resume=resume,
                progress=progress,
                strategy_options=strategy_options,
            )
    if timed and result.best is not None:
        # the table's prediction beside the assembled compact model timed end to end
        result.latency_measured_ms = prepared.measured_latency_ms(result.best.config, repeats=latency_repeats)
        atomic_write_json(out / "best.json", result.to_summary(), sort_keys=False)
        logger.info(
            "best configuration: %.3f ms predicted by the latency table, %.3f ms measured end to end",
            result.best.latency, result.latency_measured_ms,
        )  # fmt: skip
    return result


@contextlib.contextmanager
def _evaluators(executor: str, address: str | None, prepared: PreparedSearch, size: int,
                threads: int | None) -> Iterator[Any]:
    """``None`` for the local executor (the loop evaluates in this process); for Ray, a pool of up to
    ``size`` actors that each build the supernet and quality function once (:func:`_worker_quality`)."""
    if executor == "local":
        yield None
        return
    from functools import partial

    from tocsr_nas.executors import make_executor

    s = prepared.settings
    gpu = str(prepared.device).startswith("cuda")
    factory = partial(
        _worker_quality, teacher=s["teacher"], surrogates=s["surrogates"], space=prepared.space,
        quality=s["quality"], validation=prepared.validation, component=s["component"],
        device="cuda" if gpu else "cpu", dtype=str(prepared.dtype),
    )
    # on a GPU the batch's actors share one (a fraction each): Ray shows each actor only the GPU it was given
    with make_executor(executor, address=address, workers=size, threads=threads, num_gpus=1.0 / size if gpu else 0.0) as ex:
        pool = ex.evaluator_pool(factory, size)
        try:
            yield pool
        finally:
            pool.close()


def _worker_quality(*, teacher: str, surrogates: str, space: SearchSpace, quality: str,
                    validation: Any, component: str = "denoiser", device: str = "cpu",
                    dtype: str = "float32") -> Callable[[Mapping[str, str]], float]:
    """On an evaluator worker: the teacher and the library from their folders, the driver's space and
    validation set; the supernet and the quality function over them (what :func:`prepare_search` builds),
    on ``device`` in ``dtype`` like the driver's."""
    from tocsr_nas.surrogates.library import SurrogateLibrary
    from tocsr_nas.surrogates.supernet import SuperNet
    from tocsr_nas.teacher import Teacher
    from tocsr_nas.teacher.components import get_component

    comp = get_component(component)
    model = Teacher.load(teacher).eval()
    library = SurrogateLibrary.open(surrogates, teacher_fingerprint=model.fingerprint())
    if device != "cpu" or dtype != "float32":
        import torch

        model.to(device, getattr(torch, dtype))
    supernet = SuperNet(comp.module(model), library, space)
    if device != "cpu" or dtype != "float32":
        supernet.to(model.device, model.dtype)  # the loaded surrogates join the teacher, once
    return comp.quality(supernet, quality, validation, teacher=model)


@contextlib.contextmanager
def _undo_if_not_started(out: Path) -> Iterator[None]:
    """Remove what a fresh search wrote into ``out`` if it fails before its journal exists.

    A search that stops before its first journal record (an invalid strategy option, a bad bound,
    Ctrl-C while the validation set is built) leaves no ``search.json`` or validation set behind,
    so the corrected command is not refused as a busy folder. Files that were there before, and
    everything once the journal exists (a resumable search), are kept.
    """
    from tocsr_nas.search.journal import JOURNAL_NAME

    existed = out.exists()
    before = {p.name for p in out.iterdir()} if existed else set()
    try:
        yield
    except BaseException:
        if not (out / JOURNAL_NAME).exists():
            for name in (SETTINGS_FILE, VALIDATION_FILE):
                if name not in before:
                    (out / name).unlink(missing_ok=True)
            if not existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
        raise
