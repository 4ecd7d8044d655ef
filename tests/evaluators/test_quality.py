"""Quality evaluators on micro denoisers: exact formulas, determinism, teacher = 0, registry, disk."""

from __future__ import annotations

import copy
import dataclasses
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators import (
    DenoisingLossIncrease,
    QualityEvaluator,
    TeacherAgreement,
    ValidationSet,
    ValidationSetError,
    available_qualities,
    get_quality,
    make_quality,
    register_quality,
)

N, C, H = 10, 4, 6  # samples, channels, side


class MicroDenoiser(nn.Module):
    """conv -> conv -> conv, timestep-scaled; ``blocks[i]`` can be swapped like a UNet block."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList([nn.Conv2d(C, C, 3, padding=1) for _ in range(3)])
        self.ctx = nn.Linear(5, C)

    def forward(self, x, t, context):  # (b, C, h, w), (b,), (b, L, 5)
        h = x
        for block in self.blocks:
            h = h + torch.tanh(block(h))
        bias = self.ctx(context.mean(1))[:, :, None, None]  # (b, C, 1, 1)
        return (h + bias) * (1.0 + t[:, None, None, None].float() / 1000.0)


def as_forward(module):
    return lambda x, t, c: module(x, t, c)


@pytest.fixture(scope="module")
def teacher() -> MicroDenoiser:
    return MicroDenoiser().eval()


@pytest.fixture(scope="module")
def vset(teacher) -> ValidationSet:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(N, C, H, H, generator=gen)  # (N, C, h, w)
    eps = torch.randn(N, C, H, H, generator=gen)
    t = torch.linspace(20, 980, N).round().long()  # (N,)
    abar = torch.linspace(0.9, 0.1, N)[:, None, None, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    context = torch.randn(1, 3, 5, generator=gen)  # (1, L, D)
    return ValidationSet.build(
        x0=x0, noise=eps, x_t=x_t, timesteps=t, context=context, forward=as_forward(teacher), chunk_size=4
    )


@pytest.mark.parametrize("name", ["denoising", "agreement"])
def test_teacher_scores_exactly_zero_and_is_deterministic(vset, teacher, name):
    evaluator = make_quality(name, vset)
    first = evaluator(as_forward(teacher))
    assert first == 0.0
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        other.blocks[1].weight.mul_(0.5)
    a, b = evaluator(as_forward(other)), evaluator(as_forward(other))
    assert a == b and a != 0.0  # bit for bit


def test_denoising_formula(vset):
    # a network returning c * eps_T + (1 - c) * eps has error c * (eps_T - eps): L = c^2 L_T
    index = {int(t): i for i, t in enumerate(vset.timesteps)}  # the timesteps are distinct: they name samples

    def forward_for(c):
        def forward(x, t, ctx):
            rows = torch.tensor([index[int(v)] for v in t])
            return c * vset.teacher_eps[rows] + (1 - c) * vset.noise[rows]
        return forward

    for c in (0.0, 0.5, 1.0, 1.5):
        assert DenoisingLossIncrease(vset)(forward_for(c)) == pytest.approx(c * c - 1.0, abs=1e-6)
    # the perfect denoiser is 100% better than the teacher
    assert DenoisingLossIncrease(vset)(forward_for(0.0)) == pytest.approx(-1.0)


def test_agreement_formula_and_growth(vset, teacher):
    # eps_hat = (1 + a) eps_T  ->  q = a^2 |eps_T|^2 / |eps_T - eps|^2, growing with |a|
    unit = float((vset.teacher_eps.double() ** 2).sum()) / vset.teacher_sse
    values = []
    for a in (0.01, 0.1, 0.3):
        q = TeacherAgreement(vset)(lambda x, t, c, a=a: (1 + a) * teacher(x, t, c))
        assert q == pytest.approx(a * a * unit, rel=1e-4)
        values.append(q)
    assert values == sorted(values) and values[0] > 0


def test_agreement_grows_when_blocks_are_swapped(vset, teacher):
    evaluator = TeacherAgreement(vset)
    scores = []
    swapped = copy.deepcopy(teacher)
    for i in range(3):
        swapped.blocks[i] = nn.Conv2d(C, C, 1)  # a cheaper "surrogate", untrained
        with torch.no_grad():
            swapped.blocks[i].weight.zero_()
            swapped.blocks[i].bias.zero_()
        scores.append(evaluator(as_forward(swapped)))
    assert 0 < scores[0] < scores[1] < scores[2]


def test_chunking_changes_nothing_but_rounding(vset, teacher):
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        other.blocks[0].bias.add_(0.1)
    whole = dataclasses.replace(vset, chunk_size=N)
    q4 = DenoisingLossIncrease(vset)(as_forward(other))
    q_all = DenoisingLossIncrease(whole)(as_forward(other))
    assert q4 == pytest.approx(q_all, rel=1e-5)


def test_forward_with_wrong_shape_or_tuple_output(vset, teacher):
    with pytest.raises(ValidationSetError, match="shape"):
        TeacherAgreement(vset)(lambda x, t, c: x[:, :2])
    # diffusers-style (sample,) tuples are accepted
    assert TeacherAgreement(vset)(lambda x, t, c: (teacher(x, t, c),)) == 0.0


def test_non_finite_predictions_score_inf(vset):
    assert DenoisingLossIncrease(vset)(lambda x, t, c: torch.full_like(x, math.nan)) == math.inf


def test_inconsistent_sets_are_refused(vset):
    with pytest.raises(ValidationSetError, match="noise"):
        dataclasses.replace(vset, noise=vset.noise[:3])
    with pytest.raises(ValidationSetError, match="context"):
        dataclasses.replace(vset, context=vset.context[0])
    with pytest.raises(ValidationSetError, match="squared error"):
        dataclasses.replace(vset, teacher_eps=vset.noise)  # a perfect teacher: no unit


def test_save_load_roundtrip(vset, teacher, tmp_path):
    path = vset.save(tmp_path / "val.safetensors")
    loaded = ValidationSet.load(path)
    for name in ("x0", "timesteps", "noise", "x_t", "context", "teacher_eps"):
        assert torch.equal(getattr(loaded, name), getattr(vset, name))
    assert loaded.chunk_size == vset.chunk_size
    assert TeacherAgreement(loaded)(as_forward(teacher)) == 0.0
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValidationSetError, match="cannot read"):
        ValidationSet.load(tmp_path / "bad.safetensors")


def test_registry():
    assert {"denoising", "agreement"} <= set(available_qualities())
    assert get_quality("agreement") is TeacherAgreement
    with pytest.raises(TocsrError, match="valid: agreement, denoising"):
        get_quality("psnr-typo")
    with pytest.raises(ValueError, match="already registered"):
        register_quality("denoising")(DenoisingLossIncrease)


def test_a_new_quality_is_one_registered_class(vset, teacher):
    @register_quality("test-relative-l1")
    class RelativeSSE(QualityEvaluator):
        needs = ("sse_target", "sse_teacher")

        def score(self, sums):
            return (sums["sse_target"] + sums["sse_teacher"]) / self.validation.teacher_sse - 1.0

    try:
        assert make_quality("test-relative-l1", vset)(as_forward(teacher)) == 0.0
    finally:
        from tocsr_nas.evaluators import quality

        quality._REGISTRY.pop("test-relative-l1")


def test_evaluators_import_neither_surrogates_nor_nas():
    code = (
        "import sys, tocsr_nas.evaluators.quality; "
        "bad = [m for m in sys.modules if m.startswith(('tocsr_nas.surrogates', 'tocsr_nas.teacher', "
        "'tocsr_nas.search.loop', 'tocsr_nas.strategies'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_teacher_is_exactly_zero_over_many_chunks():
    # the teacher's own error is summed in the evaluator's chunk order: no last-bit rounding residue
    gen = torch.Generator().manual_seed(3)
    n = 96
    eps, eps_t = torch.randn(n, 16, 8, 8, generator=gen), torch.randn(n, 16, 8, 8, generator=gen)
    x_t = torch.randn(n, 16, 8, 8, generator=gen)
    t = torch.arange(n)
    vs = ValidationSet(x0=x_t, timesteps=t, noise=eps, x_t=x_t, context=torch.zeros(1, 1, 1), teacher_eps=eps_t,
                       chunk_size=5)
    assert DenoisingLossIncrease(vs)(lambda x, tt, c: eps_t[tt]) == 0.0
