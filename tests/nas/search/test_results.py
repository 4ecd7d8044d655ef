"""SearchResult: best per epsilon from the stored flags, the Pareto front, the output folder, plots."""

from __future__ import annotations

import json
import math
import random
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from search_toys import toy_cost, toy_quality, toy_space

from tocsr_nas.errors import TocsrError
from tocsr_nas.search.journal import JOURNAL_NAME
from tocsr_nas.search.loop import SearchLoop
from tocsr_nas.search.plots import convergence_data, pareto_data, plot_convergence, plot_pareto
from tocsr_nas.search.results import NoFeasibleTrialWarning, SearchResult, load_search

EPS = (0.05, 0.1)


def frame(points, eps=EPS, flags=None):
    """A trials table from (gmacs, quality) pairs; flags default to quality <= eps."""
    rows = []
    for i, (g, q) in enumerate(points):
        row = {"trial": i, "strategy": "test", "config": json.dumps({"a": str(i)}, separators=(",", ":")),
               "hash": f"{i:012d}", "gmacs": g, "params": 10 * g, "quality": q}
        for e in eps:
            row[f"feasible@{e!r}"] = bool(q <= e) if flags is None else flags[i]
        row["feasible"] = row[f"feasible@{eps[0]!r}"]
        row["seconds"] = 0.5
        rows.append(row)
    return pd.DataFrame(rows)


def result_of(points, **kw):
    return SearchResult(frame(points, **{k: v for k, v in kw.items() if k == "flags"}), objective="gmacs",
                        epsilons=EPS, strategy="test", seed=0,
                        teacher={"configuration": {"a": "0"}, "gmacs": 4.0, "params": 40.0})


def dominates(a, b):
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def test_pareto_front_by_hand():
    pts = [(4.0, 0.0), (3.0, 0.02), (3.0, 0.01), (2.0, 0.2), (2.5, 0.2), (1.0, 0.5), (1.0, 0.5), (5.0, 0.0),
           (0.5, math.nan)]
    front = result_of(pts).pareto
    # (3, .02) loses to (3, .01); (2.5, .2) to (2, .2); (5, 0) to (4, 0); NaN is left out; exact ties stay
    assert front["trial"].tolist() == [5, 6, 3, 2, 0]
    assert front["gmacs"].is_monotonic_increasing


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_properties_and_bests_lie_on_it(seed):
    rng = random.Random(seed)
    pts = [(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 4.0]), rng.choice([0.0, 0.02, 0.05, 0.08, 0.1, 0.2])) for _ in range(40)]
    result = result_of(pts)
    front = set(result.pareto["trial"])
    for i, p in enumerate(pts):
        dominated = any(dominates(q, p) for q in pts)
        assert (i in front) == (not dominated)
    for e in EPS:
        best = result.best_at(e)
        assert best is not None and best.trial in front  # the epsilon sweep reads the front
        assert best.gmacs == min(g for g, q in pts if q <= e)


def test_best_reads_the_stored_flags_not_the_quality():
    pts = [(4.0, 0.0), (1.0, 0.3), (2.0, 0.01)]
    flags = [True, True, False]  # as if the loop had decided so: the table is the truth downstream
    result = SearchResult(frame(pts, flags=flags), objective="gmacs", epsilons=EPS, strategy="t", seed=0)
    assert result.best.trial == 1


def test_best_ties_go_to_lower_quality():
    result = result_of([(2.0, 0.04), (2.0, 0.01), (3.0, 0.0)])
    assert result.best.trial == 1


def test_nothing_feasible_gives_none_with_a_helpful_warning():
    result = result_of([(1.0, 0.3), (2.0, 0.2)])
    with pytest.warns(NoFeasibleTrialWarning, match=r"best quality among 2 trials is 0\.2 \(trial 1\).*raise epsilon"):
        assert result.best is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result.bests == {0.05: None, 0.1: None}
    summary = result.to_summary()
    assert summary["found"] is False and summary["configuration"] is None


def test_best_at_an_epsilon_outside_the_sweep_reads_the_trials_quality():
    result = result_of([(4.0, 0.0), (2.0, 0.04), (1.5, 0.07), (1.0, 0.09), (0.5, 0.3)])
    best = result.best_at(0.08)
    assert best.trial == 2 and best.from_trials and best.feasible[0.08] is True
    assert result.best_at(0.2).trial == 3 and result.best_at(0.5).trial == 4
    assert result.best_at(0.0).trial == 0  # only the teacher meets 0.0
    target = result.best_at(0.1)  # an epsilon of the sweep: the stored flags, not marked
    assert target.trial == 3 and not target.from_trials and set(target.feasible) == {0.05, 0.1}


def test_best_at_an_epsilon_outside_the_sweep_skips_failed_trials_and_warns_when_none():
    result = result_of([(4.0, 0.0), (1.0, math.inf), (2.0, math.nan)])
    assert result.best_at(1e9).trial == 0
    with pytest.warns(NoFeasibleTrialWarning, match=r"no trial is feasible at epsilon=-0\.1"):
        assert result.best_at(-0.1) is None
    with pytest.raises(TocsrError, match="epsilon must be finite"):
        result.best_at(math.inf)
    with pytest.raises(TocsrError, match="epsilon must be a number"):
        result.best_at("loose")


def test_summary_has_teacher_figures_and_reductions():
    result = result_of([(4.0, 0.0), (2.0, 0.04), (1.0, 0.09)])
    s = result.to_summary()
    assert s["trial"] == 1 and s["epsilon"] == 0.05 and s["configuration"] == {"a": "1"}
    assert s["teacher"] == {"configuration": {"a": "0"}, "gmacs": 4.0, "params": 40.0, "quality": 0.0}
    assert s["reduction"] == {"gmacs": 2.0, "params": 2.0}
    assert s["per_epsilon"]["0.1"]["trial"] == 2 and s["per_epsilon"]["0.1"]["reduction"]["gmacs"] == 4.0


def _search(tmp_path, **kw):
    args = dict(quality=toy_quality, cost=toy_cost, epsilons=list(EPS), strategy="random", budget=12, seed=2,
                progress=False, out_dir=str(tmp_path))
    args.update(kw)
    return SearchLoop(toy_space(), **args).run()


def test_save_and_load_round_trip(tmp_path):
    result = _search(tmp_path)
    for name in ("trials.csv", "pareto.csv", "best.json"):
        assert (tmp_path / name).stat().st_size > 0
    for name in ("pareto.png", "convergence.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.tmp*"))
    loaded = load_search(tmp_path)
    pd.testing.assert_frame_equal(loaded.trials, result.trials)
    assert loaded.epsilons == EPS and loaded.objective == "gmacs" and loaded.strategy == "random"
    assert loaded.best == result.best
    assert json.loads((tmp_path / "best.json").read_text()) == result.to_summary()
    header = list(pd.read_csv(tmp_path / "trials.csv", nrows=0).columns)
    assert header == ["trial", "strategy", "config", "hash", "gmacs", "params", "quality", "feasible",
                      "feasible@0.05", "feasible@0.1", "seconds"]
    pareto = pd.read_csv(tmp_path / "pareto.csv", dtype={"hash": str})
    assert pareto["hash"].tolist() == result.pareto["hash"].tolist()


def test_digit_only_hashes_survive_the_csv(tmp_path):
    result = result_of([(4.0, 0.0), (2.0, 0.01)])
    result.save(tmp_path)
    assert load_search(tmp_path).trials["hash"].tolist() == ["000000000000", "000000000001"]


def test_load_from_the_journal_alone(tmp_path):
    result = _search(tmp_path)
    for name in ("trials.csv", "best.json"):
        (tmp_path / name).unlink()
    loaded = load_search(tmp_path)
    cols = ["trial", "config", "hash", "gmacs", "params", "quality", "feasible", "feasible@0.05", "feasible@0.1"]
    assert loaded.trials[cols].equals(result.trials[cols])
    assert loaded.teacher["gmacs"] == 4.0 and loaded.teacher["quality"] == 0.0


def test_load_from_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(TocsrError, match=f"no search output.*{JOURNAL_NAME}"):
        load_search(tmp_path)


def test_convergence_data_is_the_running_best_feasible():
    result = result_of([(4.0, 0.0), (1.0, 0.2), (3.0, 0.04), (2.0, 0.08), (2.5, 0.01)])
    data = result.convergence_plot_data()
    assert data.evaluations == [1, 2, 3, 4, 5]
    assert data.best[0.05] == [4.0, 4.0, 3.0, 3.0, 2.5]
    assert data.best[0.1] == [4.0, 4.0, 3.0, 2.0, 2.0]
    empty = convergence_data(frame([(1.0, 0.5)]), objective="gmacs", epsilons=EPS)
    assert all(math.isnan(v) for v in empty.best[0.05])


def test_pareto_data_marks_feasibility_from_the_flags():
    pts = [(4.0, 0.0), (1.0, 0.2), (3.0, 0.04), (2.0, math.nan)]
    data = pareto_data(frame(pts), objective="gmacs", epsilons=EPS)
    assert data.x == [4.0, 1.0, 3.0] and data.feasible == [True, False, True]
    assert data.front_x == [1.0, 3.0, 4.0] and data.best == {0.05: (3.0, 0.04), 0.1: (3.0, 0.04)}


def test_plots_draw_on_given_axes_without_global_changes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rc_before = dict(matplotlib.rcParams)
    result = result_of([(4.0, 0.0), (1.0, 0.2), (3.0, 0.04)])
    fig = Figure()
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    assert result.plot_pareto(ax1) is ax1 and result.plot_convergence(ax2) is ax2
    labels = ax1.get_legend_handles_labels()[1]
    assert "Pareto front" in labels and any(lab.startswith("infeasible") for lab in labels)
    assert len(ax2.get_lines()) >= len(EPS)
    ax = plot_pareto(result.pareto_plot_data())
    assert ax.figure is not fig
    assert plot_convergence(result.convergence_plot_data()).get_xlabel() == "evaluations"
    assert dict(matplotlib.rcParams) == rc_before
    assert matplotlib.get_backend() == matplotlib.rcParams["backend"]


def test_trials_column_types():
    result = result_of([(4.0, 0.0), (2.0, 0.3)])
    t = result.trials
    assert t["feasible"].dtype == bool and np.issubdtype(t["gmacs"].dtype, np.floating)
