"""Teacher presets, the null context, save/load and diffusers compatibility."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from tocsr_nas.errors import TocsrError
from tocsr_nas.teacher import (
    NullContext,
    Teacher,
    TeacherLoadError,
    available_presets,
    build_teacher,
    default_teacher_dir,
)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_presets_are_registered():
    assert available_presets() == ["sd21-vae16", "tiny"]


def test_tiny_preset_structure(tiny_teacher):
    t = tiny_teacher
    assert t.latent_channels == 16 and t.vae_scale_factor == 4 and t.latent_size(64) == 16
    assert 500_000 < _params(t.unet) < 5_000_000
    kinds = {type(m).__name__ for m in t.unet.modules()}
    assert {"ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D"} <= kinds
    assert t.context.embedding.shape == (1, 4, 64)
    assert t.scheduler.config.prediction_type == "epsilon"


def test_unet_example_inputs_run(tiny_teacher):
    args, kwargs = tiny_teacher.unet_example_inputs(batch=3, resolution=32, seed=1)
    assert args[0].shape == (3, 16, 8, 8) and args[1].shape == (3,)
    assert kwargs["encoder_hidden_states"].shape == (3, 4, 64) and kwargs["return_dict"] is False
    with torch.no_grad():
        (out,) = tiny_teacher.unet(*args, **kwargs)
    assert out.shape == (3, 16, 8, 8)
    again, _ = tiny_teacher.unet_example_inputs(batch=3, resolution=32, seed=1)
    assert torch.equal(again[0], args[0])


def test_latent_size_rejects_non_multiple(tiny_teacher):
    with pytest.raises(TocsrError, match="multiple"):
        tiny_teacher.latent_size(30)


def test_encode_decode_shapes(tiny_teacher):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = tiny_teacher.encode(x)
        assert z.shape == (2, 16, 8, 8)
        assert torch.equal(z, tiny_teacher.encode(x))  # the posterior mode: deterministic
        assert tiny_teacher.decode(z).shape == (2, 3, 32, 32)


def test_build_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = build_teacher("tiny", seed=3)
    assert torch.equal(torch.rand(1), expected)
    assert a.fingerprint() == build_teacher("tiny", seed=3).fingerprint()
    assert a.fingerprint() != build_teacher("tiny", seed=4).fingerprint()


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(TocsrError, match="sd21-vae16, tiny"):
        build_teacher("huge")


def test_sd21_vae16_matches_the_paper_scale():
    t = build_teacher("sd21-vae16")
    assert _params(t.unet) == 865_979_856
    assert t.latent_channels == 16 and t.vae_scale_factor == 8 and t.latent_size(512) == 64
    assert t.context.embedding.shape == (1, 77, 1024)
    assert t.unet.config.use_linear_projection and tuple(t.unet.config.attention_head_dim) == (5, 10, 20, 20)


def test_null_context_expands_without_copy():
    ctx = NullContext(num_tokens=3, dim=8)
    out = ctx(5)
    assert out.shape == (5, 3, 8) and out.data_ptr() == ctx.embedding.data_ptr()
    assert torch.equal(NullContext(num_tokens=3, dim=8, init_std=0.0)(1), torch.zeros(1, 3, 8))


def test_save_load_round_trip_is_bit_exact(tiny_teacher, tmp_path):
    out = tiny_teacher.save(tmp_path / "t")
    meta = json.loads((out / "teacher.json").read_text())
    assert meta["preset"] == "tiny" and meta["fingerprint"] == tiny_teacher.fingerprint()
    loaded = Teacher.load(out)
    assert loaded.preset == "tiny" and loaded.fingerprint() == tiny_teacher.fingerprint()
    args, kwargs = tiny_teacher.unet_example_inputs(batch=2)
    with torch.no_grad():
        assert torch.equal(tiny_teacher.unet(*args, **kwargs)[0], loaded.unet(*args, **kwargs)[0])
        x = torch.rand(1, 3, 64, 64) * 2 - 1
        assert torch.equal(tiny_teacher.decode(tiny_teacher.encode(x)), loaded.decode(loaded.encode(x)))
    assert type(loaded.scheduler) is type(tiny_teacher.scheduler)
    public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.scheduler.config) == public(tiny_teacher.scheduler.config)


def test_save_keeps_other_files_and_replaces_components(tiny_teacher, tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    tiny_teacher.save(tmp_path)
    other = build_teacher("tiny", seed=1)
    other.save(tmp_path)
    assert (tmp_path / "metrics.json").read_text() == "{}"
    assert Teacher.load(tmp_path).fingerprint() == other.fingerprint()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_diffusers_loads_each_subfolder(tiny_teacher, tmp_path):
    tiny_teacher.save(tmp_path)
    vae = AutoencoderKL.from_pretrained(tmp_path, subfolder="vae", low_cpu_mem_usage=False)
    unet = UNet2DConditionModel.from_pretrained(tmp_path, subfolder="unet", low_cpu_mem_usage=False)
    ctx = NullContext.from_pretrained(tmp_path, subfolder="context", low_cpu_mem_usage=False)
    assert _params(vae) == _params(tiny_teacher.vae) and _params(unet) == _params(tiny_teacher.unet)
    assert torch.equal(ctx.embedding, tiny_teacher.context.embedding)


def test_load_missing_folder_names_the_path(tmp_path):
    with pytest.raises(TeacherLoadError, match="not found: .*nowhere"):
        Teacher.load(tmp_path / "nowhere")


def test_load_incomplete_folder_names_what_is_missing(tiny_teacher, tmp_path):
    tiny_teacher.save(tmp_path)
    (tmp_path / "unet" / "config.json").unlink()
    with pytest.raises(TeacherLoadError, match="incomplete: missing unet/config.json"):
        Teacher.load(tmp_path)


def test_load_refuses_an_interrupted_save(tiny_teacher, tmp_path):
    tiny_teacher.save(tmp_path)
    (tmp_path / ".saving").write_text("")
    with pytest.raises(TeacherLoadError, match="interrupted save"):
        Teacher.load(tmp_path)


def test_load_plain_diffusers_folder_without_context(tiny_teacher, tmp_path):
    tiny_teacher.vae.save_pretrained(tmp_path / "vae")
    tiny_teacher.unet.save_pretrained(tmp_path / "unet")
    tiny_teacher.scheduler.save_pretrained(tmp_path / "scheduler")
    t = Teacher.load(tmp_path)
    assert t.preset is None
    assert torch.equal(t.encoder_hidden_states(2), torch.zeros(2, 77, 64))
    args, kwargs = t.unet_example_inputs()
    with torch.no_grad():
        assert t.unet(*args, **kwargs)[0].shape == (1, 16, 16, 16)


def test_default_teacher_dir_holds_a_trained_teacher(trained_tiny_teacher):
    assert (default_teacher_dir() / "README.md").is_file()
    metrics = json.loads((default_teacher_dir() / "metrics.json").read_text())
    assert trained_tiny_teacher.fingerprint() == metrics["fingerprint"]
    assert metrics["unet_val_loss"] < metrics["unet_val_loss_init"]
    assert trained_tiny_teacher.preset == "tiny"
