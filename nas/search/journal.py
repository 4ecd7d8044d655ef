"""The search journal: an append-only JSON-lines file (``journal.jsonl``) that makes resume lose nothing.

Records (one JSON object per line, ``"type"`` says which):

``header``
    Written once, first: ``space_hash``, ``objective``, ``epsilons``, ``strategy``, ``seed``,
    ``options`` (strategy options), ``batch_size``, ``max_gmacs``, ``max_params`` and the teacher
    figures. Resuming checks every identity field against the new run.
``started``
    ``trial`` (id, 0, 1, ...), ``batch``, ``config`` (canonical JSON), ``hash``. Written for a whole
    batch, together with the ``state`` record that follows the proposal, in ONE ``write`` and
    then flushed and fsynced BEFORE any of the batch is evaluated.
``finished``
    ``trial``, ``quality``, ``gmacs``, ``params``, ``seconds``, ``feasible`` (``{"<eps>": bool}``, decided
    once by the loop), ``elapsed`` (wall seconds of the whole search so far). Flushed and fsynced
    right after the evaluation.
``state``
    ``phase`` (``"asked"``: after the strategy proposed batch ``batch``; ``"told"``: after it learnt
    the batch's results), ``batch``, ``state`` (``strategy.state_dict()``), ``elapsed``.

Non-finite floats are written as ``null`` (strict JSON).

Contract (what holds after ``kill -9`` at ANY point, and after a power loss for fsynced records):

1. Every record that was completely written stays readable; the file is only ever appended to.
2. A torn tail is ignored when reading, and cut off when the journal is reopened for appending,
   so it never merges with the next record. A torn tail is a last line without its newline or
   not valid JSON (a partial write), or ``started`` records not followed by their batch's
   ``state`` record (a partial batch write: none of that batch was evaluated, since evaluation
   waits for the whole write to be fsynced, so the batch is proposed again on resume). A
   malformed line anywhere else, or a record no writer wrote (a missing or mistyped field, a
   trial started or finished twice), is a :class:`JournalError` naming the file and the line.
3. A trial that has a ``finished`` record is never evaluated again: its result is replayed.
4. A trial with a ``started`` record and no ``finished`` one is evaluated again on resume, with the
   same trial id and the same configuration: it is neither lost nor duplicated.
5. Every trial id appears in at most one ``started`` and at most one ``finished`` record.
6. Opening a journal written by another search (space, objective, epsilons, strategy, seed,
   options, batch size or bounds differ) is a :class:`JournalError` naming what differs; nothing
   is written to it.

Example:
    >>> import tempfile, os
    >>> from tocsr_nas.searchspace import Configuration
    >>> path = os.path.join(tempfile.mkdtemp(), "journal.jsonl")
    >>> j = Journal.create(path, {"space_hash": "abc", "seed": 0})
    >>> j.append_batch(0, [(0, Configuration({"a": "x"}))], state={"rng": 1})
    >>> j.append_finished(0, quality=0.1, gmacs=1.0, params=2.0, seconds=0.0, feasible={"0.05": False}, elapsed=0.1)
    >>> j.close()
    >>> contents = read_journal(path)
    >>> contents.trials[0].finished["quality"], contents.last_state["phase"]
    (0.1, 'asked')
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tocsr_nas._io import atomic_create_bytes
from tocsr_nas.errors import TocsrError
from tocsr_nas.searchspace import Configuration

__all__ = [
    "JOURNAL_NAME",
    "JOURNAL_VERSION",
    "IDENTITY_KEYS",
    "Journal",
    "JournalContents",
    "JournalError",
    "TrialRecord",
    "read_journal",
    "eps_key",
]

logger = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
JOURNAL_VERSION = 1
#: header fields that must match for a journal to be resumed
IDENTITY_KEYS = (
    "space_hash", "objective", "epsilons", "strategy", "seed", "options", "batch_size", "sweep", "max_gmacs", "max_params",
    "max_latency",
)
#: the value of an identity key that journals written before it existed stand for
IDENTITY_DEFAULTS = {"sweep": "cycle", "max_latency": None}


class JournalError(TocsrError):
    """A journal that cannot be read, or that belongs to a different search."""


def eps_key(epsilon: float) -> str:
    """The text form of an epsilon used in journal keys and CSV column names (``0.05`` -> ``"0.05"``)."""
    return repr(float(epsilon))


def _clean(value: Any) -> Any:
    """Replace non-finite floats by ``None`` (recursively) so the JSON stays strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(_clean(record), separators=(",", ":"), allow_nan=False) + "\n"


@dataclass
class TrialRecord:
    """What the journal knows about one trial: its proposal and, once evaluated, its result."""

    trial: int
    batch: int
    config: Configuration
    finished: dict[str, Any] | None = None

    @property
    def hash(self) -> str:
        return self.config.hash


@dataclass
class JournalContents:
    """A journal as read back: the header, the trials in id order and the last strategy state."""

    header: dict[str, Any]
    trials: dict[int, TrialRecord] = field(default_factory=dict)
    last_state: dict[str, Any] | None = None
    #: byte length of the valid prefix (everything after it is a torn tail)
    valid_bytes: int = 0
    torn: bool = False

    @property
    def elapsed(self) -> float:
        """Wall seconds the search had run when its last record was written."""
        best = 0.0
        for t in self.trials.values():
            if t.finished and t.finished.get("elapsed") is not None:
                best = max(best, float(t.finished["elapsed"]))
        if self.last_state and self.last_state.get("elapsed") is not None:
            best = max(best, float(self.last_state["elapsed"]))
        return best

    def finished_trials(self) -> list[TrialRecord]:
        return [t for t in self.trials.values() if t.finished is not None]

    def batches(self) -> dict[int, list[TrialRecord]]:
        """Trials grouped by batch, each group in trial-id order."""
        out: dict[int, list[TrialRecord]] = {}
        for t in sorted(self.trials.values(), key=lambda r: r.trial):
            out.setdefault(t.batch, []).append(t)
        return dict(sorted(out.items()))


def read_journal(path: str | os.PathLike[str]) -> JournalContents:
    """Read a journal, ignoring a torn last line.

    Raises:
        JournalError: the file is missing, has no header, has a malformed line before the last, or
            holds a record no writer wrote (a missing or mistyped field, a trial started or finished
            twice...); the message names the file and the line.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    # ``lines[-1]`` is what follows the final newline: empty for a clean file, a torn record otherwise
    complete, tail = lines[:-1], lines[-1]
    records: list[dict[str, Any]] = []
    offsets: list[int] = []  # byte offset of each record
    numbers: list[int] = []  # line number of each record (1-based)
    valid = 0
    torn = bool(tail)
    for i, raw in enumerate(complete):
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict) or "type" not in rec:
                raise ValueError("not a journal record")
        except (ValueError, UnicodeDecodeError) as exc:
            if i == len(complete) - 1 and not tail:
                torn = True  # a garbled last line (e.g. zero-filled after a power loss)
                break
            raise JournalError(f"journal {path} is corrupt at line {i + 1}: {exc}") from None
        records.append(rec)
        offsets.append(valid)
        numbers.append(i + 1)
        valid += len(raw) + 1
    # started records at the very end lack the state record their batch write ends with: torn
    while records and records[-1].get("type") == "started":
        records.pop()
        numbers.pop()
        valid = offsets.pop()
        torn = True
    if torn:
        logger.warning("journal %s: ignoring a torn last line (an interrupted write)", path)
    if not records or records[0].get("type") != "header":
        raise JournalError(f"journal {path} has no header record; it was not written by tocsr-nas")
    contents = JournalContents(header=records[0], valid_bytes=valid, torn=torn)
    for number, rec in zip(numbers[1:], records[1:]):
        try:
            _apply_record(contents, rec)
        except ValueError as exc:  # a record no writer wrote (SearchSpaceError is a ValueError too)
            raise JournalError(f"journal {path} is corrupt at line {number}: {exc}") from None
    contents.trials = dict(sorted(contents.trials.items()))
    return contents


def _field(rec: Mapping[str, Any], key: str, kind: str) -> Any:
    """``rec[key]`` checked against what the writer puts there (``int``, ``number``: float or null)."""
    if key not in rec:
        raise ValueError(f"a {rec['type']!r} record without {key!r}")
    value = rec[key]
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise ValueError(f"{key!r} of a {rec['type']!r} record is {value!r}, not a {'trial id' if kind == 'int' else 'number'}")
    return value


def _apply_record(contents: JournalContents, rec: Mapping[str, Any]) -> None:
    """Add one record (after the header) to ``contents``; a record no writer wrote is a ``ValueError``."""
    kind = rec["type"]
    if kind == "started":
        tid = _field(rec, "trial", "int")
        if tid in contents.trials:
            raise ValueError(f"trial {tid} was started twice")
        config = rec.get("config")
        if not isinstance(config, str):
            raise ValueError(f"trial {tid} has no configuration")
        contents.trials[tid] = TrialRecord(tid, _field(rec, "batch", "int"), Configuration.from_json(config))
    elif kind == "finished":
        tid = _field(rec, "trial", "int")
        if tid not in contents.trials:
            raise ValueError(f"trial {tid} finished without being started")
        if contents.trials[tid].finished is not None:
            raise ValueError(f"trial {tid} finished twice")
        for key in ("quality", "gmacs", "params", "seconds", "elapsed"):
            _field(rec, key, "number")
        feasible = rec.get("feasible")
        if not isinstance(feasible, dict) or not all(isinstance(v, bool) for v in feasible.values()):
            raise ValueError(f"trial {tid} has no feasibility flags")
        contents.trials[tid].finished = dict(rec)
    elif kind == "state":
        if rec.get("phase") not in ("asked", "told"):
            raise ValueError(f"a state record of phase {rec.get('phase')!r}")
        _field(rec, "batch", "int")
        contents.last_state = dict(rec)
    elif kind == "header":
        raise ValueError("a second header")
    else:
        logger.debug("journal: skipping unknown record type %r", kind)


def check_header(found: Mapping[str, Any], expected: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Raise :class:`JournalError` if ``found`` (a journal's header) belongs to another search."""
    diffs = []
    for key in IDENTITY_KEYS:
        a = _clean(found.get(key, IDENTITY_DEFAULTS.get(key)))
        b = _clean(expected.get(key, IDENTITY_DEFAULTS.get(key)))
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            diffs.append(f"{key}: {a!r} in the journal, {b!r} now")
    if diffs:
        raise JournalError(
            f"cannot resume {path}: it was written by a different search ({'; '.join(diffs)}); "
            "resume with the same arguments, or write to another output directory"
        )


class Journal:
    """Appends records to ``journal.jsonl`` with flush + fsync (see the module docstring).

    Use :meth:`create` for a new search and :meth:`open_for_resume` to continue one.
    """

    def __init__(self, path: str | os.PathLike[str], fh: Any) -> None:
        self.path = os.fspath(path)
        self._fh = fh

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], header: Mapping[str, Any]) -> "Journal":
        """Start a new journal; refuses to overwrite an existing one.

        Raises:
            JournalError: ``path`` already exists.
        """
        try:  # the header appears whole or not at all: a kill here leaves no journal to refuse
            atomic_create_bytes(path, _dumps({"type": "header", "version": JOURNAL_VERSION, **header}).encode("utf-8"))
        except FileExistsError:
            raise JournalError(
                f"{path} already exists: that directory holds a search; resume it (resume=True / --resume) "
                "or choose another output directory"
            ) from None
        return cls(path, open(path, "ab"))

    @classmethod
    def open_for_resume(
        cls, path: str | os.PathLike[str], expected_header: Mapping[str, Any]
    ) -> tuple["Journal", JournalContents]:
        """Read an existing journal, check it belongs to this search, cut a torn tail, open it for appending.

        Raises:
            JournalError: unreadable journal or a different search (nothing is written then).
        """
        contents = read_journal(path)
        check_header(contents.header, expected_header, path)
        fh = open(path, "r+b")
        if contents.torn:
            fh.truncate(contents.valid_bytes)
            os.fsync(fh.fileno())
        fh.seek(0, os.SEEK_END)
        return cls(path, fh), contents

    # -- writing --------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        self._fh.write(text.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append_batch(
        self,
        batch: int,
        trials: Sequence[tuple[int, Configuration]],
        *,
        state: Mapping[str, Any],
        elapsed: float | None = None,
    ) -> None:
        """The ``started`` records of a batch and the strategy state after proposing it, in one write + fsync.

        The closing ``state`` record marks the batch write as complete (see the contract, point 2).
        """
        text = "".join(
            _dumps({"type": "started", "trial": int(tid), "batch": int(batch), "config": cfg.to_json(), "hash": cfg.hash})
            for tid, cfg in trials
        )
        text += _dumps({"type": "state", "phase": "asked", "batch": int(batch), "elapsed": elapsed, "state": state})
        self._write(text)

    def append_finished(
        self,
        trial: int,
        *,
        quality: float,
        gmacs: float,
        params: float,
        seconds: float,
        feasible: Mapping[str, bool],
        elapsed: float,
        latency: float | None = None,
    ) -> None:
        """The result of one trial (fsynced before returning); ``latency`` (predicted ms) only in
        searches with a latency table."""
        record = {
            "type": "finished",
            "trial": int(trial),
            "quality": float(quality),
            "gmacs": float(gmacs),
            "params": float(params),
            "seconds": float(seconds),
            "feasible": {str(k): bool(v) for k, v in feasible.items()},
            "elapsed": float(elapsed),
        }
        if latency is not None:
            record["latency"] = float(latency)
        self._write(_dumps(record))

    def append_state(self, batch: int, state: Mapping[str, Any], *, phase: str = "told", elapsed: float | None = None) -> None:
        """A strategy state record (``phase`` ``"told"``: after the batch's results were told)."""
        self._write(_dumps({"type": "state", "phase": phase, "batch": int(batch), "elapsed": elapsed, "state": state}))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def finished_rows(contents: JournalContents, strategy: str, epsilons: Iterable[float]) -> list[dict[str, Any]]:
    """The finished trials of a journal as rows of :attr:`SearchResult.trials` (in trial order)."""
    eps = list(epsilons)
    rows = []
    for t in contents.finished_trials():
        rec = t.finished or {}
        rows.append(
            trial_row(
                trial=t.trial,
                strategy=strategy,
                config=t.config,
                quality=rec.get("quality"),
                gmacs=rec.get("gmacs"),
                params=rec.get("params"),
                seconds=rec.get("seconds"),
                feasible={e: bool((rec.get("feasible") or {}).get(eps_key(e), False)) for e in eps},
                epsilons=eps,
                latency=rec.get("latency", math.nan) if "latency" in rec else None,
            )
        )
    return rows


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def trial_row(
    *,
    trial: int,
    strategy: str,
    config: Configuration,
    quality: Any,
    gmacs: Any,
    params: Any,
    seconds: Any,
    feasible: Mapping[float, bool],
    epsilons: Sequence[float],
    latency: Any = None,
) -> dict[str, Any]:
    """One row of the trials table; ``feasible`` is the flag at the primary (first) epsilon; the
    ``latency`` column (predicted ms) only when given."""
    row: dict[str, Any] = {
        "trial": int(trial),
        "strategy": strategy,
        "config": config.to_json(),
        "hash": config.hash,
        "gmacs": _num(gmacs),
        "params": _num(params),
        **({"latency": _num(latency)} if latency is not None else {}),
        "quality": _num(quality),
        "feasible": bool(feasible[epsilons[0]]),
    }
    for e in epsilons:
        row[f"feasible@{eps_key(e)}"] = bool(feasible[e])
    row["seconds"] = _num(seconds)
    return row
