"""Robustness catalogue: teacher folders of a model family the toolkit cannot search (issue 15).

A diffusers folder whose denoiser no adapter handles, a pipeline index that lists no denoiser, or
a supported class in a form that is not (a Transformer2DModel that is a UNet attention block, not a
DiT) is refused in one line naming the class and the supported ones, exit code 2, by every command
that reads a teacher.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustness.catalogue import Case, check, params


def _folder(tmp: Path, denoiser: dict, index: dict | None = None, sub: str = "unet") -> Path:
    folder = tmp / "model"
    (folder / sub).mkdir(parents=True)
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler"}))
    (folder / sub / "config.json").write_text(json.dumps(denoiser))
    if index is not None:
        (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def _unet3d(tmp: Path, artefacts) -> None:
    _folder(tmp, {"_class_name": "UNet3DConditionModel"}, {"unet": ["diffusers", "UNet3DConditionModel"]})


def _no_denoiser(tmp: Path, artefacts) -> None:
    _folder(tmp, {"_class_name": "UNet2DModel"}, {"unet": [None, None], "scheduler": ["diffusers", "DDPMScheduler"]})


def _attention_transformer(tmp: Path, artefacts) -> None:
    _folder(tmp, {"_class_name": "Transformer2DModel", "in_channels": 4, "norm_type": "layer_norm"}, None, sub="transformer")


def _image_embeds(tmp: Path, artefacts) -> None:
    _folder(tmp, {"_class_name": "UNet2DConditionModel", "addition_embed_type": "image"})


SUPPORTED = "supported: .*UNet2DConditionModel.*UNet2DModel"
CASES = [
    *(
        Case(cmd, "unsupported-class", [*argv, "{tmp}/model"], rf"UNet3DConditionModel; {SUPPORTED}", setup=_unet3d)
        for cmd, argv in (("space", ["space", "--teacher"]),
                          ("distill", ["distill", "--out", "{tmp}/lib", "--steps", "1", "--teacher"]))
    ),
    Case("space", "pipeline-without-denoiser", ["space", "--teacher", "{tmp}/model"], "lists no denoiser", setup=_no_denoiser),
    Case("space", "transformer-not-dit", ["space", "--teacher", "{tmp}/model"], r"Transformer2DModel \(only the DiT form",
         setup=_attention_transformer),
    Case("space", "unet-image-embeds", ["space", "--teacher", "{tmp}/model"], r"addition_embed_type='image'",
         setup=_image_embeds),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)
