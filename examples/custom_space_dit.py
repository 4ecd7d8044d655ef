"""A Diffusion Transformer through the CLI, then a search space of your own through the API.

The toolkit reads a diffusers pipeline folder of any supported family (docs/models.md); a DiT is
one. This example:

1. trains a small ``DiTTransformer2DModel`` (6 ``BasicTransformerBlock`` s with adaLN-Zero) for a
   few hundred steps to predict the noise on latents of photo patches (the shipped tiny teacher's
   VAE and noise schedule), and saves it with the VAE as a diffusers pipeline folder
   (``model_index.json``, ``transformer/``, ``vae/``, ``scheduler/``);
2. runs the CLI on that folder, unchanged: ``tocsr-nas space --teacher DIT --json``, ``distill``,
   ``search``, ``export`` (the packaged ``transformer`` space: ``skip`` and ``light_block`` on
   every layer but the first), then ``tocsr_nas.load_compact`` and one forward with the DiT's own
   call;
3. shows what the API still adds: a surrogate type of your own (``dit_mlp``: the layer without its
   attention), registered in-process, and a space with constraints written for the DiT's module
   paths, distilled (``distill_teacher``) and searched (``prepare_search`` + ``tocsr_nas.search``).

Run::

    python examples/custom_space_dit.py --out runs/dit          # 300 teacher steps, 150 steps/pair, budget 30
    python examples/custom_space_dit.py --quick --out /tmp/dit  # 20 teacher steps, 5 steps/pair, budget 6

Time on a laptop CPU: about 4 minutes (documented setting), about 1 minute with ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path
from typing import Any

import diffusers
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

    The package knows DiT layers (kind ``basic_transformer``, with ``skip`` and ``light_block``);
    these types show how to add your own: they declare ``replaces = ("*",)`` and narrow it down by
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
    """The DiT's call for noisy latents ``x_t (b, 16, 16, 16)`` at timesteps ``t (b,)`` (the null class)."""
    # the classifier-free "no class" row (index num_embeds_ada_norm = 1): what the toolkit feeds a DiT
    labels = torch.ones(x_t.shape[0], dtype=torch.long)  # (b,)
    return (x_t, t), {"class_labels": labels, "return_dict": False}


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


def save_pipeline(dit: nn.Module, teacher, folder: Path) -> Path:
    """The DiT with the teacher's VAE and scheduler as a diffusers ``DiTPipeline`` folder."""
    dit.save_pretrained(folder / "transformer", safe_serialization=True)
    teacher.vae.save_pretrained(folder / "vae", safe_serialization=True)
    teacher.scheduler.save_pretrained(folder / "scheduler")
    index = {"_class_name": "DiTPipeline", "_diffusers_version": diffusers.__version__,
             "transformer": ["diffusers", type(dit).__name__], "vae": ["diffusers", "AutoencoderKL"],
             "scheduler": ["diffusers", type(teacher.scheduler).__name__]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder


def cli(*argv: str) -> None:
    """Run one ``tocsr-nas`` command in this process, printing it first."""
    from tocsr_nas.cli import main

    print("$ tocsr-nas", shlex.join(argv), flush=True)
    code = main(list(argv))
    if code:
        raise SystemExit(code)


# ---------------------------------------------------------------------- the pipeline
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/dit"), help="output folder (new or empty)")
    parser.add_argument("--quick", action="store_true", help="20 teacher steps, 5 steps/pair, budget 6 (tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)  # fastest on a busy machine; remove on your own

    import tocsr_nas
    from tocsr_nas.search.setup import prepare_search
    from tocsr_nas.searchspace import SpaceSpec
    from tocsr_nas.stages.distill import DistillConfig, distill_teacher
    from tocsr_nas.stages.space import build_space
    from tocsr_nas.teacher import Teacher, shipped_teacher
    from tocsr_nas.teacher.data import PhotoDataset

    teacher_steps, samples, pair_steps, budget = (20, 32, 5, 6) if args.quick else (300, 256, 150, 30)
    common = ["--threads", "1", "--no-progress"]

    # 1. a DiT trained to denoise latents of photo patches, saved as a diffusers pipeline folder
    base = shipped_teacher().eval()  # for its VAE and scheduler (the tiny preset with random weights if absent)
    with torch.no_grad():
        latents = base.encode(PhotoDataset.from_skimage("train", min_size=64).random_batch(samples, 64, seed=0))
    dit = make_dit()
    train_dit(dit, base, latents, teacher_steps)
    folder = save_pipeline(dit, base, args.out / "dit-pipeline")

    # 2. the CLI on the folder, as on any diffusers pipeline
    cli("space", "--teacher", str(folder))
    cli("distill", "--teacher", str(folder), "--out", str(args.out / "library"), "--steps", str(pair_steps),
        "--samples", str(samples), "--val-samples", "8", *common)
    cli("search", "--teacher", str(folder), "--surrogates", str(args.out / "library"), "--epsilon", "0.1", "--epsilon",
        "0.3", "--budget", str(budget), "--val-samples", "8", "--out", str(args.out / "cli-search"), *common)
    cli("export", "--search", str(args.out / "cli-search"), "--out", str(args.out / "compact"))
    compact = tocsr_nas.load_compact(args.out / "compact")
    teacher = Teacher.load(folder)
    call_args, call_kwargs = teacher.unet_example_inputs(2)  # (x_t, timestep, null class)
    call_kwargs.pop("return_dict")
    with torch.no_grad():
        out = compact(*call_args, **call_kwargs)
    print(f"load_compact: {type(compact).__name__} -> {type(out).__name__} {tuple(out.sample.shape)}")

    # 3. the API: your own surrogate type (dit_mlp, registered above) and constraints on the DiT's paths
    space = build_space(teacher.unet, SpaceSpec.from_yaml(SPACE_YAML),
                        probe=teacher.unet_example_inputs(1, resolution=teacher.probe_resolution))
    print(f"{space.summary()}: {[b.path for b in space.blocks]}")
    config = DistillConfig(steps=pair_steps, samples=samples, val_samples=8)
    library = distill_teacher(teacher, space, args.out / "custom-library", config, progress=False)
    print(library.losses()[["block", "candidate", "initial_loss", "final_loss"]].round(4).to_string(index=False))
    prepared = prepare_search(teacher=teacher, surrogates=library, space=space, val_samples=8)
    print(f"DiT teacher: {prepared.cost.teacher().gmacs:.4f} GMACs, {prepared.cost.teacher().params / 1e6:.3f} M params")
    result = tocsr_nas.search(space, quality=prepared.quality, cost=prepared.cost, epsilon=[0.1, 0.3], strategy="ecbo",
                              budget=budget, seed=0, prior=prepared.prior, out_dir=args.out / "search", progress=False)
    print(result.summary())
    if result.best is not None:
        print("best configuration:", dict(result.best.config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
