"""The search loop: ask a strategy, evaluate, record, repeat, until the budget is spent.

The loop owns everything that is not proposing: evaluation (a quality callable and a cost table
or cost callable), storage (the journal, see :mod:`tocsr_nas.search.journal`), the budget (evaluations
and/or wall seconds), resume, dedupe and the progress bar. Feasibility is decided here, once:
a trial is feasible at ``epsilon`` iff its quality is finite and ``quality <= epsilon``; the flag
is stored on the trial and everything downstream (best, Pareto front, plots, CSV) reads it.

One iteration (a batch of ``q = batch_size`` proposals)::

    configs = strategy.ask(q)           # dedupe: skip known configurations, ask again (bounded)
    journal: started x q + state        # one write, fsync: nothing is evaluated before this
    for each config: evaluate -> journal: finished (fsync)
    strategy.tell(observations)         # in trial order
    journal: state                      # the strategy after learning the batch

The strategy knows the batch's configurations are pending until they are told (``ask`` records
them; :meth:`~tocsr_nas.strategies.base.Strategy.is_seen`), so one ``ask(q)`` brings ``q``
distinct proposals. With an ``evaluator`` pool (:meth:`tocsr_nas.executors.Executor.evaluator_pool`,
e.g. Ray actors that each hold the supernet and the quality function) the batch is evaluated in
parallel: each trial is journalled by this process as it finishes (in any order), and the batch is
told in proposal order once all are in, so the journal stays the single source of truth and resume
works as without one.

Resume (``resume=True`` on an output directory that holds a journal): a fresh strategy is told
every finished batch in journal order, gets the last state record, the started-but-unfinished
trials of the pending batch are evaluated (same ids, same configurations), and the loop goes on.
For deterministic strategies the final trials equal those of an uninterrupted run with the same
seed.

Example:
    >>> from tocsr_nas.searchspace import SearchSpace
    >>> space = SearchSpace.from_choices({"a": ["4", "2", "1"], "b": ["4", "2", "1"]})
    >>> gmacs = lambda c: float(int(c["a"]) + int(c["b"]))
    >>> quality = lambda c: 1.0 / gmacs(c)
    >>> loop = SearchLoop(space, quality=quality, cost=gmacs, epsilons=[0.2], strategy="random",
    ...                   budget=5, seed=0, progress=False)
    >>> result = loop.run()
    >>> len(result.trials), result.best.gmacs <= 8.0
    (5, True)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tocsr_nas.errors import TocsrError
from tocsr_nas.search.journal import JOURNAL_NAME, Journal, JournalContents, JournalError, eps_key, trial_row
from tocsr_nas.search.results import OBJECTIVES, SearchResult, trials_frame
from tocsr_nas.searchspace import Configuration, SearchSpace, SearchSpaceError

__all__ = ["RESULT_FILES", "SearchLoop", "check_fresh_start", "validate_epsilons"]

logger = logging.getLogger(__name__)

#: a space at most this big may be searched without a budget (until the strategy is exhausted)
UNBOUNDED_SPACE_LIMIT = 10_000

#: the result files a search writes next to its journal
RESULT_FILES = ("trials.csv", "pareto.csv", "best.json")


def check_fresh_start(out_dir: str | os.PathLike[str], option: str = "--out") -> None:
    """Refuse to start a search afresh in a folder that holds a search's results but no journal.

    Without its journal a search cannot be resumed, and a new one would rewrite ``trials.csv``
    and ``best.json`` with fewer trials: the results are never replaced, with or without ``resume``.

    Args:
        out_dir: the search's output folder.
        option: its command-line option, for the message.

    Raises:
        TocsrError: ``out_dir`` holds a result file and no ``journal.jsonl``.
    """
    if os.path.exists(os.path.join(out_dir, JOURNAL_NAME)):
        return
    found = [name for name in RESULT_FILES if os.path.exists(os.path.join(out_dir, name))]
    if found:
        raise TocsrError(
            f"{option} {os.fspath(out_dir)} holds search results ({', '.join(found)}) but no {JOURNAL_NAME}: it "
            "cannot be resumed and is never started over; choose a new folder (nothing was changed)"
        )


def validate_epsilons(epsilon: float | Sequence[float]) -> tuple[float, ...]:
    """Epsilons as a tuple of distinct floats (order kept: the first is the primary one).

    Raises:
        TocsrError: an epsilon that is not a finite number > 0, or an empty sequence.
    """
    values = [epsilon] if isinstance(epsilon, (str, bytes)) or not isinstance(epsilon, Iterable) else list(epsilon)
    if not values:
        raise TocsrError("epsilon out of range: give at least one epsilon (a finite number > 0)")
    out: list[float] = []
    for value in values:
        try:
            if isinstance(value, bool):
                raise TypeError
            e = float(value)
        except (TypeError, ValueError):
            raise TocsrError(f"epsilon out of range: {value!r} is not a number; epsilon must be finite and > 0") from None
        if not (math.isfinite(e) and e > 0):
            raise TocsrError(f"epsilon out of range: {value!r}; epsilon must be finite and > 0 (e.g. 0.05 for 5%)")
        if e not in out:
            out.append(e)
    return tuple(out)


def _positive(name: str, value: Any, *, integer: bool) -> Any:
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or not (math.isfinite(float(value)) and value > 0):
        kind = "a positive integer" if integer else "a positive finite number"
        raise TocsrError(f"{name} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


class _CostModel:
    """Turns a cost table or cost callable into cached ``(gmacs, params, latency)`` figures per
    configuration (``latency``: predicted ms, ``nan`` unless the cost has a ``latency(cfg)`` method,
    e.g. :class:`~tocsr_nas.evaluators.latency.TableCosts`)."""

    _WHICH = {"gmacs": 0, "params": 1, "latency": 2}

    def __init__(self, cost: Any, objective: str) -> None:
        self.objective = objective
        self._cache: dict[str, tuple[float, float, float]] = {}
        #: whether the cost reports latency (then trials carry a ``latency`` column)
        self.has_latency = callable(getattr(cost, "latency", None))
        if callable(getattr(cost, "gmacs", None)) and callable(getattr(cost, "params", None)):
            latency = (lambda cfg: float(cost.latency(cfg))) if self.has_latency else (lambda cfg: math.nan)
            self._fn = lambda cfg: (float(cost.gmacs(cfg)), float(cost.params(cfg)), latency(cfg))
        elif callable(cost):
            self._fn = lambda cfg: self._from_callable(cost(cfg))
        else:
            raise TocsrError(
                "cost must be a CostTable (with .gmacs(cfg) and .params(cfg)) or a callable returning a "
                f"number or a mapping with 'gmacs'/'params'; got {type(cost).__name__}"
            )

    def _from_callable(self, value: Any) -> tuple[float, float, float]:
        if isinstance(value, Mapping):
            unknown = set(value) - {"gmacs", "params", "latency"}
            if unknown:
                raise TocsrError(
                    f"cost(config) returned unknown key(s) {sorted(unknown)}; expected 'gmacs', 'params' and/or 'latency'"
                )
            if "latency" in value:
                self.has_latency = True
            return (self._num(value.get("gmacs")), self._num(value.get("params")), self._num(value.get("latency")))
        v = self._num(value)
        out = [math.nan, math.nan, math.nan]
        out[self._WHICH[self.objective]] = v
        return tuple(out)

    @staticmethod
    def _num(value: Any) -> float:
        if value is None:
            return math.nan
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise TocsrError(
                f"cost(config) must return a number or a mapping with 'gmacs'/'params', got {value!r}"
            ) from None

    def __call__(self, cfg: Configuration) -> tuple[float, float, float]:
        key = cfg.to_json()
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._fn(cfg)
        return hit

    def value(self, cfg: Configuration, which: str | None = None) -> float:
        which = which or self.objective
        v = self(cfg)[self._WHICH[which]]
        if math.isnan(v):
            raise TocsrError(
                f"the cost function reports no {which!r} for {cfg.to_json()}: minimising or bounding {which} needs a "
                f"CostTable or a cost callable returning {{'{which}': ...}}"
            )
        return v


class _NoJournal:
    """Stands in for :class:`Journal` when the search writes no files."""

    path = None

    def append_batch(self, *args: Any, **kwargs: Any) -> None: ...

    def append_finished(self, *args: Any, **kwargs: Any) -> None: ...

    def append_state(self, *args: Any, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


class SearchLoop:
    """Runs a strategy against a quality function and a cost model under a budget, with a journal.

    Args:
        space: the search space.
        quality: ``quality(config) -> float``, lower is better (any callable). Exceptions propagate
            (the trial stays "started" in the journal and is evaluated again on resume).
        cost: a :class:`~tocsr_nas.evaluators.CostTable` (``.gmacs(cfg)``, ``.params(cfg)``) or a
            callable returning a float (the objective) or a mapping with ``'gmacs'`` / ``'params'``.
        epsilons: quality limits; the first is the primary one.
        strategy: a registered strategy name, or a factory ``(problem, seed=..., **options) -> Strategy``
            (its ``name`` attribute, else ``__name__``, goes in the journal).
        objective: ``"gmacs"``, ``"params"`` or ``"latency"`` (predicted ms; ``cost`` must report it): what is minimised.
        budget: maximum number of evaluations (trials) in total, counting resumed ones.
        time_budget: maximum wall seconds in total (a resumed search continues the clock); checked
            before each batch is proposed, so the last batch may run over.
        seed: makes the trial sequence reproducible.
        max_gmacs, max_params, max_latency: hard bounds (GMACs, parameters, predicted ms);
            configurations over them are never proposed nor evaluated.
        batch_size: proposals per ``ask`` (q).
        prior: ``block -> candidate -> expected damage`` handed to the strategy.
        out_dir: where the journal and the result files go; ``None`` keeps everything in memory.
        resume: continue the journal in ``out_dir`` (a fresh start if there is none; a folder with
            results but no journal is refused, see :func:`check_fresh_start`).
        progress: show a tqdm progress bar (best feasible objective so far in its postfix).
        strategy_options: keyword options of the strategy (JSON-serialisable).
        max_duplicate_rounds: how many ``ask`` calls in a row may bring nothing new before the
            strategy counts as exhausted.
        save_outputs: write the result files (tables, ``best.json``, plots) at the end when
            ``out_dir`` is set; the journal is written either way.
        evaluator: a pool that evaluates a batch's configurations in parallel
            (:class:`tocsr_nas.executors.EvaluatorPool`: ``map_unordered(configs)`` yields
            ``(index, quality, seconds)``); ``None``: ``quality`` in this process, one after the other.

    Raises:
        TocsrError: invalid arguments (checked here, before anything runs).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        quality: Callable[[Configuration], float],
        cost: Any,
        epsilons: float | Sequence[float],
        strategy: str | Callable[..., Any] = "ecbo",
        objective: str = "gmacs",
        budget: int | None = None,
        time_budget: float | None = None,
        seed: int = 0,
        max_gmacs: float | None = None,
        max_params: float | None = None,
        max_latency: float | None = None,
        batch_size: int = 1,
        sweep: str = "cycle",
        prior: Mapping[str, Mapping[str, float]] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        progress: bool = True,
        strategy_options: Mapping[str, Any] | None = None,
        max_duplicate_rounds: int = 20,
        save_outputs: bool = True,
        evaluator: Any = None,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise TocsrError(f"space must be a SearchSpace, got {type(space).__name__}")
        if not callable(quality):
            raise TocsrError(f"quality must be a callable quality(config) -> float, got {type(quality).__name__}")
        if objective not in OBJECTIVES:
            raise TocsrError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TocsrError(f"seed must be an integer, got {seed!r}")
        self.space = space
        self.quality = quality
        self.objective = objective
        self.epsilons = validate_epsilons(epsilons)
        self.budget = _positive("budget", budget, integer=True)
        self.time_budget = _positive("time_budget", time_budget, integer=False)
        self.batch_size = _positive("batch_size", batch_size, integer=True)
        from tocsr_nas.strategies.base import check_sweep

        self.sweep = check_sweep(sweep)
        self.max_gmacs = _positive("max_gmacs", max_gmacs, integer=False)
        self.max_params = _positive("max_params", max_params, integer=False)
        self.max_latency = _positive("max_latency", max_latency, integer=False)
        self.max_duplicate_rounds = _positive("max_duplicate_rounds", max_duplicate_rounds, integer=True)
        if self.budget is None and self.time_budget is None and space.size > UNBOUNDED_SPACE_LIMIT:
            raise TocsrError(
                f"give a budget (evaluations) or a time_budget (seconds): the space has {space.size:.3g} "
                "configurations, too many to search until the strategy is exhausted"
            )
        self.seed = seed
        self.prior = prior
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        if resume and self.out_dir is None:
            raise TocsrError("resume needs out_dir (the folder that holds journal.jsonl)")
        self.resume = bool(resume)
        self.progress = bool(progress)
        self.save_outputs = bool(save_outputs)
        self.evaluator = evaluator
        self.strategy_options = dict(strategy_options or {})
        try:
            json.dumps(self.strategy_options, allow_nan=False)
        except (TypeError, ValueError):
            raise TocsrError("strategy_options must be JSON-serialisable (numbers, strings, booleans, lists)") from None
        if isinstance(strategy, str):
            from tocsr_nas.strategies import get_strategy

            get_strategy(strategy)  # an unknown name fails now, listing the valid ones
            self.strategy_name = strategy
            self._factory: Callable[..., Any] | None = None
        elif callable(strategy):
            self.strategy_name = str(getattr(strategy, "name", "") or getattr(strategy, "__name__", "custom"))
            self._factory = strategy
        else:
            raise TocsrError(f"strategy must be a registered name or a factory, got {type(strategy).__name__}")
        self.cost = _CostModel(cost, objective)
        self.cost(space.default_config())  # a cost callable reporting 'latency' is known to, before the header
        if max_gmacs is not None:
            self.cost.value(space.default_config(), "gmacs")  # fail now if gmacs are unknown
        if max_params is not None:
            self.cost.value(space.default_config(), "params")
        if max_latency is not None:
            self.cost.value(space.default_config(), "latency")
        self.problem = self._make_problem()

    # -- set-up -----------------------------------------------------------------------------------
    def admissible(self, cfg: Configuration) -> bool:
        """The space's constraints and the hard bounds (``max_gmacs``, ``max_params``, ``max_latency``)."""
        if not self.space.is_valid(cfg):
            return False
        if self.max_gmacs is not None and self.cost.value(cfg, "gmacs") > self.max_gmacs:
            return False
        if self.max_params is not None and self.cost.value(cfg, "params") > self.max_params:
            return False
        if self.max_latency is not None and self.cost.value(cfg, "latency") > self.max_latency:
            return False
        return True

    def _make_problem(self) -> Any:
        from tocsr_nas.strategies import Problem

        return Problem(
            space=self.space,
            cost=lambda cfg: self.cost.value(cfg),
            epsilons=self.epsilons,
            admissible=self.admissible,
            prior=self.prior,
            sweep=self.sweep,
        )

    def _make_strategy(self) -> Any:
        if self._factory is not None:
            return self._factory(self.problem, seed=self.seed, **self.strategy_options)
        from tocsr_nas.strategies import make_strategy

        return make_strategy(self.strategy_name, self.problem, seed=self.seed, **self.strategy_options)

    def teacher_figures(self) -> dict[str, Any]:
        """The default (teacher) configuration's cost; its quality is filled in from the trials."""
        cfg = self.space.default_config()
        gmacs, params, latency = self.cost(cfg)
        figures = {"configuration": cfg.to_dict(), "hash": cfg.hash, "gmacs": gmacs, "params": params, "quality": None}
        if self.cost.has_latency:
            figures["latency"] = latency
        return figures

    def header(self) -> dict[str, Any]:
        """The journal header: the identity of this search (checked on resume) plus context."""
        return {
            "space_hash": self.space.hash,
            "space_name": self.space.name,
            "objective": self.objective,
            "epsilons": list(self.epsilons),
            "strategy": self.strategy_name,
            "seed": self.seed,
            "options": self.strategy_options,
            "batch_size": self.batch_size,
            "sweep": self.sweep,
            "max_gmacs": self.max_gmacs,
            "max_params": self.max_params,
            **({"max_latency": self.max_latency} if self.max_latency is not None else {}),
            "budget": self.budget,
            "time_budget": self.time_budget,
            "prior": self.prior,
            "teacher": self.teacher_figures(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        """Search until the budget is spent or the strategy is exhausted; save outputs if ``out_dir``.

        Returns:
            The :class:`SearchResult` of every trial (resumed ones included).
        """
        strategy = self._make_strategy()  # before the journal: a bad option leaves no files behind
        journal, contents = self._open_journal()
        self._rows: dict[int, dict[str, Any]] = {}  # trial id -> row of the trials table
        self._trials: dict[int, tuple[int, Configuration]] = {}  # trial id -> (batch, config)
        self._seen: set[Configuration] = set()
        self._elapsed0 = contents.elapsed if contents else 0.0
        self._t0 = time.monotonic()
        self._best = math.inf
        pending: list[tuple[int, Configuration]] = []
        pending_batch = -1
        if contents is not None:
            pending, pending_batch = self._replay(strategy, contents)
        bar = self._progress_bar()
        try:
            while True:
                if pending:
                    batch, trials = pending_batch, pending
                    pending = []
                else:
                    n = self._room()
                    if n == 0:
                        break
                    configs = self._ask(strategy, n)
                    if not configs:
                        logger.info("strategy %s has nothing new to propose: stopping", self.strategy_name)
                        break
                    batch = 1 + max((b for b, _ in self._trials.values()), default=-1)
                    first = 1 + max(self._trials, default=-1)
                    trials = [(first + i, cfg) for i, cfg in enumerate(configs)]
                    for tid, cfg in trials:
                        self._trials[tid] = (batch, cfg)
                    journal.append_batch(batch, trials, state=strategy.state_dict(), elapsed=self._elapsed())
                todo = [(tid, cfg) for tid, cfg in trials if self._finished_row(tid) is None]
                for tid, cfg, value, seconds in self._evaluations(todo):
                    self._record(journal, tid, cfg, value, seconds)
                    bar.update(1)
                    self._postfix(bar)
                strategy.tell([self._observation(cfg, self._finished_row(tid)) for tid, cfg in trials])
                journal.append_state(batch, strategy.state_dict(), phase="told", elapsed=self._elapsed())
        finally:
            bar.close()
            journal.close()
        result = SearchResult(
            trials_frame([self._rows[t] for t in sorted(self._rows)], self.epsilons),
            objective=self.objective,
            epsilons=self.epsilons,
            strategy=self.strategy_name,
            seed=self.seed,
            teacher=self.teacher_figures(),
            space_hash=self.space.hash,
            out_dir=self.out_dir,
        )
        if self.out_dir is not None and self.save_outputs:
            result.save(self.out_dir)
        return result

    # -- pieces -----------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self._elapsed0 + (time.monotonic() - self._t0)

    def _room(self) -> int:
        """How many trials the next batch may hold (0: the budget is spent)."""
        if self.time_budget is not None and self._elapsed() >= self.time_budget:
            logger.info("time budget of %.1f s spent", self.time_budget)
            return 0
        n = self.batch_size
        if self.budget is not None:
            n = min(n, self.budget - len(self._trials))
        return max(n, 0)

    def _ask(self, strategy: Any, n: int) -> list[Configuration]:
        """Up to ``n`` new admissible configurations; known ones are skipped and asked again (bounded)."""
        got: list[Configuration] = []
        idle = 0
        while len(got) < n and idle < self.max_duplicate_rounds:
            proposals = strategy.ask(n - len(got))
            if not proposals:
                break
            fresh = 0
            for cfg in proposals:
                try:
                    cfg = self.space.validate(cfg)
                except SearchSpaceError as exc:
                    logger.warning("strategy %s proposed an invalid configuration, skipped: %s", self.strategy_name, exc)
                    continue
                if cfg in self._seen or cfg in got:
                    logger.debug("skipping duplicate configuration %s", cfg.hash)
                    continue
                if not self.admissible(cfg):
                    logger.warning(
                        "strategy %s proposed %s, which breaks a constraint or a cost bound; not evaluated",
                        self.strategy_name, cfg.hash,
                    )
                    continue
                got.append(cfg)
                fresh += 1
            idle = 0 if fresh else idle + 1
        self._seen.update(got)
        return got[:n]

    def _evaluations(self, trials: Sequence[tuple[int, Configuration]]) -> Iterable[tuple[int, Configuration, Any, float]]:
        """``(trial, config, quality, seconds)`` of each trial, in this process in order, or on the
        evaluator pool in the order they finish."""
        if self.evaluator is None:
            for tid, cfg in trials:
                start = time.perf_counter()
                value = self.quality(cfg)
                yield tid, cfg, value, time.perf_counter() - start
            return
        for i, value, seconds in self.evaluator.map_unordered([cfg for _, cfg in trials]):
            tid, cfg = trials[i]
            yield tid, cfg, value, seconds

    def _record(self, journal: Any, tid: int, cfg: Configuration, value: Any, seconds: float) -> dict[str, Any]:
        """Journal one evaluated trial (feasibility decided here, once) and add its row."""
        gmacs, params, latency = self.cost(cfg)
        latency = latency if self.cost.has_latency else None
        try:
            if isinstance(value, bool):
                raise TypeError
            quality = float(value)
        except (TypeError, ValueError):
            raise TocsrError(f"quality(config) must return a number, got {value!r} for trial {tid}") from None
        # feasibility, decided once: finite and within epsilon
        feasible = {e: bool(math.isfinite(quality) and quality <= e) for e in self.epsilons}
        journal.append_finished(
            tid,
            quality=quality,
            gmacs=gmacs,
            params=params,
            seconds=seconds,
            feasible={eps_key(e): f for e, f in feasible.items()},
            elapsed=self._elapsed(),
            latency=latency,
        )
        return self._add_row(
            tid, cfg, quality=quality, gmacs=gmacs, params=params, seconds=seconds, feasible=feasible, latency=latency
        )

    def _add_row(self, tid: int, cfg: Configuration, **values: Any) -> dict[str, Any]:
        row = trial_row(trial=tid, strategy=self.strategy_name, config=cfg, epsilons=self.epsilons, **values)
        self._rows[tid] = row
        self._seen.add(cfg)
        if row["feasible"] and math.isfinite(row[self.objective]):
            self._best = min(self._best, row[self.objective])
        return row

    def _finished_row(self, tid: int) -> dict[str, Any] | None:
        return self._rows.get(tid)

    def _observation(self, cfg: Configuration, row: Mapping[str, Any]) -> Any:
        from tocsr_nas.strategies import Observation

        return Observation(config=cfg, quality=float(row["quality"]), cost=self.cost.value(cfg))

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=self.budget,
            initial=len(self._rows),
            desc=f"search ({self.strategy_name})",
            unit="trial",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self._postfix(bar)
        return bar

    def _postfix(self, bar: Any) -> None:
        best = f"{self._best:.4g}" if math.isfinite(self._best) else "none yet"
        bar.set_postfix_str(f"best feasible {self.objective} @eps={self.epsilons[0]:g}: {best}", refresh=False)

    # -- journal and resume -----------------------------------------------------------------------
    def _open_journal(self) -> tuple[Any, JournalContents | None]:
        if self.out_dir is None:
            return _NoJournal(), None
        try:
            os.makedirs(self.out_dir, exist_ok=True)
        except OSError as exc:
            raise TocsrError(f"cannot create output directory {self.out_dir}: {exc.strerror}") from None
        path = os.path.join(self.out_dir, JOURNAL_NAME)
        if self.resume and os.path.exists(path):
            journal, contents = Journal.open_for_resume(path, self.header())
            logger.info("resuming %s: %d trials finished", path, len(contents.finished_trials()))
            return journal, contents
        check_fresh_start(self.out_dir, option="out_dir")
        if self.resume:
            logger.info("nothing to resume in %s: starting a new search", self.out_dir)
        return Journal.create(path, self.header()), None

    def _replay(self, strategy: Any, contents: JournalContents) -> tuple[list[tuple[int, Configuration]], int]:
        """Rebuild the strategy from the journal; return the pending batch's trials and its id.

        Told batches (up to the last state record) are told again in order, then the state is
        loaded. The batch after them, if any, is pending: its finished trials are kept, the others
        will be evaluated again.
        """
        state = contents.last_state
        if state is None:
            told_upto = -1
        elif state.get("phase") == "asked":
            told_upto = int(state["batch"]) - 1
        else:
            told_upto = int(state["batch"])
        batches = contents.batches()
        later = [b for b in batches if b > told_upto]
        if len(later) > 1:
            raise JournalError(f"journal in {self.out_dir}: batches {later} were never told; it is damaged")
        for b, records in batches.items():
            for rec in records:
                self._trials[rec.trial] = (b, rec.config)
                self._seen.add(rec.config)
                if rec.finished is not None:
                    f = rec.finished
                    self._add_row(
                        rec.trial,
                        rec.config,
                        quality=f.get("quality"),
                        gmacs=f.get("gmacs"),
                        params=f.get("params"),
                        seconds=f.get("seconds"),
                        feasible={e: bool((f.get("feasible") or {}).get(eps_key(e), False)) for e in self.epsilons},
                        latency=f.get("latency", math.nan) if self.cost.has_latency else None,
                    )
            if b <= told_upto:
                if any(rec.finished is None for rec in records):
                    raise JournalError(f"journal in {self.out_dir}: batch {b} was told but has unfinished trials; it is damaged")
                strategy.tell([self._observation(rec.config, self._finished_row(rec.trial)) for rec in records])
        if state is not None and state.get("state") is not None:
            strategy.load_state_dict(state["state"])
        if not later:
            return [], -1
        b = later[0]
        trials = [(rec.trial, rec.config) for rec in batches[b]]
        if state is None or state.get("phase") != "asked" or int(state["batch"]) != b:
            # read_journal drops a batch whose closing state record is missing, so this is damage
            raise JournalError(f"journal in {self.out_dir}: batch {b} has no state record after its proposal; it is damaged")
        unfinished = sum(1 for rec in batches[b] if rec.finished is None)
        logger.info("resume: batch %d has %d trial(s) to evaluate again", b, unfinished)
        return trials, b
