"""Micro-benchmarks (pytest-benchmark): ``make bench``, or
``.venv/bin/python -m pytest tests/benchmarks --benchmark-only --benchmark-enable``.

Each benchmark also checks what it times (a lookup equals the trace, a proposal is admissible...),
so a broken figure fails instead of being reported. No timed asserts: the targets of issue 7
(one evaluation <= 1.2x a teacher forward, one ecbo proposal <= 2 s at 200 observations, the
sd21-vae16 cost table in <= 30 s) are read off the report, see docs/BENCHMARKS.md.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

from tocsr_nas.stages.costs import cost_table_for
from tocsr_nas.evaluators import count_complexity, make_quality
from tocsr_nas.stages.space import CandidateCache, assemble, build_space
from tocsr_nas.evaluators.quality import SupernetQuality
from tocsr_nas.strategies import Observation, make_strategy
from tocsr_nas.surrogates.supernet import SuperNet
from tocsr_nas.teacher import build_teacher
from tocsr_nas.stages.validation import build_validation_set

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from landscapes import ChainLandscape, make_problem  # noqa: E402


# -- complexity -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_costs(trained_teacher, tiny_library):
    candidates = CandidateCache()
    space = tiny_library.space
    table = cost_table_for(trained_teacher, space, 64, cache=False, candidates=candidates)
    config = space.sample(random.Random(3))
    return trained_teacher, space, table, config, candidates


def test_cost_table_lookup(benchmark, tiny_costs):
    teacher, space, table, config, _ = tiny_costs
    result = benchmark(table.cost, config)
    assert result.macs < table.teacher().macs


def test_whole_model_fvcore_trace(benchmark, tiny_costs):
    teacher, space, table, config, candidates = tiny_costs
    # fresh candidates (a CandidateCache would put ONE module into blocks with the same signature,
    # and model.parameters() would count it once)
    model = assemble(teacher.unet, space, config)
    args, kwargs = teacher.unet_example_inputs(batch=1, resolution=64)
    result = benchmark.pedantic(count_complexity, args=(model, args, kwargs), rounds=3, iterations=1)
    assert result == table.cost(config)  # the lookup is exact


# -- supernet and quality -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def supernet_quality(trained_teacher, tiny_library):
    space = tiny_library.space
    validation = build_validation_set(trained_teacher, samples=32, resolution=tiny_library.resolution, seed=0)
    supernet = SuperNet(trained_teacher.unet, tiny_library, space)
    quality = SupernetQuality(supernet, make_quality("denoising", validation))
    configs = [space.sample(random.Random(i)) for i in range(2)]
    yield trained_teacher, space, supernet, quality, validation, configs
    supernet.set_configuration(space.default_config())


def test_supernet_configuration_switch(benchmark, supernet_quality):
    _, space, supernet, _, _, configs = supernet_quality
    state = {"i": 0}

    def switch():
        state["i"] ^= 1
        supernet.set_configuration(configs[state["i"]])

    benchmark(switch)
    supernet.set_configuration(space.default_config())


def test_quality_evaluation(benchmark, supernet_quality):
    """One SupernetQuality evaluation (route + every validation chunk) of a sampled configuration."""
    _, _, _, quality, _, configs = supernet_quality
    value = benchmark.pedantic(quality, args=(configs[0],), rounds=5, iterations=1, warmup_rounds=1)
    assert value > 0


def test_teacher_forward_same_batch(benchmark, supernet_quality):
    """The teacher UNet alone on the same validation chunks (the floor of an evaluation)."""
    teacher, _, _, _, validation, _ = supernet_quality

    @torch.no_grad()
    def forward():
        out = []
        for chunk in validation.chunks():
            out.append(teacher.unet(validation.x_t[chunk], validation.timesteps[chunk],
                                    encoder_hidden_states=validation.context_for(chunk), return_dict=False)[0])
        return torch.cat(out)  # (N, C, h, w)

    eps = benchmark.pedantic(forward, rounds=5, iterations=1, warmup_rounds=1)
    assert eps.shape == validation.x0.shape


# -- strategies -----------------------------------------------------------------------------------
@pytest.mark.parametrize("observations", [50, 200])
def test_ecbo_proposal(benchmark, observations):
    """One ``ask(1)`` of ecbo after ``observations`` tells, on a 24-block x 4-option chain landscape."""
    import numpy as np

    rng = np.random.default_rng(0)
    costs = [np.concatenate([[1.0], np.sort(rng.uniform(0.0, 0.9, 3))[::-1]]) * rng.lognormal() for _ in range(24)]
    from tocsr_nas.searchspace import SearchSpace

    space = SearchSpace.from_choices({f"b{i:02d}": ["teacher", "c1", "c2", "c3"] for i in range(24)})
    land = ChainLandscape.from_costs("bench", space, costs, seed=0)
    history = [space.default_config()] + [space.sample(random.Random(i)) for i in range(observations - 1)]
    told = [Observation(c, land.quality(c), land.cost(c)) for c in history]

    def setup():
        strategy = make_strategy("ecbo", make_problem(land), seed=0)
        strategy.tell(told)
        return (strategy,), {}

    proposals = benchmark.pedantic(lambda s: s.ask(1), setup=setup, rounds=3, iterations=1)
    assert len(proposals) == 1 and proposals[0] not in history


def test_ecbo_proposal_with_far_failures(benchmark):
    """One ``ask(1)`` of ecbo after 200 tells on range100 (failed cells at ~80 epsilon): the far-failure
    model's label GP is fitted beside the quality model (``far_model``, on by default)."""
    from stress_landscapes import stress_landscape

    land = stress_landscape("range100")
    space = land.space
    history = list(dict.fromkeys([space.default_config()] + [space.sample(random.Random(i)) for i in range(260)]))[:200]
    told = [Observation(c, land.quality(c), land.cost(c)) for c in history]

    def setup():
        strategy = make_strategy("ecbo", make_problem(land), seed=0)
        strategy.tell(told)
        return (strategy,), {}

    strategies = []
    proposals = benchmark.pedantic(lambda s: strategies.append(s) or s.ask(1), setup=setup, rounds=3, iterations=1)
    assert len(proposals) == 1 and proposals[0] not in history
    assert strategies[-1]._far is not None  # the split happened: it is what this benchmark times


# -- sd21-vae16 cost table ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sd21():
    teacher = build_teacher("sd21-vae16")
    candidates = CandidateCache()
    space = build_space(teacher.unet, None, candidates=candidates)
    return teacher, space, candidates


def test_sd21_cost_table_build(benchmark, sd21):
    """A cold cost table of the sd21-vae16 space (44 blocks) at 256 px (512 px: see docs/BENCHMARKS.md)."""
    teacher, space, candidates = sd21
    table = benchmark.pedantic(cost_table_for, args=(teacher, space, 256),
                               kwargs={"cache": False, "candidates": candidates}, rounds=1, iterations=1)
    assert set(table.paths) == set(space.paths)
