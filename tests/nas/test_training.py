"""The checkpointed training loop: seeds, schedule, checkpoints, resume guards, phases, stop_after."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from tocsr_nas._io import read_json
from tocsr_nas.errors import TocsrError, UserInputError
from tocsr_nas.training import (
    Checkpoints,
    Run,
    Stopped,
    adamw,
    check_loop_settings,
    lr_at,
    open_run,
    run_steps,
    step_seed,
)


@dataclass(frozen=True)
class _Config:
    steps: int = 4
    warmup: int = 1
    batch_size: int = 2
    checkpoint_every: int = 2
    lr: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class _Phased:
    steps: int = 2
    first_steps: int = 2
    seed: int = 0


def _train(out, config=_Config(), *, resume=False, stop_after=None):
    """Fit a 3 -> 1 linear map to seeded data; returns its weights (or None when stopped)."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    state = open_run(out, config, resume=resume, resumable=("steps", "checkpoint_every"), done_file="done.json")

    def loss(step):
        x = torch.randn(config.batch_size, 3, generator=torch.Generator().manual_seed(step_seed(config.seed, "t", step)))
        return (net(x) - x.sum(1, keepdim=True)).pow(2).mean()

    try:
        run_steps(out=out, state=state, module=net, parameters=list(net.parameters()), step_fn=loss, steps=config.steps,
                  lr=config.lr, warmup=config.warmup, checkpoint_every=config.checkpoint_every, desc="t", progress=False,
                  stop_after=stop_after)  # fmt: skip
    except Stopped:
        return None
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_seeds_are_distinct_per_phase_and_step():
    seeds = {step_seed(0, p, k) for p in ("a", "b") for k in range(50)} | {step_seed(1, "a", 0)}
    assert len(seeds) == 101 and all(0 <= s < 2**63 for s in seeds)


def test_lr_warms_up_then_decays_to_a_tenth():
    assert [lr_at(k, 10, 1.0, warmup=4) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 10, 1.0, warmup=4) == pytest.approx(1.0)
    assert lr_at(10, 10, 1.0, warmup=4) == pytest.approx(0.1) == lr_at(99, 10, 1.0, warmup=4)


def test_check_loop_settings():
    check_loop_settings(_Config())
    with pytest.raises(UserInputError, match="--checkpoint-every must be >= 1, got 0"):
        check_loop_settings(_Config(checkpoint_every=0))
    with pytest.raises(UserInputError, match="--warmup must be >= 0"):
        check_loop_settings(_Config(warmup=-1))
    for lr in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(UserInputError, match=f"--lr must be a finite number > 0, got {lr}"):
            check_loop_settings(_Config(lr=lr))
    with pytest.raises(UserInputError, match="--steps must be >= 0, got -1"):
        check_loop_settings(_Config(steps=-1))


def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path):
    full = _train(tmp_path / "full")
    for stop_after in (1, 2, 3):
        out = tmp_path / f"cut{stop_after}"
        assert _train(out, stop_after=stop_after) is None
        # a checkpoint due at the stopping step is written first; resumable even before the first one
        assert read_json(Checkpoints(out).state_path)["step"] == 2 * (stop_after // 2)
        resumed = _train(out, resume=True)
        for key in full:
            torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=0)
        assert sorted(p.name for p in Checkpoints(out).dir.iterdir()) == ["state.json", "step-0000004"]  # older ones dropped


def test_resume_guards(tmp_path):
    out = tmp_path / "run"
    _train(out, stop_after=3)
    with pytest.raises(TocsrError, match="not empty"):
        _train(out)
    with pytest.raises(TocsrError, match=r"different settings: lr=0.5 \(checkpoint has 0.1\)"):
        _train(out, _Config(lr=0.5), resume=True)
    with pytest.raises(TocsrError, match="already past step 1"):
        _train(out, _Config(steps=1), resume=True)
    with pytest.raises(TocsrError, match="nothing to resume"):
        _train(tmp_path / "new", resume=True)
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "done.json").write_text("{}")
    with pytest.raises(TocsrError, match="already trained"):
        _train(tmp_path / "finished", resume=True)
    assert _train(out, _Config(steps=6, checkpoint_every=3), resume=True) is not None  # extend and re-pace


def test_phases_checkpoint_every_module_and_freeze_finished_phases(tmp_path):
    out, phases = tmp_path / "run", (("first", "first_steps"), ("second", "steps"))
    state = open_run(out, _Phased(), resume=False, resumable=("steps", "first_steps"), done_file="x", phases=phases)
    assert state["phase"] == "first" and state["seconds"] == state["cpu_seconds"] == {"first": 0.0, "second": 0.0}
    a, b = nn.Linear(2, 2), nn.Linear(2, 1)
    run = Run(out, state, {"a": a, "b": b}, progress=False)
    params = list(a.parameters())
    optimizer = adamw(params, 0.1)
    run.optimise(optimizer, params, lambda k: a(torch.ones(1, 2)).sum(), start=0, steps=2, lr=0.1, warmup=0,
                 checkpoint_every=1, desc="first", phase="first", final_checkpoint=False)  # fmt: skip
    assert read_json(Checkpoints(out).state_path)["checkpoint"] == "first-0000001"  # none after the last step
    run.checkpoint(0, phase="second")
    saved = read_json(Checkpoints(out).state_path)
    assert (saved["phase"], saved["checkpoint"]) == ("second", "second-0000000")
    assert sorted(p.name for p in (Checkpoints(out).dir / "second-0000000").iterdir()) == ["a.safetensors", "b.safetensors"]
    assert saved["seconds"]["first"] > 0 and set(saved["cpu_seconds"]) == {"first", "second"}

    trained = {k: v.clone() for k, v in a.state_dict().items()}
    fresh = nn.Linear(2, 2)
    opt = adamw(list(fresh.parameters()), 0.1)
    assert Run(out, saved, {"a": fresh, "b": nn.Linear(2, 1)}).restore(opt) == 0  # no optimizer state: left as is
    assert all(torch.equal(fresh.state_dict()[k], trained[k]) for k in trained) and not opt.state
    with pytest.raises(TocsrError, match="cannot change --first-steps when resuming .*the first phase is finished"):
        open_run(out, _Phased(first_steps=3), resume=True, resumable=("steps", "first_steps"), done_file="x", phases=phases)
    with pytest.raises(TocsrError, match="already past step 0 of the second phase") as err:
        saved["step"] = 1
        Checkpoints(out).write_state(saved)
        open_run(out, dataclasses.replace(_Phased(), steps=0), resume=True, resumable=("steps",), done_file="x",
                 phases=phases)  # fmt: skip
    assert "first_steps" not in str(err.value)
