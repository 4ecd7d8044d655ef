"""Micro diffusers pipelines of every supported denoiser family, for tests, examples and benchmarks.

:func:`write_micro_pipeline` writes a diffusers pipeline folder (``model_index.json`` and
``save_pretrained`` components, safetensors, random weights, text encoders ``[null, null]``), the
way a user's downloaded or trained pipeline looks:

=========== ============================================= ===========================================
family      denoiser                                      pipeline
=========== ============================================= ===========================================
``ddpm``    ``UNet2DModel``, 3 channels, 32 px, attention  ``DDPMPipeline`` (pixel space, no VAE)
``sd15``    ``UNet2DConditionModel``, 4-ch latent, cross   ``StableDiffusionPipeline`` + AutoencoderKL
            attention (dim 32)
``sdxl``    ``UNet2DConditionModel`` ``text_time``         ``StableDiffusionXLPipeline`` + AutoencoderKL
``dit``     ``DiTTransformer2DModel``, 4-ch latent         ``DiTPipeline`` + AutoencoderKL
=========== ============================================= ===========================================

Every model is a few hundred thousand parameters at most: seconds on a CPU.

Example:
    >>> import tempfile
    >>> from tocsr_nas.teacher import Teacher
    >>> folder = write_micro_pipeline("ddpm", tempfile.mkdtemp())
    >>> Teacher.load(folder).family
    'unet2d'
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel, UNet2DConditionModel, UNet2DModel

__all__ = ["MICRO_FAMILIES", "micro_models", "write_micro_pipeline"]

#: the micro families, in table order
MICRO_FAMILIES = ("ddpm", "sd15", "sdxl", "dit")


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32,
    )  # fmt: skip


def micro_models(family: str, seed: int = 0) -> tuple[str, dict[str, torch.nn.Module | None]]:
    """``(pipeline class name, {component: module})`` of a micro pipeline (random weights).

    Raises:
        ValueError: unknown family.
    """
    torch.manual_seed(seed)
    if family == "ddpm":
        unet = UNet2DModel(
            sample_size=32, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=8,
        )  # fmt: skip
        return "DDPMPipeline", {"unet": unet}
    if family in ("sd15", "sdxl"):
        extra = {}
        if family == "sdxl":
            extra = {"addition_embed_type": "text_time", "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 16 + 6 * 8}
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, **extra,
        )  # fmt: skip
        name = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
        return name, {"unet": unet, "vae": _vae()}
    if family == "dit":
        dit = DiTTransformer2DModel(
            num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8, num_layers=4, sample_size=16,
            patch_size=2, num_embeds_ada_norm=10,
        )  # fmt: skip
        return "DiTPipeline", {"transformer": dit, "vae": _vae()}
    raise ValueError(f"unknown micro family {family!r}; families: {list(MICRO_FAMILIES)}")


def write_micro_pipeline(family: str, directory: str | Path, seed: int = 0) -> Path:
    """Write a micro pipeline of ``family`` (see the module docstring) to ``directory``.

    Returns:
        The folder.
    """
    directory = Path(directory)
    pipeline, parts = micro_models(family, seed)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    index: dict[str, object] = {"_class_name": pipeline, "_diffusers_version": diffusers.__version__}
    for name, module in parts.items():
        module.save_pretrained(directory / name, safe_serialization=True)
        index[name] = ["diffusers", type(module).__name__]
    scheduler.save_pretrained(directory / "scheduler")
    index["scheduler"] = ["diffusers", type(scheduler).__name__]
    if family in ("sd15", "sdxl"):
        encoders = ("text_encoder", "tokenizer") + (("text_encoder_2", "tokenizer_2") if family == "sdxl" else ())
        index.update({k: [None, None] for k in encoders})
    (directory / "model_index.json").write_text(json.dumps(index, indent=2))
    return directory
