"""A micro diffusers UNet, a small space over it and a distilled library, for the distillation tests."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from tocsr_nas.executors import LocalExecutor
from tocsr_nas.searchspace import SearchSpace, SpaceSpec
from tocsr_nas.surrogates import available_surrogates
from tocsr_nas.surrogates.distill import TrainSettings, distill
from tocsr_nas.surrogates.features import FeatureCache, capture_features
from tocsr_nas.surrogates.library import SurrogateLibrary



SPACE_YAML = """
name: micro
rules:
  - name: resnets
    match: "*resnets.*"
    type: ResnetBlock2D
    candidates:
      - skip
      - {type: bottleneck_resnet, grid: {ratio: [0.5]}}
  - name: attentions
    match: "*attentions.*"
    type: Transformer2DModel
    candidates: [skip, conv_mixer]
  - name: downsamplers
    match: "*downsamplers.*"
    candidates: [pool_down]
  - name: upsamplers
    match: "*upsamplers.*"
    candidates: [light_up]
"""

FINGERPRINT = "micro-teacher-0"


def micro_unet(seed: int = 0) -> UNet2DConditionModel:
    """A two-level UNet with ResNets, cross-attention transformers and both samplers (~50k params)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            cross_attention_dim=8,
            attention_head_dim=4,
            norm_num_groups=4,
        )
    return unet.eval()


def micro_space(unet: torch.nn.Module) -> SearchSpace:
    spec = SpaceSpec.from_yaml(SPACE_YAML)
    return spec.resolve([(n, type(m).__name__) for n, m in unet.named_modules()], known_types=available_surrogates())


def unet_calls(n: int, batch: int, seed: int):
    """``n`` random UNet calls of ``batch`` samples: noisy latents, timesteps, a fixed context."""
    gen = torch.Generator().manual_seed(seed)
    context = torch.randn(1, 3, 8, generator=gen)  # (1, L, D)
    calls = []
    for _ in range(n):
        sample = torch.randn(batch, 4, 8, 8, generator=gen)  # (B, C, H, W)
        t = torch.randint(0, 1000, (batch,), generator=gen)  # (B,)
        calls.append(((sample, t), {"encoder_hidden_states": context.expand(batch, -1, -1), "return_dict": False}))
    return calls


def capture(unet: torch.nn.Module, space: SearchSpace, root: Path) -> FeatureCache:
    cache = FeatureCache(root)
    capture_features(unet, space.paths, unet_calls(4, 16, seed=1), cache, "train")
    capture_features(unet, space.paths, unet_calls(1, 16, seed=2), cache, "val")
    return cache


def build_library(unet, space, root: Path, *, steps: int = 40, workers: int = 1) -> SurrogateLibrary:
    """Capture features of ``unet`` and distil ``space`` into ``root/lib``."""
    cache = capture(unet, space, root / "features")
    blocks = {p: unet.get_submodule(p) for p in space.paths}
    return distill(
        blocks,
        space,
        cache,
        root / "lib",
        teacher_fingerprint=FINGERPRINT,
        resolution=64,
        settings=TrainSettings(steps=steps, batch_size=8, lr=3e-3),
        executor=LocalExecutor(workers) if workers > 1 else None,
        progress=False,
    )



@dataclass
class MicroLibrary:
    unet: torch.nn.Module
    space: SearchSpace
    library: SurrogateLibrary
    features: FeatureCache


_SHARED: dict[str, MicroLibrary] = {}


def shared_library() -> MicroLibrary:
    """One distilled micro library per test process; treat it as read-only (deep-copy the UNet to wrap it)."""
    if "lib" not in _SHARED:
        root = Path(tempfile.mkdtemp(prefix="tocsr-micro-lib-"))
        atexit.register(shutil.rmtree, root, True)
        unet = micro_unet()
        space = micro_space(unet)
        library = build_library(unet, space, root, steps=30)
        _SHARED["lib"] = MicroLibrary(unet, space, library, FeatureCache(root / "features"))
    return _SHARED["lib"]
