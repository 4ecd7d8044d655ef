"""Bring your own model: diffusers pipeline folders of every family load, search spaces resolve,
libraries distil, and a compact export rebuilds a module called exactly like the teacher's denoiser."""

from __future__ import annotations

import json

import pytest
import torch

import tocsr_nas
from tocsr_nas.cli import main
from tocsr_nas.stages.distill import DistillConfig, distill_teacher
from tocsr_nas.stages.export import export_compact
from tocsr_nas.stages.space import build_space
from tocsr_nas.teacher import Teacher
from tocsr_nas.teacher.adapters import UnsupportedModelError, adapter_for, supported_classes
from tocsr_nas.teacher.model import PooledNullContext
from tocsr_nas.teacher.testing import MICRO_FAMILIES, micro_models, write_micro_pipeline

#: micro family -> (adapter family, default space)
EXPECTED = {"ddpm": ("unet2d", "unet2d-default"), "sd15": ("unet", "unet-default"), "sdxl": ("unet", "unet-default"),
            "dit": ("dit", "transformer-default")}  # fmt: skip


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {f: write_micro_pipeline(f, root / f) for f in MICRO_FAMILIES}


@pytest.mark.parametrize("family", MICRO_FAMILIES)
def test_pipeline_folder_loads_and_round_trips(family, pipelines, tmp_path):
    teacher = Teacher.load(pipelines[family])
    _, parts = micro_models(family)
    denoiser = parts.get("unet", parts.get("transformer"))
    assert type(teacher.unet) is type(denoiser) and teacher.family == EXPECTED[family][0]
    assert sum(p.numel() for p in teacher.unet.parameters()) == sum(p.numel() for p in denoiser.parameters())
    assert (teacher.vae is None) == (family == "ddpm")
    assert isinstance(teacher.context, PooledNullContext) == (family == "sdxl")
    assert (teacher.context is None) == (family in ("ddpm", "dit"))
    # the teacher's own call, through the adapter: output = the denoiser's own sample shape
    args, kwargs = teacher.unet_example_inputs(2)
    with torch.no_grad():
        out = teacher.unet(*args, **kwargs)[0]
    assert out.shape[0] == 2 and out.shape[-2:] == args[0].shape[-2:]
    # save in the toolkit's layout and load back: same fingerprint, same outputs
    saved = Teacher.load(teacher.save(tmp_path / "saved"))
    assert saved.fingerprint() == teacher.fingerprint() and saved.family == teacher.family
    with torch.no_grad():
        assert torch.equal(saved.unet(*args, **kwargs)[0], out)
    with torch.no_grad():
        teacher.unet.conv_in.weight.add_(1.0) if hasattr(teacher.unet, "conv_in") else teacher.unet.proj_out_2.weight.add_(1.0)
    assert teacher.fingerprint() != saved.fingerprint()


def test_sdxl_inputs_are_synthesised(pipelines):
    teacher = Teacher.load(pipelines["sdxl"])
    args, kwargs = teacher.unet_example_inputs(3, resolution=32)
    added = kwargs["added_cond_kwargs"]
    assert added["text_embeds"].shape == (3, 16)  # projection input 64 - 6 ids x 8
    assert added["time_ids"].tolist() == [[32.0, 32.0, 0.0, 0.0, 32.0, 32.0]] * 3  # (H, W, 0, 0, H, W) in pixels
    assert kwargs["encoder_hidden_states"].shape == (3, 77, 32)


def test_dit_uses_the_null_class_and_scores_its_noise_channels(pipelines):
    teacher = Teacher.load(pipelines["dit"])
    args, kwargs = teacher.unet_example_inputs(2)
    assert kwargs["class_labels"].tolist() == [10, 10]  # the classifier-free "no class" row of 11
    eps = teacher.denoiser_forward(teacher.unet)(args[0], kwargs["timestep"], None)
    assert eps.shape == args[0].shape  # learned sigma (8 channels) -> the 4 noise channels


@pytest.mark.parametrize("family", MICRO_FAMILIES)
def test_default_space_distil_export_load_compact(family, pipelines, tmp_path):
    teacher = Teacher.load(pipelines[family])
    space = build_space(teacher.unet, None, probe=teacher.unet_example_inputs(1, resolution=teacher.probe_resolution))
    assert space.name == EXPECTED[family][1] and len(space) >= 2
    config = DistillConfig(steps=1, samples=4, val_samples=2, batch_size=2, capture_batch=4)
    library = distill_teacher(teacher, space, tmp_path / "lib", config, progress=False)
    cheapest = {b.path: b.choices[-1].name for b in space.blocks}
    meta = export_compact(teacher, space, library, cheapest, tmp_path / "compact")
    assert meta["unet_class"] == type(teacher.unet).__name__
    model = tocsr_nas.load_compact(tmp_path / "compact")
    args, kwargs = teacher.unet_example_inputs(2)
    kwargs.pop("return_dict")
    with torch.no_grad():
        got, want = model(*args, **kwargs), teacher.unet(*args, **kwargs)
    assert type(got) is type(want) and got.sample.shape == want.sample.shape
    assert sum(p.numel() for p in model.parameters()) == meta["measured"]["params"] < sum(p.numel() for p in teacher.unet.parameters())


def test_unsupported_denoiser_names_the_class_and_the_supported_ones(pipelines, tmp_path, capsys):
    folder = tmp_path / "foreign"
    folder.mkdir()
    for name in ("scheduler", "unet"):
        (folder / name).mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler"}))
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet3DConditionModel"}))
    (folder / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet3DConditionModel"], "scheduler": ["diffusers", "DDPMScheduler"]}))
    assert main(["space", "--teacher", str(folder), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "UNet3DConditionModel" in err[0] and "DiTTransformer2DModel" in err[0]
    with pytest.raises(UnsupportedModelError, match="only the DiT form"):
        adapter_for("Transformer2DModel", {"patch_size": None, "norm_type": "layer_norm"})
    assert {"UNet2DModel", "UNet2DConditionModel", "DiTTransformer2DModel", "PixArtTransformer2DModel"} <= set(supported_classes())


def test_pixart_adapter_calls_the_model():
    from diffusers import PixArtTransformer2DModel

    torch.manual_seed(0)
    model = PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                                     sample_size=8, patch_size=2, caption_channels=12, cross_attention_dim=16).eval()  # fmt: skip
    adapter = adapter_for(model)(model)
    args, kwargs = adapter.call(torch.randn(2, 4, 8, 8), torch.tensor([1, 500]), torch.zeros(2, *adapter.context_shape()))
    with torch.no_grad():
        assert adapter.eps(model(*args, **kwargs)).shape == (2, 4, 8, 8)
    assert adapter.default_space == "transformer"


def test_a_folder_without_context_has_one_fingerprint(pipelines):
    """The zero null context synthesised for a folder without context/ is the same bytes at every load."""
    assert Teacher.load(pipelines["sd15"]).fingerprint() == Teacher.load(pipelines["sd15"]).fingerprint()


def test_projected_text_width_sets_the_null_context():
    """A UNet that projects its text states (``encoder_hid_dim``) takes a context of that width."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, encoder_hid_dim=48, encoder_hid_dim_type="text_proj",
    ).eval()  # fmt: skip
    adapter = adapter_for(unet)(unet)
    assert adapter.context_shape() == (77, 48)
    args, kwargs = adapter.call(torch.randn(1, 4, 8, 8), torch.tensor([5]), torch.zeros(1, 77, 48))
    with torch.no_grad():
        assert unet(*args, **kwargs)[0].shape == (1, 4, 8, 8)
