"""A search space written from scratch for a backbone the defaults know nothing about: a diffusers
``DiTTransformer2DModel`` (a Diffusion Transformer) denoising the tiny teacher's 16-channel latents.

What it shows - the DSL, distillation, cost tables, the supernet and the search are not UNet-specific:

1. A DiT teacher: a small ``DiTTransformer2DModel`` (6 ``BasicTransformerBlock`` s with adaLN-Zero
   conditioning on the timestep), trained for a few hundred steps to predict the noise on latents
   of photo patches (the VAE and noise schedule of the tiny teacher).
2. Two surrogate types for a block kind the package does not know (``BasicTransformerBlock`` with
   ``norm_type="ada_norm_zero"``): ``dit_skip`` (identity) and ``dit_mlp`` (the block without its
   attention, with a feed-forward ``ratio`` times as wide). They declare which blocks they fit by
   overriding ``SurrogateBlock.compatible``.
3. Rules over the DiT's module paths (``transformer_blocks.[1-9]*``), a grid and constraints,
   resolved and checked against the model with ``build_space``. Block 0 stays out: the DiT's
   output layer reads ``transformer_blocks[0].norm1.emb``, so that block cannot be swapped.
4. The generic layer of the pipeline: block features captured from the DiT's own denoising calls
   (``capture_features``), every (block, candidate) pair distilled (``distill``), a cost table
   (``CostTable.build``), a validation set scored against the DiT, the ``SuperNet`` and ecbo.

Run::

    python examples/custom_space_dit.py --out runs/dit          # 300 teacher steps, 150 steps/pair, budget 30
    python examples/custom_space_dit.py --quick --out /tmp/dit  # 20 teacher steps, 5 steps/pair, budget 6

Time on a laptop CPU: about 3 minutes (documented setting), about 40 s with ``--quick``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import DiTTransformer2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock, FeedForward
from diffusers.models.normalization import AdaLayerNormZero
from torch import nn

from tocsr_nas.surrogates import SurrogateBlock, check_number, register_surrogate

log = logging.getLogger("custom_space_dit")


# ---------------------------------------------------------------------- surrogates for DiT blocks
def is_dit_block(block: nn.Module) -> bool:
    """A ``BasicTransformerBlock`` conditioned by adaLN-Zero, as in ``DiTTransformer2DModel``."""
    return isinstance(block, BasicTransformerBlock) and block.norm_type == "ada_norm_zero"


class DitSurrogate(SurrogateBlock):
    """Base of the DiT-block surrogates: they fit ``BasicTransformerBlock`` s with adaLN-Zero.

    The package's block kinds (``resnet``, ``transformer``, ``downsample``, ``upsample``) do not
    include DiT blocks, so these types declare ``replaces = ("*",)`` and narrow it down by
    overriding :meth:`compatible`; ``from_teacher`` refuses every other block with a clear
    ``IncompatibleBlockError``.
    """

    replaces = ("*",)

    @classmethod
    def compatible(cls, block: nn.Module) -> bool:
        return is_dit_block(block)


@register_surrogate("dit_skip")
class DitSkip(DitSurrogate):
    """Drop the block: ``hidden_states`` pass through unchanged."""

    @register_to_config
    def __init__(self, *, dim: int) -> None:
        super().__init__()

    @classmethod
    def from_teacher(cls, block: nn.Module) -> DitSkip:
        return cls(dim=int(block.norm3.normalized_shape[0]))

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states  # (B, N, D)


@register_surrogate("dit_mlp")
class DitMLP(DitSurrogate):
    """The DiT block without self-attention: adaLN-Zero conditioning and a (narrower) feed-forward.

    With ``(shift, scale, gate)`` from the teacher's adaLN-Zero embedding of ``(timestep, class)``,
    the teacher block is ``h = x + gate_msa * Attn(norm1(x)); out = h + gate_mlp * FF(norm3(h) *
    (1 + scale) + shift)``. This surrogate drops the attention term (``h = x``) and keeps the
    feed-forward branch, its hidden width ``round(ratio * K)`` of the teacher's ``K``. Initialised
    from the teacher: the adaLN-Zero embedding is copied and the feed-forward is truncated to its
    first hidden units, so with ``ratio=1`` it is exactly the teacher block minus its attention.

    Args:
        dim: token width ``D``.
        num_embeds_ada_norm: class-label vocabulary of the adaLN-Zero embedding.
        inner_dim: feed-forward hidden width.
        activation_fn: feed-forward activation (the teacher's).
        norm_eps: LayerNorm epsilon.
    """

    @register_to_config
    def __init__(self, *, dim: int, num_embeds_ada_norm: int, inner_dim: int,
                 activation_fn: str = "gelu-approximate", norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim, num_embeds_ada_norm)
        self.norm3 = nn.LayerNorm(dim, norm_eps, elementwise_affine=False)
        self.ff = FeedForward(dim, activation_fn=activation_fn, inner_dim=inner_dim)

    @classmethod
    def from_teacher(cls, block: nn.Module, *, ratio: float = 0.5) -> DitMLP:
        """Build from a DiT block; ``ratio`` (in (0, 1]) is the YAML parameter."""
        ratio = check_number("dit_mlp", "ratio", ratio, low=0.0, low_open=True, high=1.0)
        teacher_inner = block.ff.net[2].in_features
        dim = int(block.norm3.normalized_shape[0])
        surrogate = cls(dim=dim, num_embeds_ada_norm=block.norm1.emb.class_embedder.num_classes,
                        inner_dim=max(1, round(ratio * teacher_inner)), norm_eps=block.norm3.eps)
        with torch.no_grad():
            surrogate.norm1.load_state_dict(block.norm1.state_dict())
            k = surrogate.config.inner_dim
            surrogate.ff.net[0].proj.weight.copy_(block.ff.net[0].proj.weight[:k])  # (K, D) -> (k, D)
            surrogate.ff.net[0].proj.bias.copy_(block.ff.net[0].proj.bias[:k])
            surrogate.ff.net[2].weight.copy_(block.ff.net[2].weight[:, :k])  # (D, K) -> (D, k)
            surrogate.ff.net[2].bias.copy_(block.ff.net[2].bias)
        return surrogate

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, encoder_hidden_states: Any = None,
                encoder_attention_mask: Any = None, timestep: torch.Tensor | None = None,
                cross_attention_kwargs: Any = None, class_labels: torch.Tensor | None = None,
                added_cond_kwargs: Any = None) -> torch.Tensor:
        x = hidden_states  # (B, N, D)
        _, _, shift, scale, gate = self.norm1(x, timestep, class_labels, hidden_dtype=x.dtype)  # (B, D) each
        y = self.norm3(x) * (1 + scale[:, None]) + shift[:, None]  # (B, N, D)
        return x + gate[:, None] * self.ff(y)  # (B, N, D)


#: the search space, written for the DiT's module paths (see ``dit.named_modules()``)
SPACE_YAML = """\
name: dit-blocks
rules:
  - name: dit-blocks
    # not block 0: DiTTransformer2DModel.forward reads transformer_blocks[0].norm1.emb for its output layer
    match: "transformer_blocks.[1-9]*"
    type: BasicTransformerBlock
    candidates:
      - dit_skip
      - {type: dit_mlp, grid: {ratio: [0.25, 1.0]}}
constraints:
  - {type: forbid, when: {"transformer_blocks.4": dit_skip, "transformer_blocks.5": dit_skip}}  # not both
  - {type: max_count, candidate: dit_skip, count: 3}
"""


# ---------------------------------------------------------------------- the DiT teacher
def make_dit(seed: int = 0) -> DiTTransformer2DModel:
    """A small DiT on 16 x 16 x 16 latents: 2 x 2 patches (64 tokens), width 64, 6 blocks, one class."""
    torch.manual_seed(seed)
    return DiTTransformer2DModel(num_attention_heads=4, attention_head_dim=16, in_channels=16, num_layers=6,
                                 sample_size=16, patch_size=2, num_embeds_ada_norm=1)


def dit_call(x_t: torch.Tensor, t: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The DiT's call for noisy latents ``x_t (b, 16, 16, 16)`` at timesteps ``t (b,)`` (class 0)."""
    labels = torch.zeros(x_t.shape[0], dtype=torch.long)  # (b,)
    return (x_t, t), {"class_labels": labels, "return_dict": False}


def dit_forward(model: nn.Module):
    """``forward(x_t, t, context) -> eps_hat`` for the quality evaluators (the DiT ignores ``context``)."""

    def forward(x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        args, kwargs = dit_call(x_t, t)
        return model(*args, **kwargs)[0]  # (b, 16, 16, 16)

    return forward


def noisy_latents(teacher, latents: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, t, eps)`` with ``t`` uniform over the schedule and ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(0, teacher.scheduler.config.num_train_timesteps, (latents.shape[0],), generator=gen)  # (b,)
    eps = torch.randn(latents.shape, generator=gen)  # (b, 16, h, w)
    return teacher.scheduler.add_noise(latents, eps, t), t, eps


def train_dit(dit: nn.Module, teacher, latents: torch.Tensor, steps: int, seed: int = 0) -> None:
    """Epsilon-prediction training: minimise ``|| dit(x_t, t) - eps ||^2`` over random batches."""
    opt = torch.optim.AdamW(dit.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    dit.train()
    for step in range(steps):
        batch = latents[torch.randint(len(latents), (16,), generator=gen)]  # (16, 16, 16, 16)
        x_t, t, eps = noisy_latents(teacher, batch, seed=seed * 100_003 + step)
        args, kwargs = dit_call(x_t, t)
        loss = torch.mean((dit(*args, **kwargs)[0] - eps) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log.info("DiT step %d: loss %.4f", step, loss.item())
    dit.eval()


def fingerprint(model: nn.Module) -> str:
    """12 hex digits of the model's weights: the library records which teacher it was distilled from."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().numpy().tobytes())
    return "dit-" + h.hexdigest()[:12]


# ---------------------------------------------------------------------- the pipeline
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/dit"), help="output folder (new or empty)")
    parser.add_argument("--quick", action="store_true", help="20 teacher steps, 5 steps/pair, budget 6 (tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)  # fastest on a busy machine; remove on your own

    import tocsr_nas
    from tocsr_nas.teacher import shipped_teacher
    from tocsr_nas.teacher.data import PhotoDataset
    from tocsr_nas.evaluators import CostTable, TeacherAgreement, ValidationSet
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.searchspace import SpaceSpec
    from tocsr_nas.surrogates.capture import capture_block_io
    from tocsr_nas.surrogates.distill import TrainSettings, distill
    from tocsr_nas.surrogates.features import FeatureCache, capture_features
    from tocsr_nas.surrogates.supernet import SuperNet
    from tocsr_nas.stages.validation import build_validation_set

    teacher_steps, samples, pair_steps, budget = (20, 32, 5, 6) if args.quick else (300, 256, 150, 30)

    # 1. latents of photo patches, and a DiT trained to denoise them
    teacher = shipped_teacher().eval()  # for its VAE and scheduler (the tiny preset with random weights if absent)
    with torch.no_grad():
        train = teacher.encode(PhotoDataset.from_skimage("train", min_size=64).random_batch(samples, 64, seed=0))
        val = teacher.encode(PhotoDataset.from_skimage("val", min_size=64).random_batch(16, 64, seed=1))
    dit = make_dit()
    train_dit(dit, teacher, train, teacher_steps)

    # 2-3. the search space: rules on the DiT's own module paths, checked on one real call
    spec = SpaceSpec.from_yaml(SPACE_YAML)
    candidates = CandidateCache()
    probe = dit_call(*noisy_latents(teacher, val[:1], seed=0)[:2])
    space = build_space(dit, spec, probe=probe, candidates=candidates)
    print(f"{space.summary()}: {[b.path for b in space.blocks]}")

    # 4a. block features from the DiT's own denoising calls, then every (block, candidate) pair
    cache = FeatureCache(args.out / "features")
    for split, latents, seed in (("train", train, 10), ("val", val, 11)):
        x_t, t, _ = noisy_latents(teacher, latents, seed=seed)
        calls = [dit_call(x_t[i:i + 16], t[i:i + 16]) for i in range(0, len(x_t), 16)]
        capture_features(dit, space.paths, calls, cache, split)
    blocks = {path: dit.get_submodule(path) for path in space.paths}
    library = distill(blocks, space, cache, args.out / "library", teacher_fingerprint=fingerprint(dit),
                      settings=TrainSettings(steps=pair_steps, batch_size=16), resume=True, progress=False)
    print(library.losses()[["block", "candidate", "initial_loss", "final_loss"]].round(4).to_string(index=False))

    # 4b. the cost table: one fvcore trace of the DiT, one per distinct (candidate, block signature)
    call_args, call_kwargs = dit_call(*noisy_latents(teacher, val[:1], seed=0)[:2])
    ios = capture_block_io(dit, space.paths, call_args, call_kwargs, outputs=False)
    table = CostTable.build(
        dit, call_args, call_kwargs, {b.path: b.names for b in space.blocks},
        lambda path, name, block: candidates(block, space[path].choices[space[path].index(name)]), ios,
    )
    print(f"DiT teacher: {table.teacher().gmacs:.4f} GMACs, {table.teacher().params / 1e6:.3f} M params")

    # 4c. quality: held-out noisy latents (the UNet teacher's validation set), scored against the DiT
    base = build_validation_set(teacher, samples=8 if args.quick else 32)
    validation = ValidationSet.build(x0=base.x0, noise=base.noise, x_t=base.x_t, timesteps=base.timesteps,
                                     context=base.context, forward=dit_forward(dit), chunk_size=base.chunk_size)
    supernet = SuperNet(dit, library, space)  # the DiT's blocks now route to any candidate by name
    agreement, forward = TeacherAgreement(validation), dit_forward(supernet)

    def quality(config) -> float:
        supernet.set_configuration(config)
        return agreement(forward)

    # 4d. the search
    result = tocsr_nas.search(space, quality=quality, cost=table, epsilon=[0.1, 0.3], strategy="ecbo",
                              budget=budget, seed=0, out_dir=args.out / "search", progress=False)
    print(result.summary())
    if result.best is not None:
        print("best configuration:", dict(result.best.config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
