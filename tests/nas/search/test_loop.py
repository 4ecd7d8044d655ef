"""The search loop: budgets, dedupe, bounds, feasibility decided once, reproducibility, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from search_toys import toy_cost, toy_gmacs, toy_params, toy_quality, toy_space

import tocsr_nas.search.loop as loop_module
from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators import BlockCost, CostTable
from tocsr_nas.search.journal import JOURNAL_NAME, read_journal
from tocsr_nas.search.loop import SearchLoop
from tocsr_nas.searchspace import Configuration
from tocsr_nas.strategies import available_strategies

HERE = Path(__file__).parent
#: the cheap strategies every resume case runs with (whichever of them are registered); ecbo (a GP
#: fit per proposal) runs one case, with small acquisition pools
RESUMABLE = [s for s in ("random", "evolution", "exhaustive") if s in available_strategies()]
SMALL_ECBO = {"pool_random": 64, "pool_local": 32, "posterior_tables": 2, "n_local_starts": 2, "local_steps": 2}
needs_ecbo = pytest.mark.skipif("ecbo" not in available_strategies(), reason="ecbo is not registered")
COMPARED = ["trial", "config", "hash", "gmacs", "params", "quality", "feasible", "feasible@0.05", "feasible@0.1"]


def make_loop(**kw) -> SearchLoop:
    args = dict(quality=toy_quality, cost=toy_cost, epsilons=[0.05, 0.1], strategy="random", budget=10, seed=0,
                progress=False, save_outputs=False)
    args.update(kw)
    return SearchLoop(toy_space(), **args)


class Scripted:
    """A stand-in strategy that proposes a fixed script (duplicates and bad ones included).

    It deliberately breaks the strategy contract, to check the loop's own safeguards.
    """

    name = "scripted"

    def __init__(self, script, problem=None, seed=0):
        self.script = [Configuration(c) for c in script]
        self.pos = 0
        self.told = []

    def ask(self, n=1):
        out = self.script[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def tell(self, observations):
        self.told.extend(observations)

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, state):
        self.pos = state["pos"]


def _cfg(*values: str) -> dict[str, str]:
    return dict(zip(("b0", "b1", "b2", "b3"), values))


# -- budget, batches, exhaustion ----------------------------------------------------------------------
@pytest.mark.parametrize("budget,q", [(1, 1), (7, 1), (7, 3), (9, 4)])
def test_budget_in_evaluations_and_batches(budget, q):
    calls = []
    result = make_loop(budget=budget, batch_size=q, quality=lambda c: calls.append(c) or toy_quality(c)).run()
    assert len(result.trials) == budget == len(calls)
    assert result.trials["trial"].tolist() == list(range(budget))
    assert result.trials["hash"].is_unique


def test_time_budget_counts_wall_seconds(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(loop_module.time, "monotonic", lambda: clock[0])

    def quality(cfg):
        clock[0] += 1.0  # each evaluation takes one (fake) second
        return toy_quality(cfg)

    result = make_loop(budget=None, time_budget=3.5, quality=quality).run()
    assert len(result.trials) == 4  # started at 0, 1, 2 and 3 s; at 4 s the budget is spent


def test_without_budget_a_small_space_runs_to_exhaustion():
    result = make_loop(budget=None).run()
    assert len(result.trials) == toy_space().size
    assert result.trials["hash"].is_unique


def test_without_budget_a_large_space_is_refused():
    from tocsr_nas.searchspace import SearchSpace

    big = SearchSpace.from_choices({f"b{i}": ["a", "b", "c"] for i in range(12)})
    with pytest.raises(TocsrError, match="give a budget"):
        SearchLoop(big, quality=lambda c: 0.0, cost=lambda c: 1.0, epsilons=0.1, strategy="random")


# -- dedupe and admissibility ---------------------------------------------------------------------
def test_duplicates_are_never_evaluated_and_asking_is_bounded():
    a, b, c = _cfg("full", "full", "full", "full"), _cfg("half", "full", "full", "full"), _cfg("tiny", "full", "full", "full")
    script = [a, a, b, a, b, c] + [a] * 100  # then it only repeats itself
    strategy = Scripted(script)
    calls = []
    result = make_loop(strategy=lambda problem, seed: strategy, budget=50,
                       quality=lambda cfg: calls.append(cfg) or toy_quality(cfg), max_duplicate_rounds=5).run()
    assert [Configuration(x) for x in (a, b, c)] == calls
    assert len(result.trials) == 3
    assert strategy.pos < len(script)  # the loop gave up after 5 fruitless asks, not 100


def test_inadmissible_proposals_are_never_evaluated():
    over = _cfg("full", "full", "full", "full")  # 4 GMACs
    under = _cfg("tiny", "tiny", "half", "full")  # 2 GMACs
    calls = []
    result = make_loop(strategy=lambda problem, seed: Scripted([over, under]), max_gmacs=3.0,
                       quality=lambda cfg: calls.append(cfg) or toy_quality(cfg)).run()
    assert calls == [Configuration(under)] and len(result.trials) == 1


@pytest.mark.parametrize("bound", ["max_gmacs", "max_params"])
def test_hard_bounds_hold_for_a_real_strategy(bound):
    limit = 2.5 if bound == "max_gmacs" else 110.0
    result = make_loop(budget=15, **{bound: limit}).run()
    column = "gmacs" if bound == "max_gmacs" else "params"
    assert len(result.trials) > 0 and (result.trials[column] <= limit).all()


# -- feasibility and costs ------------------------------------------------------------------------
def test_feasibility_is_decided_once_and_stored():
    result = make_loop(budget=20).run()
    t = result.trials
    for eps in (0.05, 0.1):
        assert (t[f"feasible@{eps!r}"] == (t["quality"] <= eps)).all()
    assert (t["feasible"] == t["feasible@0.05"]).all()
    assert t["feasible@0.1"].sum() > t["feasible@0.05"].sum() > 0  # the toy has both kinds at each epsilon


def test_nan_quality_is_stored_as_infeasible():
    result = make_loop(budget=3, quality=lambda cfg: math.nan).run()
    assert result.trials["quality"].isna().all() and not result.trials["feasible@0.1"].any()


def test_quality_must_return_a_number():
    with pytest.raises(TocsrError, match="must return a number"):
        make_loop(quality=lambda cfg: "good").run()


def _table() -> CostTable:
    cells = {b: {"teacher": BlockCost(4_000_000_000, 0, 40), "full": BlockCost(4_000_000_000, 0, 40),
                 "half": BlockCost(2_000_000_000, 0, 20), "tiny": BlockCost(1_000_000_000, 0, 10)} for b in ("b0", "b1", "b2", "b3")}
    return CostTable(cells, base=BlockCost(0, 0, 6))


@pytest.mark.parametrize(
    "cost,objective,gmacs,params",
    [
        (toy_cost, "gmacs", toy_gmacs, toy_params),
        (toy_gmacs, "gmacs", toy_gmacs, None),
        (toy_params, "params", None, toy_params),
        (_table(), "params", lambda c: 4.0 * toy_gmacs(c), lambda c: 10 * sum({"full": 4, "half": 2, "tiny": 1}[v] for v in c.values()) + 6),
    ],
    ids=["mapping", "float-gmacs", "float-params", "cost-table"],
)
def test_cost_forms(cost, objective, gmacs, params):
    result = make_loop(cost=cost, objective=objective, budget=6).run()
    for _, row in result.trials.iterrows():
        cfg = Configuration.from_json(row["config"])
        assert row["gmacs"] == pytest.approx(gmacs(cfg)) if gmacs else math.isnan(row["gmacs"])
        assert row["params"] == pytest.approx(params(cfg)) if params else math.isnan(row["params"])
    best = result.best
    assert best is not None and best.value(objective) == result.trials[result.trials["feasible"]][objective].min()


def test_a_bound_on_an_unknown_figure_is_an_error():
    with pytest.raises(TocsrError, match="reports no 'gmacs'"):
        make_loop(cost=toy_params, objective="params", max_gmacs=3.0)


def test_bad_cost_values_are_errors():
    with pytest.raises(TocsrError, match="unknown key"):
        make_loop(cost=lambda c: {"flops": 1.0}).run()
    with pytest.raises(TocsrError, match="must return a number"):
        make_loop(cost=lambda c: "cheap").run()
    with pytest.raises(TocsrError, match="cost must be"):
        make_loop(cost=42)


# -- reproducibility and progress -----------------------------------------------------------------
@pytest.mark.parametrize("strategy", RESUMABLE)
def test_same_seed_same_trials(strategy):
    a = make_loop(strategy=strategy, seed=5, budget=8, batch_size=2).run().trials
    b = make_loop(strategy=strategy, seed=5, budget=8, batch_size=2).run().trials
    assert a[COMPARED].equals(b[COMPARED])


@needs_ecbo
def test_same_seed_same_trials_ecbo():
    kw = dict(strategy="ecbo", seed=5, budget=6, batch_size=2, strategy_options=SMALL_ECBO)
    assert make_loop(**kw).run().trials[COMPARED].equals(make_loop(**kw).run().trials[COMPARED])


def test_another_seed_other_trials():
    a = make_loop(seed=1, budget=10).run().trials
    b = make_loop(seed=2, budget=10).run().trials
    assert a["config"].tolist() != b["config"].tolist()


def test_progress_bar_shows_the_best_feasible_cost(capsys):
    make_loop(progress=True, budget=5).run()
    err = capsys.readouterr().err
    assert "best feasible gmacs @eps=0.05" in err and "5/5" in err


# -- output directory and resume ------------------------------------------------------------------
def test_out_dir_gets_the_journal_and_outputs(tmp_path):
    make_loop(out_dir=str(tmp_path), save_outputs=True, budget=4).run()
    names = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert names == {JOURNAL_NAME, "trials.csv", "pareto.csv", "best.json", "plots/pareto.png", "plots/convergence.png"}


def test_an_existing_search_is_not_overwritten(tmp_path):
    make_loop(out_dir=str(tmp_path), budget=3).run()
    before = (tmp_path / JOURNAL_NAME).read_bytes()
    with pytest.raises(TocsrError, match="resume"):
        make_loop(out_dir=str(tmp_path), budget=3).run()
    assert (tmp_path / JOURNAL_NAME).read_bytes() == before


def test_resume_with_other_arguments_is_refused(tmp_path):
    make_loop(out_dir=str(tmp_path), budget=3).run()
    with pytest.raises(TocsrError, match="different search.*seed"):
        make_loop(out_dir=str(tmp_path), budget=3, seed=9, resume=True).run()
    with pytest.raises(TocsrError, match="resume needs out_dir"):
        make_loop(resume=True)


def test_resume_extends_the_budget(tmp_path):
    ref = make_loop(budget=9, batch_size=2).run().trials
    make_loop(out_dir=str(tmp_path), budget=4, batch_size=2).run()
    got = make_loop(out_dir=str(tmp_path), budget=9, batch_size=2, resume=True).run().trials
    assert got[COMPARED].equals(ref[COMPARED])


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize(
    "strategy,q,k",
    [(s, q, k) for s in RESUMABLE for q in (1, 3) for k in (0, 4, 9)] + [pytest.param("ecbo", 3, 4, marks=needs_ecbo)],
)
def test_crash_in_quality_then_resume_equals_uninterrupted(tmp_path, strategy, q, k):
    kw = dict(strategy=strategy, budget=10, batch_size=q, seed=11)
    if strategy == "ecbo":
        kw["strategy_options"] = SMALL_ECBO
    ref = make_loop(**kw).run().trials
    calls = []

    def failing(cfg):
        if len(calls) == k:
            raise Boom(f"evaluation {k} failed")
        calls.append(cfg)
        return toy_quality(cfg)

    with pytest.raises(Boom):
        make_loop(out_dir=str(tmp_path), quality=failing, **kw).run()
    contents = read_journal(str(tmp_path / JOURNAL_NAME))
    assert len(contents.finished_trials()) == k
    unfinished = [t for t in contents.trials.values() if t.finished is None]
    assert unfinished and unfinished[0].trial == k  # trial k is started, not finished

    evaluated = []
    got = make_loop(out_dir=str(tmp_path), resume=True,
                    quality=lambda c: evaluated.append(c) or toy_quality(c), **kw).run().trials
    assert got[COMPARED].equals(ref[COMPARED])
    assert evaluated[0] == unfinished[0].config  # the started trial is evaluated again, same id and config
    assert len(evaluated) == 10 - k  # nothing finished is evaluated twice
    final = read_journal(str(tmp_path / JOURNAL_NAME))
    assert sorted(final.trials) == list(range(10)) and all(t.finished for t in final.trials.values())


def test_kill_9_mid_search_then_resume_equals_uninterrupted(tmp_path):
    """A real subprocess killed with SIGKILL while evaluating; resume loses and repeats nothing."""
    kwargs = {"epsilon": [0.05, 0.1], "strategy": "random", "budget": 12, "seed": 4, "batch_size": 2}
    ref = make_loop(epsilons=kwargs["epsilon"], strategy="random", budget=12, seed=4, batch_size=2).run().trials
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "search_toys.py"), str(out), json.dumps({**kwargs, "delay": 0.2})],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    journal = out / JOURNAL_NAME
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b'"type":"finished"') >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = read_journal(str(journal))
    n_done = len(before.finished_trials())
    assert 3 <= n_done < 12
    assert not (out / "trials.csv").exists()  # it really died mid-search

    evaluated = []
    got = make_loop(out_dir=str(out), resume=True, epsilons=kwargs["epsilon"], strategy="random", budget=12, seed=4,
                    batch_size=2, quality=lambda c: evaluated.append(c) or toy_quality(c)).run().trials
    assert got[COMPARED].equals(ref[COMPARED])
    assert len(evaluated) == 12 - n_done
    assert got["hash"].is_unique and got["trial"].tolist() == list(range(12))
