"""Property tests (hypothesis) of the search-space DSL and of the search journal.

The DSL: generated spaces (rules, candidates with parameter grids, constraints) survive YAML,
configurations survive their encodings, constraints agree with a direct evaluation, NNI export
keeps the choices.

The journal: whatever byte a real journal is cut at, and whatever torn last line follows, reading
gives exactly the complete records before the cut (or a :class:`TocsrError` naming the file), resume
continues from there, and garbage in the middle is refused naming the file and the line.
"""

from __future__ import annotations

import fnmatch
import io
import itertools
import json
import math
import re

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tocsr_nas.errors import TocsrError
from tocsr_nas.search.journal import (
    JOURNAL_NAME,
    Journal,
    JournalError,
    eps_key,
    finished_rows,
    read_journal,
)
from tocsr_nas.search.results import load_search
from tocsr_nas.search.trials import trials_frame
from tocsr_nas.searchspace import (
    Candidate,
    Configuration,
    Forbid,
    MaxCount,
    SameChoice,
    SearchSpace,
    SpaceSpec,
    parse_candidate_name,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- the DSL ---------------------------------------------------------------------------------------

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
type_names = st.from_regex(r"[a-z][a-z0-9_\-]{0,8}", fullmatch=True).filter(lambda t: t != "teacher")
#: parameter values: every scalar the DSL accepts, strings included (with the characters of names)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(alphabet=st.sampled_from("ab,=()[]*? \"'\\:#-{}é\t"), max_size=8),
    st.sampled_from(["a,b=1", "k=v,w=2", "x)", "(", "yes", "null", "1e3", "", " lead"]),
)


@st.composite
def candidate_specs(draw, type_name: str) -> dict:
    """One candidate entry of a rule in its YAML form: a bare name, or ``{type, params?, grid?}``."""
    keys = draw(st.lists(identifiers, max_size=3, unique=True))
    n_fixed = draw(st.integers(0, len(keys)))
    params = {k: draw(scalars) for k in keys[:n_fixed]}
    grid = {k: draw(st.lists(scalars, min_size=1, max_size=3, unique_by=lambda v: json.dumps(v))) for k in keys[n_fixed:]}
    if not params and not grid:
        return type_name
    out: dict = {"type": type_name}
    if params:
        out["params"] = params
    if grid:
        out["grid"] = grid
    return out


@st.composite
def specs(draw) -> tuple[SpaceSpec, list[tuple[str, str]]]:
    """A space spec and the modules it resolves against (rule ``i`` selects ``r{i}.b{j}``)."""
    n_rules = draw(st.integers(1, 3))
    rules, modules = [], []
    for i in range(n_rules):
        types = draw(st.lists(type_names, min_size=1, max_size=3, unique=True))
        candidates = [draw(candidate_specs(t)) for t in types]
        # names and class names that YAML would read as something else if they were not quoted
        label = draw(st.sampled_from(["rule", "yes", "null", "1.5", "a: b", "#x", "~", "[r]", "é"]))
        rule = {"name": label if i == 0 else f"{label}{i}", "match": f"r{i}.*", "candidates": candidates}
        if draw(st.booleans()):
            rule["type"] = draw(st.sampled_from([f"T{i}", [f"T{i}", "Other"], [f"T{i}", "true"]]))
        rules.append(rule)
        n_blocks = draw(st.integers(1, 3))
        modules.append((f"r{i}", "Container"))
        for j in range(n_blocks):
            modules.append((f"r{i}.b{j}", f"T{i}"))
            modules.append((f"r{i}.b{j}.inner", f"T{i}"))  # inside a block: never a block itself
    constraints = []
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, n_rules - 1))
        blocks = draw(st.sampled_from([f"r{i}.*", "*", f"r{i}.b0"]))
        kind = draw(st.sampled_from(["max_count", "forbid", "same_choice"]))
        if kind == "max_count":
            cand = draw(st.sampled_from(["teacher", "*", "*(*", f"{rules[i]['candidates'][0] if isinstance(rules[i]['candidates'][0], str) else rules[i]['candidates'][0]['type']}*"]))
            constraints.append({"type": "max_count", "candidate": cand, "count": draw(st.integers(0, 3)), "blocks": blocks})
        elif kind == "forbid":
            when = {blocks: draw(st.sampled_from(["teacher", "*"]))}
            if draw(st.booleans()):
                k = draw(st.integers(0, n_rules - 1))
                when[f"r{k}.b0"] = draw(st.sampled_from(["teacher", "*", "[!t]*"]))
            constraints.append({"type": "forbid", "when": when})
        elif blocks != "*" or n_rules == 1:
            constraints.append({"type": "same_choice", "blocks": blocks})
    data = {"name": draw(st.sampled_from(["space", "micro", "yes", "null", "1.5", "a: b"])), "rules": rules}
    if constraints:
        data["constraints"] = constraints
    return SpaceSpec.from_dict(data), modules


def _canonical(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _direct_allows(constraint, config: dict[str, str]) -> bool:
    """The constraint's meaning, evaluated straight from its fields (not through ``allows``)."""
    d = constraint.to_dict()
    if d["type"] == "max_count":
        chosen = [c for p, c in config.items() if fnmatch.fnmatchcase(p, d["blocks"])]
        return len([c for c in chosen if fnmatch.fnmatchcase(c, d["candidate"])]) <= d["count"]
    if d["type"] == "forbid":
        all_hold = all(
            any(fnmatch.fnmatchcase(p, bg) and fnmatch.fnmatchcase(c, cg) for p, c in config.items())
            for bg, cg in d["when"].items()
        )
        return not all_hold
    if d["type"] == "same_choice":
        return len({c for p, c in config.items() if fnmatch.fnmatchcase(p, d["blocks"])}) <= 1
    raise AssertionError(d)


@FAST
@given(specs())
def test_space_round_trips_through_yaml(spec_modules):
    spec, modules = spec_modules
    space = spec.resolve(modules)
    text = spec.to_yaml()
    again = SpaceSpec.from_dict(yaml.safe_load(text))
    assert again == spec
    assert _canonical(again.to_dict()) == _canonical(spec.to_dict())
    assert again.to_yaml() == text
    resolved = again.resolve(modules)
    assert resolved.hash == space.hash
    assert [b.names for b in resolved.blocks] == [b.names for b in space.blocks]
    assert [b.path for b in space.blocks] == [m for m, _ in modules if m.count(".") == 1]
    # the resolved space's own dict form survives JSON
    back = SearchSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert back.hash == space.hash and _canonical(back.to_dict()) == _canonical(space.to_dict())


@FAST
@given(specs(), st.data())
def test_configuration_encodings_round_trip(spec_modules, data):
    space = spec_modules[0].resolve(spec_modules[1])
    indices = [data.draw(st.integers(0, n - 1)) for n in space.cardinalities]
    cfg = space.decode(indices)
    assert space.encode(cfg) == indices
    hot = space.one_hot(cfg)
    assert sum(hot) == len(space.blocks) and len(hot) == space.one_hot_dim
    again = Configuration.from_json(cfg.to_json())
    assert again == cfg and again.hash == cfg.hash and again.to_json() == cfg.to_json()
    # the canonical JSON does not depend on insertion order
    shuffled = Configuration(dict(reversed(list(cfg.items()))))
    assert shuffled.to_json() == cfg.to_json() and shuffled.hash == cfg.hash
    # every choice's name parses back to the same candidate
    for block in space.blocks:
        for cand in block.choices:
            assert parse_candidate_name(cand.name) == cand, cand.name


@FAST
@given(specs())
def test_hash_is_injective_over_distinct_configurations(spec_modules):
    space = spec_modules[0].resolve(spec_modules[1])
    assume(space.size <= 2000)
    configs = [space.decode(c) for c in itertools.product(*(range(n) for n in space.cardinalities))]
    assert len({c.to_json() for c in configs}) == len(configs)
    assert len({c.hash for c in configs}) == len(configs)


@FAST
@given(specs(), st.data())
def test_constraints_agree_with_a_direct_evaluation(spec_modules, data):
    space = spec_modules[0].resolve(spec_modules[1])
    assume(space.size <= 2000)
    every = [space.decode(c) for c in itertools.product(*(range(n) for n in space.cardinalities))]
    valid = [c for c in every if all(_direct_allows(k, dict(c)) for k in space.constraints)]
    assert [c.to_json() for c in space.enumerate()] == [c.to_json() for c in valid]
    for cfg in every:
        assert space.is_valid(cfg) == (cfg in valid)
    if valid:
        sampled = space.sample(data.draw(st.integers(0, 2**31)))
        assert sampled in valid


@FAST
@given(specs(), st.data())
def test_nni_export_is_loadable_and_has_the_same_choices(spec_modules, data):
    space = spec_modules[0].resolve(spec_modules[1])
    exported = json.loads(json.dumps(space.to_nni()))
    imported = SearchSpace.from_nni(exported)
    assert imported.paths == space.paths
    assert [b.names for b in imported.blocks] == [b.names for b in space.blocks]
    assert imported.size == space.size
    params = {p: data.draw(st.sampled_from(e["_value"])) for p, e in exported.items()}
    cfg = space.decode_nni(params)
    assert dict(cfg) == params
    assert space.encode(cfg) == imported.encode(imported.decode_nni(params))


def test_constraint_types_are_all_generated():
    """The generator covers every built-in constraint type (a new one needs a direct evaluation here)."""
    assert {MaxCount.kind, Forbid.kind, SameChoice.kind} == {"max_count", "forbid", "same_choice"}


@pytest.mark.parametrize("value", ["a,b=1", "x)", "(", "k=v,w=2", ",c=", 'q"r,s=3'])
def test_a_candidate_name_with_a_string_parameter_parses_back(value):
    """A string parameter that looks like ``,key=`` or holds brackets does not split the name."""
    cand = Candidate("conv", {"mode": value, "n": 2})
    assert parse_candidate_name(cand.name) == cand


# --- the journal -----------------------------------------------------------------------------------

HEADER = {"space_hash": "abc", "objective": "gmacs", "epsilons": [0.05, 0.5], "strategy": "random", "seed": 0}
EPS = [0.05, 0.5]
qualities = st.one_of(st.floats(-1, 1, allow_nan=False), st.just(math.nan), st.just(math.inf))


@st.composite
def journal_plans(draw) -> list[tuple]:
    """The writes of a search: batches of trials, each finished (with a result) or, last, unfinished."""
    n_batches = draw(st.integers(0, 4))
    plan, tid = [], 0
    for b in range(n_batches):
        size = draw(st.integers(1, 3))
        trials = [(tid + i, Configuration({"blk.0": f"c{tid + i}", "blk.1": draw(st.sampled_from(["x", "y", "é"]))}))
                  for i in range(size)]
        tid += size
        plan.append(("batch", b, trials, {"n": b, "rng": [b, 7]}))
        last = b == n_batches - 1
        n_done = draw(st.integers(0, size)) if last else size
        for t, _ in trials[:n_done]:
            plan.append(("finished", t, draw(qualities), float(t) + 0.5, float(t) * 10, 0.01 * t))
        if n_done == size and (not last or draw(st.booleans())):
            plan.append(("state", b, {"n": b + 1}))
    return plan


def _write(path, plan) -> list[tuple[int, str]]:
    """Write ``plan`` with the real writer; return ``(end offset, record type)`` of every line."""
    j = Journal.create(path, HEADER)
    for step in plan:
        if step[0] == "batch":
            _, b, trials, state = step
            j.append_batch(b, trials, state=state, elapsed=float(b))
        elif step[0] == "finished":
            _, t, q, g, p, s = step
            j.append_finished(t, quality=q, gmacs=g, params=p, seconds=s,
                              feasible={eps_key(e): bool(q <= e) for e in EPS}, elapsed=s)
        else:
            _, b, state = step
            j.append_state(b, state, elapsed=float(b) + 0.5)
    j.close()
    ends, offset = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            offset += len(line)
            ends.append((offset, json.loads(line)["type"]))
    return ends


def _expected(data: bytes, ends: list[tuple[int, str]], cut: int) -> tuple[list[dict], int]:
    """The complete records before ``cut``, less ``started`` records not closed by their batch's state."""
    kept = [(end, t) for end, t in ends if end <= cut]
    while kept and kept[-1][1] == "started":
        kept.pop()
    valid = kept[-1][0] if kept else 0
    return [json.loads(line) for line in data[:valid].splitlines()], valid


def _check_contents(contents, records: list[dict], path) -> None:
    assert contents.header == records[0]
    started = {r["trial"]: r for r in records if r["type"] == "started"}
    finished = {r["trial"]: r for r in records if r["type"] == "finished"}
    states = [r for r in records if r["type"] == "state"]
    assert list(contents.trials) == sorted(started)
    for tid, trial in contents.trials.items():
        assert trial.config.to_json() == started[tid]["config"] and trial.batch == started[tid]["batch"]
        assert trial.finished == finished.get(tid)
    assert contents.last_state == (states[-1] if states else None)
    # the trials table of this prefix: one row per finished trial, equal to its record, through CSV
    frame = trials_frame(finished_rows(contents, "random", EPS), EPS)
    buf = io.StringIO(frame.to_csv(index=False))
    table = pd.read_csv(buf, dtype={"config": str, "hash": str, "strategy": str})
    assert list(table["trial"]) == sorted(finished)
    for _, row in table.iterrows():
        rec, cfg = finished[int(row["trial"])], contents.trials[int(row["trial"])].config
        assert row["config"] == cfg.to_json() and row["hash"] == cfg.hash
        for key in ("quality", "gmacs", "params", "seconds"):
            want = math.nan if rec[key] is None else rec[key]
            assert (math.isnan(want) and math.isnan(row[key])) or row[key] == want
        for e in EPS:
            assert bool(row[f"feasible@{eps_key(e)}"]) == rec["feasible"][eps_key(e)]
        assert bool(row["feasible"]) == rec["feasible"][eps_key(EPS[0])]
    # what `load_search` makes of a folder that holds only this journal (a search killed before its tables)
    loaded = load_search(path.parent).trials
    assert loaded.equals(frame)


def _read_or_refused(path, data: bytes, ends, cut: int, tail: bytes) -> None:
    """Read ``data[:cut] + tail``: the records before the cut, or a refusal naming the file."""
    path.write_bytes(data[:cut] + tail)
    records, valid = _expected(data, ends, cut)
    if not records:
        with pytest.raises(JournalError, match=re.escape(str(path))):
            read_journal(path)
        return
    contents = read_journal(path)
    _check_contents(contents, records, path)
    assert contents.valid_bytes == valid
    assert contents.torn == (len(data[:cut] + tail) != valid)
    # resume: the torn tail is cut, and the next record starts on a line of its own
    journal, again = Journal.open_for_resume(path, HEADER)
    assert path.read_bytes() == data[:valid]
    journal.append_state(99, {"resumed": True})
    journal.close()
    after = read_journal(path)
    assert after.last_state["state"] == {"resumed": True} and not after.torn
    assert list(after.trials) == list(contents.trials)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journal_plans(), st.data())
def test_any_prefix_reads_back_as_the_complete_records_before_the_cut(tmp_path_factory, plan, data):
    folder = tmp_path_factory.mktemp("journal")
    path = folder / JOURNAL_NAME
    ends = _write(path, plan)
    full = path.read_bytes()
    cut = data.draw(st.integers(0, len(full)), label="cut")
    _read_or_refused(path, full, ends, cut, b"")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journal_plans(), st.data())
def test_a_torn_last_line_is_dropped(tmp_path_factory, plan, data):
    folder = tmp_path_factory.mktemp("journal")
    path = folder / JOURNAL_NAME
    ends = _write(path, plan)
    full = path.read_bytes()
    boundary = data.draw(st.sampled_from([0] + [end for end, _ in ends]), label="boundary")
    tail = data.draw(
        st.one_of(
            st.binary(max_size=40).filter(lambda b: b"\n" not in b and b),  # a partial write
            st.binary(min_size=1, max_size=20).map(lambda b: b"\x00" * len(b) + b"\n"),  # zero-filled block
            st.sampled_from([b'{"type":"finished","tri', b'{"type": "state"', b"\xff\xfe\n", b"{}garbage\n"]),
        ),
        label="tail",
    )
    _read_or_refused(path, full, ends, boundary, tail)


#: lines that are not journal records, or records a writer never wrote
GARBAGE = [
    b"\x00\x00\x00",
    b"not json",
    b"{",
    b"[1, 2]",
    b'"started"',
    b'{"trial": 0}',
    b'{"type": "started"}',
    b'{"type": "started", "trial": "x", "batch": 0, "config": "{}"}',
    b'{"type": "started", "trial": 900, "batch": 0, "config": "not json"}',
    b'{"type": "started", "trial": 901, "batch": 0, "config": "{\\"a\\": 1}"}',
    b'{"type": "finished", "trial": null}',
    b'{"type": "finished", "trial": 12345}',
    b'{"type": "state", "phase": "asked"}',
    b'{"type": "header"}',
    b"\xff\xfe",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journal_plans().filter(lambda p: len(p) >= 1), st.data())
def test_garbage_in_the_middle_is_refused_naming_the_file_and_line(tmp_path_factory, plan, data):
    folder = tmp_path_factory.mktemp("journal")
    path = folder / JOURNAL_NAME
    ends = _write(path, plan)
    full = path.read_bytes()
    # a line boundary after the header and before the last line: what follows is complete records
    at = data.draw(st.integers(0, len(ends) - 2), label="after line")
    offset = ends[at][0]
    garbage = data.draw(st.sampled_from(GARBAGE), label="garbage")
    path.write_bytes(full[:offset] + garbage + b"\n" + full[offset:])
    with pytest.raises(TocsrError) as info:
        read_journal(path)
    message = str(info.value)
    assert str(path) in message and f"line {at + 2}" in message, message
    assert isinstance(info.value, JournalError)


# --- resume from any prefix, with the real loop ------------------------------------------------------

TOY = SearchSpace.from_choices({f"b{i}": ["full", "half", "tiny"] for i in range(3)}, name="toy")
SIZES = {"full": 4.0, "half": 2.0, "tiny": 1.0}


def _toy_quality(cfg) -> float:
    return round(sum({"full": 0.0, "half": 0.01, "tiny": 0.03}[v] for v in cfg.values()), 10)


def _toy_loop(out_dir, *, resume: bool):
    from tocsr_nas.search.loop import SearchLoop

    def cost(cfg):
        return {"gmacs": sum(SIZES[v] for v in cfg.values()), "params": 10 * sum(SIZES[v] for v in cfg.values())}

    return SearchLoop(TOY, quality=_toy_quality, cost=cost, epsilons=[0.03, 0.1], strategy="random", budget=7,
                      seed=5, batch_size=3, out_dir=str(out_dir), resume=resume, progress=False, save_outputs=False)


def _timeless(path) -> list[dict]:
    volatile = {"created", "elapsed", "seconds"}
    return [{k: v for k, v in json.loads(line).items() if k not in volatile} for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy-reference")
    _toy_loop(out, resume=False).run()
    return (out / JOURNAL_NAME).read_bytes(), _timeless(out / JOURNAL_NAME)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_resume_from_any_prefix_and_torn_tail_completes_the_same_search(tmp_path_factory, toy_reference, data):
    full, records = toy_reference
    cut = data.draw(st.integers(0, len(full)), label="cut")
    tail = data.draw(st.sampled_from([b"", b"\x00\x00\x00\n", b'{"type":"fini']), label="tail")
    out = tmp_path_factory.mktemp("toy")
    (out / JOURNAL_NAME).write_bytes(full[:cut] + tail)
    header_end = full.index(b"\n") + 1
    if cut < header_end:  # no complete header: refused, naming the journal, and nothing is written
        before = (out / JOURNAL_NAME).read_bytes()
        with pytest.raises(JournalError, match=re.escape(str(out / JOURNAL_NAME))):
            _toy_loop(out, resume=True).run()
        assert (out / JOURNAL_NAME).read_bytes() == before
        return
    _toy_loop(out, resume=True).run()
    assert _timeless(out / JOURNAL_NAME) == records
