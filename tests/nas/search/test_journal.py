"""The journal's written contract (see tocsr_nas.search.journal): append-only, torn tails ignored and cut,
unfinished trials re-run on resume, other searches refused."""

from __future__ import annotations

import json
import math
import os

import pytest
from search_toys import toy_cost, toy_quality, toy_space

from tocsr_nas.errors import TocsrError
from tocsr_nas.search.journal import JOURNAL_NAME, Journal, JournalError, read_journal
from tocsr_nas.search.loop import SearchLoop
from tocsr_nas.searchspace import Configuration

HEADER = {"space_hash": "abc", "objective": "gmacs", "epsilons": [0.05], "strategy": "random", "seed": 0}


def _cfg(v: str) -> Configuration:
    return Configuration({"a": v})


def _write_small(path: str) -> None:
    j = Journal.create(path, HEADER)
    j.append_batch(0, [(0, _cfg("x")), (1, _cfg("y"))], state={"n": 0})
    j.append_finished(0, quality=0.01, gmacs=1.0, params=2.0, seconds=0.1, feasible={"0.05": True}, elapsed=0.2)
    j.append_finished(1, quality=math.nan, gmacs=3.0, params=4.0, seconds=0.1, feasible={"0.05": False}, elapsed=0.3)
    j.append_state(0, {"n": 2})
    j.append_batch(1, [(2, _cfg("z"))], state={"n": 2})
    j.close()


def test_records_read_back(tmp_path):
    path = str(tmp_path / JOURNAL_NAME)
    _write_small(path)
    contents = read_journal(path)
    assert contents.header["seed"] == 0 and contents.header["type"] == "header"
    assert list(contents.trials) == [0, 1, 2]
    assert [t.config["a"] for t in contents.trials.values()] == ["x", "y", "z"]
    assert contents.trials[0].finished["quality"] == 0.01
    assert contents.trials[1].finished["quality"] is None  # NaN is written as null (strict JSON)
    assert contents.trials[2].finished is None  # started, not finished
    assert contents.last_state == {"type": "state", "phase": "asked", "batch": 1, "elapsed": None, "state": {"n": 2}}
    assert contents.elapsed == pytest.approx(0.3)
    for line in open(path, encoding="utf-8"):
        json.loads(line)  # every line is strict JSON


def test_create_refuses_an_existing_journal(tmp_path):
    path = str(tmp_path / JOURNAL_NAME)
    _write_small(path)
    before = open(path, "rb").read()
    with pytest.raises(JournalError, match="already exists"):
        Journal.create(path, HEADER)
    assert open(path, "rb").read() == before


@pytest.mark.parametrize("cut", [1, 10, 25, -1])
def test_torn_last_line_is_ignored_and_cut_on_resume(tmp_path, cut):
    path = str(tmp_path / JOURNAL_NAME)
    _write_small(path)
    full = open(path, "rb").read()
    # a partial write of one more "finished" record
    extra = b'{"type":"finished","trial":2,"quality":0.02,"gmacs":1.0,"params":1.0,"seconds":0.1}'
    with open(path, "ab") as fh:
        fh.write(extra[:cut])
    contents = read_journal(path)
    assert contents.torn and contents.trials[2].finished is None
    j, _ = Journal.open_for_resume(path, HEADER)
    assert open(path, "rb").read() == full  # the torn tail is cut...
    j.append_finished(2, quality=0.02, gmacs=1.0, params=1.0, seconds=0.1, feasible={"0.05": True}, elapsed=1.0)
    j.close()
    again = read_journal(path)  # ...so the next record starts on its own line
    assert not again.torn and again.trials[2].finished["quality"] == 0.02


def test_garbled_complete_last_line_is_ignored(tmp_path):
    path = str(tmp_path / JOURNAL_NAME)
    _write_small(path)
    with open(path, "ab") as fh:
        fh.write(b"\x00\x00\x00\n")  # what a power loss may leave behind
    assert read_journal(path).torn


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = str(tmp_path / JOURNAL_NAME)
    _write_small(path)
    lines = open(path, "rb").read().split(b"\n")
    lines[2] = b"{not json"
    open(path, "wb").write(b"\n".join(lines))
    with pytest.raises(JournalError, match="corrupt at line 3"):
        read_journal(path)


def test_no_header_is_an_error(tmp_path):
    path = tmp_path / JOURNAL_NAME
    path.write_text('{"type":"started","trial":0,"batch":0,"config":"{}","hash":"x"}\n')
    with pytest.raises(JournalError, match="no header"):
        read_journal(str(path))
    with pytest.raises(JournalError, match="cannot read"):
        read_journal(str(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"strategy": "evolution"}, {"objective": "params"}, {"space_hash": "def"}, {"epsilons": [0.1]}],
)
def test_resume_against_another_search_is_refused_without_writing(tmp_path, change):
    path = str(tmp_path / JOURNAL_NAME)
    _write_small(path)
    before = open(path, "rb").read()
    key = next(iter(change))
    with pytest.raises(TocsrError, match=f"different search.*{key}"):
        Journal.open_for_resume(path, {**HEADER, **change})
    assert open(path, "rb").read() == before


def _loop(out_dir, **kw):
    args = dict(quality=toy_quality, cost=toy_cost, epsilons=[0.05, 0.1], strategy="random", budget=7, seed=3,
                batch_size=2, progress=False, save_outputs=False)
    args.update(kw)
    return SearchLoop(toy_space(), out_dir=out_dir, **args)


def test_started_is_durable_before_evaluation_and_finished_after(tmp_path):
    """The quality function reads the journal from disk: its own trial is started, not finished."""
    path = tmp_path / JOURNAL_NAME
    seen = []

    def quality(cfg):
        contents = read_journal(str(path))
        mine = [t for t in contents.trials.values() if t.config == cfg]
        assert len(mine) == 1 and mine[0].finished is None
        # every earlier trial is already finished
        assert all(t.finished is not None for t in contents.trials.values() if t.trial < mine[0].trial)
        seen.append(mine[0].trial)
        return toy_quality(cfg)

    result = _loop(str(tmp_path), quality=quality).run()
    assert seen == list(range(7))
    contents = read_journal(str(path))
    assert all(t.finished is not None for t in contents.trials.values())
    assert result.trials["trial"].tolist() == seen


def _cut_points(data: bytes) -> list[int]:
    """Every line end, and the middle of every line after the header."""
    ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    mids = [(a + b) // 2 for a, b in zip(ends, ends[1:])]
    return sorted(set(ends + mids))


def test_kill_at_any_record_boundary_then_resume_equals_uninterrupted(tmp_path):
    """Truncating the journal anywhere (what kill -9 can leave) and resuming gives the same trials."""
    ref_dir = tmp_path / "ref"
    ref = _loop(str(ref_dir)).run().trials
    data = (ref_dir / JOURNAL_NAME).read_bytes()
    cols = ["trial", "config", "quality", "gmacs", "params", "feasible@0.05", "feasible@0.1"]
    for n, cut in enumerate(_cut_points(data)):
        run_dir = tmp_path / f"cut{n}"
        run_dir.mkdir()
        (run_dir / JOURNAL_NAME).write_bytes(data[:cut])
        got = _loop(str(run_dir), resume=True).run().trials
        assert got[cols].equals(ref[cols]), f"cut at byte {cut}"
        final = read_journal(str(run_dir / JOURNAL_NAME))
        assert len(final.trials) == 7 and all(t.finished is not None for t in final.trials.values())


def test_resume_of_a_finished_search_evaluates_nothing(tmp_path):
    first = _loop(str(tmp_path)).run().trials
    calls = []

    def quality(cfg):
        calls.append(cfg)
        return toy_quality(cfg)

    again = _loop(str(tmp_path), resume=True, quality=quality).run().trials
    assert calls == [] and again.equals(first)
    assert os.path.getsize(tmp_path / JOURNAL_NAME) > 0


def test_a_journal_from_before_the_sweep_key_resumes_as_a_cycle_sweep(tmp_path):
    from tocsr_nas.search.journal import check_header

    old = {"space_hash": "abc", "epsilons": [0.05, 0.1], "batch_size": 1}  # written before "sweep" existed
    check_header(old, {**old, "sweep": "cycle"}, tmp_path / "journal.jsonl")
    with pytest.raises(JournalError, match=r"sweep: 'cycle' in the journal, 'gain' now"):
        check_header(old, {**old, "sweep": "gain"}, tmp_path / "journal.jsonl")
