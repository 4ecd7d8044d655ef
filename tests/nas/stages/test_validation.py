"""The search's validation set (held-out photos, fixed t and noise) and SupernetQuality on the tiny UNet."""

from __future__ import annotations

import copy

import pytest
import torch

from tocsr_nas.teacher.data import DEFAULT_VAL_PHOTOS
from tocsr_nas.errors import TocsrError
from tocsr_nas.evaluators import DenoisingLossIncrease, TeacherAgreement, ValidationSet
from tocsr_nas.evaluators.quality import SupernetQuality
from tocsr_nas.surrogates import build_surrogate
from tocsr_nas.stages.validation import build_validation_set, unet_forward

SAMPLES = 6


@pytest.fixture(scope="module")
def vset(tiny_teacher) -> ValidationSet:
    return build_validation_set(tiny_teacher, samples=SAMPLES, chunk_size=4)


def test_contents(vset, tiny_teacher):
    assert vset.x0.shape == (SAMPLES, 16, 16, 16) and vset.context.shape == (1, 4, 64)
    # timesteps spread linearly over [20, 980], permuted
    assert sorted(vset.timesteps.tolist()) == [20, 212, 404, 596, 788, 980]
    assert vset.timesteps.tolist() != sorted(vset.timesteps.tolist())
    # x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    abar = tiny_teacher.scheduler.alphas_cumprod[vset.timesteps][:, None, None, None]
    torch.testing.assert_close(vset.x_t, abar.sqrt() * vset.x0 + (1 - abar).sqrt() * vset.noise)
    assert vset.meta["photos"] == ",".join(DEFAULT_VAL_PHOTOS)  # held-out photos only
    assert vset.meta["teacher_fingerprint"] == tiny_teacher.fingerprint()


def test_deterministic_and_seeded(vset, tiny_teacher):
    again = build_validation_set(tiny_teacher, samples=SAMPLES, chunk_size=4)
    for name in ("x0", "timesteps", "noise", "x_t", "teacher_eps"):
        assert torch.equal(getattr(again, name), getattr(vset, name)), name
    other = build_validation_set(tiny_teacher, samples=SAMPLES, chunk_size=4, seed=1)
    assert torch.equal(other.x0, vset.x0) and not torch.equal(other.noise, vset.noise)


def test_cache_is_reused_only_when_it_matches(vset, tiny_teacher, tmp_path):
    path = tmp_path / "val.safetensors"
    first = build_validation_set(tiny_teacher, samples=SAMPLES, chunk_size=4, cache=path)
    stamp = path.stat().st_mtime_ns
    second = build_validation_set(tiny_teacher, samples=SAMPLES, chunk_size=4, cache=path)
    assert path.stat().st_mtime_ns == stamp and torch.equal(second.teacher_eps, first.teacher_eps)
    third = build_validation_set(tiny_teacher, samples=SAMPLES, chunk_size=4, seed=3, cache=path)
    assert third.meta["seed"] == "3" and ValidationSet.load(path).meta["seed"] == "3"


def test_bad_settings(tiny_teacher):
    with pytest.raises(TocsrError, match="timestep range"):
        build_validation_set(tiny_teacher, samples=2, t_range=(500, 2000))
    with pytest.raises(TocsrError, match="positive integer"):
        build_validation_set(tiny_teacher, samples=0)
    with pytest.raises(TocsrError, match="multiple of the VAE factor"):
        build_validation_set(tiny_teacher, samples=2, resolution=30)


class _Routed(torch.nn.Module):
    """A UNet whose blocks are swapped by ``set_configuration`` (what a SuperNet does, minus the library)."""

    def __init__(self, unet, swaps):
        super().__init__()
        self.unet, self.swaps = unet, swaps
        self.originals = {p: unet.get_submodule(p) for p in swaps}

    def set_configuration(self, cfg):
        for path in self.swaps:
            self.unet.set_submodule(path, self.swaps[path] if cfg.get(path) == "skip" else self.originals[path])

    def forward(self, *args, **kwargs):
        return self.unet(*args, **kwargs)


def test_supernet_quality_is_zero_for_the_teacher_and_grows_with_swaps(vset, tiny_teacher):
    unet = copy.deepcopy(tiny_teacher.unet)
    paths = ["mid_block.attentions.0", "up_blocks.0.attentions.0", "down_blocks.1.attentions.0"]
    routed = _Routed(unet, {p: build_surrogate("skip", unet.get_submodule(p)) for p in paths})
    agreement = SupernetQuality(routed, TeacherAgreement(vset))
    denoising = SupernetQuality(routed, DenoisingLossIncrease(vset))
    assert agreement({}) == 0.0 and denoising({}) == 0.0
    scores = [agreement({p: "skip" for p in paths[:k]}) for k in (1, 2, 3)]
    assert 0 < scores[0] < scores[2]
    assert agreement({paths[0]: "skip"}) == scores[0]  # deterministic, bit for bit
    assert agreement({}) == 0.0  # routing back restores the teacher exactly
    # the evaluation runs on views of the set: the same forward as the unwrapped teacher
    assert TeacherAgreement(vset)(unet_forward(tiny_teacher.unet)) == 0.0
