"""The surrogate library on disk: one safetensors file per (block, candidate) and a manifest.

Layout of a library folder::

    <root>/manifest.json                         header + every finished pair (atomic rewrite)
    <root>/<safe block path>/<safe cand>.safetensors   trained weights; header metadata: block,
                                                 candidate, type, params, config (JSON)
    <root>/<safe block path>/<safe cand>.json    the pair's record (sidecar), written after the weights

What a reader can rely on (the storage contract):

* Every file is written atomically (``tocsr_nas._io``: temporary file + ``os.replace``): a crash
  leaves either the old file or the complete new one, never a torn one.
* A pair is *finished* exactly when its sidecar JSON exists (the sidecar is written after the
  weights, so a finished pair always has its weights). The manifest is a summary rewritten after
  every finished pair; a crash between a pair's sidecar and the manifest loses nothing, because
  :meth:`SurrogateLibrary.open` merges the sidecars in, and ``distill --resume`` rewrites it.
* A sidecar records its weights file's path (inside the library: anything else is refused), size
  and sha256. Opening checks each size, :meth:`SurrogateLibrary.load` the sha256, and
  ``distill --resume`` checks both and distils a damaged pair again (a record written before
  checksums were kept: its weights are read through instead).
* The header records the teacher's fingerprint, the search space (as a dict) and its hash, and the
  resolution the features were captured at. Opening against another teacher or space is a
  :class:`LibraryMismatchError`; an unfinished library is an :class:`IncompleteLibraryError`
  that says how many pairs are missing and that ``tocsr-nas distill --resume`` finishes them.

Example:
    >>> import tempfile
    >>> from diffusers.models.downsampling import Downsample2D
    >>> from tocsr_nas.searchspace import SearchSpace
    >>> from tocsr_nas.searchspace.candidates import Candidate
    >>> from tocsr_nas.searchspace.space import Block
    >>> from tocsr_nas.surrogates.registry import build_surrogate
    >>> space = SearchSpace([Block("down", "Downsample2D", "r", (Candidate("teacher"), Candidate("skip")))])
    >>> root = tempfile.mkdtemp()
    >>> header = library_header(teacher_fingerprint="abc", space=space, resolution=64)
    >>> write_manifest(root, header, [])
    >>> teacher_block = Downsample2D(8, use_conv=True)
    >>> module = build_surrogate("skip", teacher_block)
    >>> rec = PairRecord("down", "skip", "skip", {}, dict(module.config), 0.5, 0.5, 0, 0.0, False)
    >>> _ = write_pair(root, rec, module)
    >>> lib = SurrogateLibrary.open(root, teacher_fingerprint="abc", space_hash=space.hash)
    >>> lib.prior()
    {'down': {'teacher': 0.0, 'skip': 0.5}}
    >>> type(lib.load("down", "skip", teacher_block)).__name__
    'Skip'
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tocsr_nas._io import (
    atomic_write_json,
    file_record,
    inside,
    load_safetensors,
    read_json,
    save_safetensors,
    verify_file,
)
from tocsr_nas.errors import DamagedFileError
from tocsr_nas.searchspace.candidates import TEACHER
from tocsr_nas.searchspace.space import SearchSpace
from tocsr_nas.surrogates.errors import IncompleteLibraryError, LibraryMismatchError
from tocsr_nas.surrogates.features import safe_name
from tocsr_nas.surrogates.registry import get_surrogate

__all__ = [
    "LibraryMismatchError",
    "IncompleteLibraryError",
    "PairRecord",
    "SurrogateLibrary",
    "library_header",
    "write_pair",
    "write_manifest",
    "read_manifest",
    "pair_files",
    "MANIFEST",
    "FORMAT",
]

logger = logging.getLogger(__name__)

#: the manifest's file name
MANIFEST = "manifest.json"
#: the ``format`` field of every manifest and pair file
FORMAT = "tocsr-surrogate-library"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PairRecord:
    """What distillation recorded for one (block, candidate) pair.

    Attributes:
        block: the block's dotted path.
        candidate: the candidate's canonical name.
        type: the registered surrogate type.
        params: the candidate's parameters.
        config: the surrogate's diffusers config (rebuilds the module with ``from_config``).
        initial_loss: normalised feature MSE on the held-out features before training.
        final_loss: the same after training.
        steps: optimiser steps taken (0 for parameter-free candidates).
        seconds: wall time of the pair's job (build, train, evaluate).
        trainable: whether the candidate has trainable parameters.
        file: the weights file, relative to the library root (never outside it).
        extra: anything else the distiller recorded.
        size: the weights file's size in bytes (``None`` in libraries written before it was recorded).
        sha256: the weights file's sha256 (likewise).
    """

    block: str
    candidate: str
    type: str
    params: dict[str, Any]
    config: dict[str, Any]
    initial_loss: float
    final_loss: float
    steps: int
    seconds: float
    trainable: bool
    file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    size: int | None = None
    sha256: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.block, self.candidate)

    @property
    def ratio(self) -> float:
        """``final_loss / initial_loss`` (below 1: training helped)."""
        return self.final_loss / self.initial_loss if self.initial_loss > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def pair_files(root: str | os.PathLike[str], block: str, candidate: str) -> tuple[Path, Path]:
    """``(weights file, sidecar JSON)`` of one pair in a library folder."""
    base = Path(root) / safe_name(block) / safe_name(candidate)
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, indent=1, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A diffusers config as plain JSON data (tuples become lists)."""
    return json.loads(json.dumps(dict(config), default=_json_default))


def library_header(
    *,
    teacher_fingerprint: str,
    space: SearchSpace,
    resolution: int | None,
    settings: Mapping[str, Any] | None = None,
    component: str | None = None,
) -> dict[str, Any]:
    """The header of a library's manifest.

    Args:
        teacher_fingerprint: the teacher's fingerprint (``Teacher.fingerprint()``).
        space: the search space the library is distilled for.
        resolution: the image side (pixels) at which the block features were captured.
        settings: distillation settings, for the record.
        component: the network of the teacher the blocks belong to (``"vae.decoder"``...); ``None``
            (the denoiser) writes no ``component`` key, as libraries always did.
    """
    extra = {"component": str(component)} if component not in (None, "denoiser") else {}
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "teacher_fingerprint": str(teacher_fingerprint),
        "space_hash": space.hash,
        "space": space.to_dict(),
        "resolution": resolution,
        "settings": dict(settings or {}),
        **extra,
    }


def write_pair(
    root: str | os.PathLike[str], record: PairRecord, module: nn.Module | Mapping[str, torch.Tensor] | None
) -> PairRecord:
    """Write one finished pair: the weights (atomically), then its sidecar (atomically).

    Args:
        root: the library folder.
        record: the pair's record (its ``file``, ``size`` and ``sha256`` are filled in here).
        module: the trained surrogate, or its ``state_dict()`` (``None`` writes an empty weights file).

    Returns:
        The record as written (with ``file``, the weights' ``size`` and ``sha256`` set).
    """
    weights, sidecar = pair_files(root, record.block, record.candidate)
    rel = weights.relative_to(root).as_posix()
    record = PairRecord(**{**record.to_dict(), "file": rel, "config": _plain_config(record.config)})
    state = {} if module is None else module.state_dict() if isinstance(module, nn.Module) else dict(module)
    meta = {
        "format": FORMAT,
        "block": record.block,
        "candidate": record.candidate,
        "type": record.type,
        "params": json.dumps(record.params, sort_keys=True),
        "config": json.dumps(record.config, sort_keys=True),
    }
    save_safetensors(weights, state, meta)
    record = replace(record, **file_record(weights))
    _write_json(sidecar, record.to_dict())
    return record


def write_manifest(root: str | os.PathLike[str], header: Mapping[str, Any], records: Iterable[PairRecord]) -> None:
    """Rewrite ``manifest.json`` atomically: the header plus every finished pair, sorted."""
    pairs = sorted((r.to_dict() for r in records), key=lambda d: (d["block"], d["candidate"]))
    _write_json(Path(root) / MANIFEST, {**dict(header), "pairs": pairs})


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json``.

    Raises:
        LibraryMismatchError: no manifest, or not a surrogate library.
        DamagedFileError: the manifest is truncated or corrupt.
    """
    path = Path(root) / MANIFEST
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise LibraryMismatchError(
            f"{root} is not a surrogate library (no {MANIFEST}); create one with `tocsr-nas distill --out {root}`"
        ) from None
    except OSError as exc:
        raise LibraryMismatchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LibraryMismatchError(f"{path} is not a surrogate library manifest (format {FORMAT!r})")
    lacking = [k for k in ("teacher_fingerprint", "space_hash", "space") if k not in data]
    if lacking or not isinstance(data["space"], dict) or not isinstance(data.get("pairs", []), list):
        raise DamagedFileError(f"{path} is damaged: {', '.join(lacking) or 'its space or pairs'} missing or malformed")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise LibraryMismatchError(
            f"{path} has format version {data.get('version')}, newer than this tocsr-nas ({FORMAT_VERSION}); upgrade"
        )
    return data


def finished_pairs(
    root: str | os.PathLike[str], space: SearchSpace, *, verify: bool = False
) -> dict[tuple[str, str], PairRecord]:
    """Every finished pair of ``space`` in a library folder, from the sidecars (the source of truth).

    A pair counts when its sidecar is readable and its weights file exists with the recorded size.
    With ``verify`` (``distill --resume``), each weights file is also checked in full: its sha256
    against the sidecar's, or, for a pair written before checksums were recorded, read through; a
    damaged pair is logged and left out, so it is distilled again.

    Args:
        root: the library folder.
        space: the search space.
        verify: check each weights file in full and leave damaged pairs out.

    Returns:
        ``{(block, candidate): PairRecord}``.

    Raises:
        DamagedFileError: a sidecar names a weights file outside ``root``, or (without ``verify``) an
            unreadable sidecar or a weights file whose size differs from its sidecar's.
    """
    done: dict[tuple[str, str], PairRecord] = {}
    for block in space.blocks:
        for cand in block.choices:
            if cand.name == TEACHER:
                continue
            weights, sidecar = pair_files(root, block.path, cand.name)
            if not sidecar.is_file():
                continue
            try:
                record = PairRecord.from_dict(read_json(sidecar))
            except (OSError, DamagedFileError, TypeError, AttributeError) as exc:
                if not verify:
                    raise DamagedFileError(
                        f"pair record {sidecar} is damaged ({exc}); `tocsr-nas distill --out {root} --resume` "
                        "distils the pair again"
                    ) from None
                logger.warning("ignoring unreadable pair record %s (%s); it will be distilled again", sidecar, exc)
                continue
            if record.file:
                weights = inside(root, record.file, sidecar)
            if not weights.is_file() or record.key != (block.path, cand.name):
                logger.warning("ignoring pair record %s without matching weights; it will be distilled again", sidecar)
                continue
            if verify:
                try:
                    _verify_weights(weights, record)
                except DamagedFileError as exc:
                    logger.warning("pair (%s, %s) is damaged and will be distilled again: %s", *record.key, exc)
                    continue
            else:
                verify_file(weights, record.to_dict(), hash=False)
            done[record.key] = record
    return done


def _verify_weights(path: Path, record: PairRecord) -> None:
    """Check a pair's weights in full: size and sha256, or (no checksum recorded) read them through."""
    if record.size is not None:
        verify_file(path, record.to_dict())
    else:
        load_safetensors(path)


class SurrogateLibrary:
    """Distilled surrogates on disk: open, inspect losses, load modules.

    Open it with :meth:`open`; load one surrogate with :meth:`load`; the search reads
    :meth:`prior` and people read :meth:`losses`.

    Attributes:
        root: the library folder.
        header: the manifest header (fingerprint, space, resolution, settings).
        records: ``{(block, candidate): PairRecord}`` of every finished pair.
    """

    def __init__(self, root: str | os.PathLike[str], header: Mapping[str, Any], records: Mapping[tuple[str, str], PairRecord]) -> None:
        self.root = Path(root)
        self.header = dict(header)
        self.records = dict(records)
        self._space: SearchSpace | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        teacher_fingerprint: str | None = None,
        space_hash: str | None = None,
        require_complete: bool = True,
    ) -> SurrogateLibrary:
        """Open a library folder, checking it against a teacher and a space.

        Args:
            root: the folder ``tocsr-nas distill --out`` wrote.
            teacher_fingerprint: if given, must equal the library's (``Teacher.fingerprint()``).
            space_hash: if given, must equal the library's (``SearchSpace.hash``).
            require_complete: raise when pairs are missing.

        Raises:
            LibraryMismatchError: not a library, or another teacher or space.
            IncompleteLibraryError: pairs missing (with ``require_complete``).
            DamagedFileError: a damaged manifest, a weights file of the wrong size, or a sidecar
                naming a file outside ``root``.
        """
        data = read_manifest(root)
        header = {k: v for k, v in data.items() if k != "pairs"}
        if teacher_fingerprint is not None and header.get("teacher_fingerprint") != teacher_fingerprint:
            raise LibraryMismatchError(
                f"surrogate library {root} was distilled from teacher {header.get('teacher_fingerprint')}, "
                f"not from this teacher ({teacher_fingerprint}); distill a library for this teacher with "
                "`tocsr-nas distill --teacher DIR --out NEW_DIR`"
            )
        if space_hash is not None and header.get("space_hash") != space_hash:
            raise LibraryMismatchError(
                f"surrogate library {root} was distilled for search space {header.get('space_hash')}, "
                f"not for this one ({space_hash}); distill it for this space with "
                "`tocsr-nas distill --space FILE --out NEW_DIR`"
            )
        lib = cls(root, header, {})
        lib.records = finished_pairs(root, lib.space)  # the sidecars are the truth, the manifest a summary
        stale = [(e.get("block"), e.get("candidate")) for e in data.get("pairs", [])]
        stale = [k for k in stale if k not in lib.records]
        if stale:
            logger.warning("%s: %d pairs listed in the manifest have no files; they count as missing", root, len(stale))
        missing = lib.missing()
        if require_complete and missing:
            total = len(missing) + len(lib.records)
            raise IncompleteLibraryError(
                f"surrogate library {root} is incomplete: {len(missing)} of {total} (block, candidate) pairs "
                f"are not distilled yet (first: {missing[0][0]} / {missing[0][1]}); finish them with "
                f"`tocsr-nas distill --out {root} --resume`"
            )
        return lib

    # ------------------------------------------------------------------ facts
    @property
    def teacher_fingerprint(self) -> str:
        return str(self.header.get("teacher_fingerprint"))

    @property
    def space_hash(self) -> str:
        return str(self.header.get("space_hash"))

    @property
    def resolution(self) -> int | None:
        return self.header.get("resolution")

    @property
    def component(self) -> str:
        """The network of the teacher the library's blocks belong to (``"denoiser"`` unless recorded)."""
        return str(self.header.get("component") or "denoiser")

    @property
    def space(self) -> SearchSpace:
        """The search space the library was distilled for (rebuilt from the manifest)."""
        if self._space is None:
            self._space = SearchSpace.from_dict(self.header["space"])
            if self._space.hash != self.space_hash:
                raise LibraryMismatchError(
                    f"{self.root / MANIFEST}: the stored space does not match its hash {self.space_hash}; "
                    "the manifest was edited or is corrupt"
                )
        return self._space

    def pairs(self) -> list[tuple[str, str]]:
        """Every (block, candidate) pair of the space, teacher excluded, in space order."""
        return [(b.path, c.name) for b in self.space.blocks for c in b.choices if c.name != TEACHER]

    def missing(self) -> list[tuple[str, str]]:
        """Pairs of the space that are not finished yet."""
        return [p for p in self.pairs() if p not in self.records]

    @property
    def is_complete(self) -> bool:
        return not self.missing()

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, pair: object) -> bool:
        return pair in self.records

    def __repr__(self) -> str:
        return (
            f"SurrogateLibrary({str(self.root)!r}: {len(self.records)}/{len(self.pairs())} pairs, "
            f"teacher {self.teacher_fingerprint}, space {self.space_hash})"
        )

    # ------------------------------------------------------------------ loading
    def record(self, block: str, candidate: str) -> PairRecord:
        """The record of one pair.

        Raises:
            LibraryMismatchError: the pair is not in the library.
        """
        try:
            return self.records[(block, candidate)]
        except KeyError:
            raise LibraryMismatchError(
                f"surrogate library {self.root} has no pair ({block}, {candidate}); "
                + ("finish it with `tocsr-nas distill --resume`" if (block, candidate) in self.pairs()
                   else "it is not in the library's search space")
            ) from None

    def load(self, block: str, candidate: str, teacher_block: nn.Module | None = None) -> nn.Module:
        """The trained module of one pair.

        Args:
            block: the block's dotted path.
            candidate: the candidate name; ``"teacher"`` returns ``teacher_block`` itself.
            teacher_block: the teacher's block; the surrogate is moved to its device and dtype.

        Returns:
            The surrogate with its distilled weights, in eval mode.

        Raises:
            LibraryMismatchError: unknown pair, or a weights file that does not match its record.
            DamagedFileError: the weights file is outside the library, truncated or corrupt, or its
                size or sha256 differs from the record's.
        """
        if candidate == TEACHER:
            if teacher_block is None:
                raise ValueError("loading the 'teacher' candidate needs the teacher block")
            return teacher_block
        rec = self.record(block, candidate)
        path = inside(self.root, rec.file, pair_files(self.root, block, candidate)[1])
        verify_file(path, rec.to_dict())
        try:
            state, meta = load_safetensors(path, metadata=True)
        except OSError as exc:
            raise LibraryMismatchError(f"cannot read surrogate weights {path}: {exc}") from None
        if meta.get("block") != block or meta.get("candidate") != candidate:
            raise LibraryMismatchError(
                f"{path} holds ({meta.get('block')}, {meta.get('candidate')}), not ({block}, {candidate})"
            )
        config = json.loads(meta["config"])
        module = get_surrogate(rec.type).from_config(config)
        missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise LibraryMismatchError(
                f"{path} does not fit surrogate {candidate!r}: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
            )
        if teacher_block is not None:
            ref = next(iter(teacher_block.parameters()), None)
            first = next(iter(module.parameters()), None)
            if ref is not None and first is not None and (first.device, first.dtype) != (ref.device, ref.dtype):
                module = module.to(device=ref.device, dtype=ref.dtype)
        return module.eval()

    # ------------------------------------------------------------------ summaries
    def losses(self) -> Any:
        """Every finished pair's losses as a ``pandas.DataFrame``.

        Columns: ``block, candidate, type, trainable, initial_loss, final_loss, ratio, steps, seconds``;
        one row per pair, in space order.
        """
        import pandas as pd

        order = {p: i for i, p in enumerate(self.pairs())}
        rows = [
            {
                "block": r.block,
                "candidate": r.candidate,
                "type": r.type,
                "trainable": r.trainable,
                "initial_loss": r.initial_loss,
                "final_loss": r.final_loss,
                "ratio": r.ratio,
                "steps": r.steps,
                "seconds": r.seconds,
            }
            for r in sorted(self.records.values(), key=lambda r: order.get(r.key, len(order)))
        ]
        columns = ["block", "candidate", "type", "trainable", "initial_loss", "final_loss", "ratio", "steps", "seconds"]
        return pd.DataFrame(rows, columns=columns)

    def prior(self) -> dict[str, dict[str, float]]:
        """``{block: {candidate: final_loss}}`` with ``teacher`` = 0: the search's per-block prior."""
        out: dict[str, dict[str, float]] = {}
        for block in self.space.blocks:
            row = {}
            for cand in block.choices:
                if cand.name == TEACHER:
                    row[cand.name] = 0.0
                elif (block.path, cand.name) in self.records:
                    row[cand.name] = float(self.records[(block.path, cand.name)].final_loss)
            out[block.path] = row
        return out
