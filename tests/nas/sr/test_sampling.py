"""DDIM and one-step sampling, tiling and the upscaling pipeline."""

from __future__ import annotations

import pytest
import torch

from tocsr_nas.sr.model import Backbone, SRModel
from tocsr_nas.sr.sampling import ddim_sample, denoise, onestep_sample, predict_x0
from tocsr_nas.sr.testing import micro_teacher
from tocsr_nas.sr.tiling import feather, pad_to_multiple, tile_origins, tiled_map
from tocsr_nas.sr.upscale import super_resolve


@pytest.fixture(scope="module")
def model():
    m = SRModel.from_backbone(Backbone.from_teacher(micro_teacher()), sampler_steps=2, tile=8)
    with torch.no_grad():
        m.net.backbone.conv_in.weight[:, 16:].normal_(std=0.1)  # make the condition matter
    return m


def test_ddim_is_deterministic_given_the_seed(model):
    z_lr = torch.randn(2, 16, 8, 8)
    a = ddim_sample(model, z_lr, steps=3, seed=1)
    assert torch.equal(a, ddim_sample(model, z_lr, steps=3, seed=1))
    assert not torch.allclose(a, ddim_sample(model, z_lr, steps=3, seed=2))
    assert not torch.allclose(a, ddim_sample(model, torch.randn(2, 16, 8, 8), steps=3, seed=1))


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_predict_x0_inverts_the_forward_process(model, kind):
    sched = type(model.scheduler).from_config(model.scheduler.config, prediction_type=kind)
    m = SRModel(net=model.net, vae=model.vae, scheduler=sched, config=model.config)
    x0, eps = torch.randn(3, 16, 4, 4), torch.randn(3, 16, 4, 4)
    t = torch.tensor([0, 400, 999])
    x_t = sched.add_noise(x0, eps, t)
    out = eps if kind == "epsilon" else sched.get_velocity(x0, eps, t)
    torch.testing.assert_close(predict_x0(m, out, x_t, t), x0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("start", ["lr", "noise"])
def test_onestep_output_shape(model, start):
    z_lr = torch.randn(2, 16, 12, 8)
    out = onestep_sample(model, z_lr, timestep=300, start=start)
    assert out.shape == z_lr.shape and torch.isfinite(out).all()


def test_tiled_denoising_blends_tiles(model):
    x, c = torch.randn(1, 16, 16, 12), torch.randn(1, 16, 16, 12)
    with torch.no_grad():
        whole = denoise(model, x, torch.tensor(500), c, tile=None)
        tiled = denoise(model, x, torch.tensor(500), c, tile=8)
    assert tiled.shape == whole.shape
    assert not torch.allclose(tiled, whole)  # tiles see less context: close, not equal
    assert (tiled - whole).abs().mean() < whole.abs().mean()


def test_tiled_map_is_exact_for_pointwise_maps_and_scales():
    x = torch.randn(2, 3, 40, 28)
    enc = tiled_map(lambda t: t[:, :, ::4, ::4] * 2, x, tile=4, overlap=1, in_scale=4)
    torch.testing.assert_close(enc, x[:, :, ::4, ::4] * 2)
    dec = tiled_map(lambda t: t.repeat_interleave(4, -1).repeat_interleave(4, -2), enc, tile=3, overlap=1, out_scale=4)
    torch.testing.assert_close(dec, enc.repeat_interleave(4, -1).repeat_interleave(4, -2))


def test_tiles_cover_everything():
    for length in (1, 7, 8, 9, 33):
        origins = tile_origins(length, 8, 2)
        covered = set()
        for o in origins:
            covered.update(range(o, min(o + 8, length)))
        assert covered == set(range(length))
    assert (feather(8, 3) > 0).all()


def test_pad_to_multiple_small_side_uses_replication():
    y, hw = pad_to_multiple(torch.randn(1, 3, 5, 3), 16)
    assert y.shape[-2:] == (16, 16) and hw == (5, 3)


@pytest.mark.parametrize("kind", ["multistep", "onestep"])
def test_upscale_any_size(model, kind):
    m = SRModel(net=model.net, vae=model.vae, scheduler=model.scheduler, config={**model.config, "kind": kind})
    m.config["onestep"] = {"timestep": 200, "start": "lr"}
    out = super_resolve(m, torch.rand(1, 3, 77, 123) * 2 - 1, vae_tile=16)
    assert out.shape == (1, 3, 308, 492)
    assert out.min() >= -1 and out.max() <= 1


def test_strength_starts_from_the_noised_lr_latent(model):
    z_lr = torch.randn(1, 16, 8, 8)
    full = ddim_sample(model, z_lr, steps=2, seed=0, strength=1.0)
    half = ddim_sample(model, z_lr, steps=2, seed=0, strength=0.5)
    assert not torch.allclose(full, half)
    assert torch.equal(half, ddim_sample(model, z_lr, steps=2, seed=0, strength=0.5))
    from tocsr_nas.sr.sampling import make_ddim

    _, ts = make_ddim(model, 2, 0.5)
    assert ts.tolist() == [499, 249]
