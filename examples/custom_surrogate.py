"""A new surrogate block type in a few lines: low-rank linear attention for the UNet's attention blocks,
registered, checked by the surrogate conformance kit, used in a search space, distilled and searched.

What it shows:

1. ``LowRankLinearAttention`` (registered as ``lowrank_linear_attention``): a stand-in for a
   diffusers ``Transformer2DModel`` block. Queries and keys are projected to ``rank`` channels and
   attention is linearised (Katharopoulos et al., 2020), so its cost grows linearly with the number
   of tokens instead of quadratically. It needs a config (``@register_to_config``), a
   ``from_teacher`` classmethod whose keyword-only arguments are the YAML parameters, and a
   ``forward`` with the teacher block's call signature.
2. The conformance kit (``tocsr_nas.surrogates.testing``): signature, output shapes on odd sizes,
   config round trip, fewer parameters than the teacher block, ``torch.jit.trace``-able.
3. A search space using it next to built-in types, with a parameter grid (``rank: [4, 8]``);
   blockwise distillation of every (block, candidate) pair on the teacher's noisy latents; the
   supernet; ecbo; the distillation losses per candidate and the best configuration found.

Run::

    python examples/custom_surrogate.py --out runs/custom_surrogate      # 150 steps per pair, budget 30
    python examples/custom_surrogate.py --quick --out /tmp/csur          # 5 steps per pair, budget 6

Time on a laptop CPU: about 3 minutes (documented setting), about 40 s with ``--quick``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from tocsr_nas.surrogates import (
    SurrogateBlock,
    check_number,
    register_surrogate,
    transformer_dims,
    transformer_output,
)


@register_surrogate("lowrank_linear_attention")
class LowRankLinearAttention(SurrogateBlock):
    """Residual linear attention with rank-``r`` queries and keys, replacing a ``Transformer2DModel``.

    With tokens ``x_i`` (the GroupNorm-ed input pixels, ``N = H W`` of them, ``C`` channels),
    ``phi(u) = elu(u) + 1`` (positive features) and projections ``W_q, W_k: C -> r``,
    ``W_v, W_o: C -> C``:

    1. ``q_i = phi(W_q x_i)``, ``k_j = phi(W_k x_j)`` (``r`` channels), ``v_j = W_v x_j``.
    2. Softmax attention ``sum_j exp(q_i . k_j) v_j / sum_j exp(q_i . k_j)`` with the kernel
       ``exp(q . k)`` replaced by ``phi(q) . phi(k)`` factorises::

           y_i = q_i^T (sum_j k_j v_j^T) / (q_i^T sum_j k_j)

       ``S = sum_j k_j v_j^T`` (``r x C``) and ``z = sum_j k_j`` (``r``) are computed once, so the
       cost is ``O(N r C)`` rather than ``O(N^2 C)``.
    3. ``out = input + W_o y``; ``W_o`` starts at zero, so the untrained block is the identity
       (``skip``) and distillation only has to learn the correction.

    Cross-attention is dropped (the block ignores ``encoder_hidden_states``).

    Args:
        in_channels: channels of the block's input and output.
        rank: width of queries and keys.
        norm_num_groups: GroupNorm groups (the teacher's).
    """

    replaces = ("transformer",)  # the kinds of teacher block it can stand in for
    example_params = ({"rank": 4}, {"rank": 8})  # what the conformance kit builds

    @register_to_config
    def __init__(self, *, in_channels: int, rank: int, norm_num_groups: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        self.to_qk = nn.Linear(in_channels, 2 * rank, bias=False)
        self.to_v = nn.Linear(in_channels, in_channels, bias=False)
        self.to_out = nn.Linear(in_channels, in_channels)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    @classmethod
    def from_teacher(cls, block: nn.Module, *, rank: int = 8) -> LowRankLinearAttention:
        """Build for a teacher ``Transformer2DModel``; ``rank`` is the YAML parameter."""
        rank = check_number("lowrank_linear_attention", "rank", rank, integer=True, low=1)
        dims = transformer_dims(block)
        surrogate = cls(in_channels=dims.in_channels, rank=rank, norm_num_groups=dims.groups)
        surrogate.norm.load_state_dict(block.norm.state_dict())  # the teacher's input norm
        return surrogate

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        timestep: torch.LongTensor | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        class_labels: torch.LongTensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Any:
        batch, channels, height, width = hidden_states.shape  # (B, C, H, W)
        x = self.norm(hidden_states).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k = (nn.functional.elu(t) + 1.0 for t in self.to_qk(x).chunk(2, dim=-1))  # (B, N, r) each
        v = self.to_v(x)  # (B, N, C)
        state = k.transpose(1, 2) @ v  # S = sum_j k_j v_j^T: (B, r, C)
        norm = q @ k.sum(dim=1, keepdim=True).transpose(1, 2)  # q_i^T z: (B, N, 1)
        y = (q @ state) / (norm + 1e-6)  # (B, N, C)
        out = self.to_out(y).transpose(1, 2).reshape(batch, channels, height, width)  # (B, C, H, W)
        return transformer_output(hidden_states + out, return_dict)


SPACE_YAML = """\
name: linear-attention
rules:
  - name: attentions
    match: "*attentions.*"
    type: Transformer2DModel
    candidates:
      - skip
      - {type: lowrank_linear_attention, grid: {rank: [4, 8]}}
  - name: downsamplers
    match: "*downsamplers.*"
    candidates: [pool_down]
constraints:
  - {type: max_count, candidate: skip, count: 3}   # keep at least some attention
"""


def conformance() -> int:
    """Run every conformance check on every (micro teacher block, example params) case of the new type."""
    from tocsr_nas.surrogates.testing import conformance_cases, run_conformance

    cases = conformance_cases(types=["lowrank_linear_attention"])
    for case in cases:
        run_conformance(case)  # raises AssertionError naming the check that failed
    print(f"conformance kit: {len(cases)} cases passed ({', '.join(c.id for c in cases)})")
    return len(cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/custom_surrogate"), help="output folder (new or empty)")
    parser.add_argument("--quick", action="store_true", help="5 distillation steps, budget 6 (the test setting)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)  # fastest on a busy machine; remove on your own

    from tocsr_nas.search import prepare_search
    from tocsr_nas.teacher import shipped_teacher
    from tocsr_nas.stages.distill import DistillConfig, distill_teacher
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.searchspace import SpaceSpec

    conformance()

    teacher = shipped_teacher().eval()  # the trained tiny teacher (the preset with random weights if absent)
    candidates = CandidateCache()  # shared by the space check and the cost table: each candidate built once
    probe = teacher.unet_example_inputs(1, resolution=64)  # one forward pass checks every candidate's shapes
    space = build_space(teacher.unet, SpaceSpec.from_yaml(SPACE_YAML), probe=probe, candidates=candidates)
    print(space.summary())

    steps, samples, budget = (5, 16, 6) if args.quick else (150, 128, 30)
    config = DistillConfig(steps=steps, samples=samples, val_samples=8, capture_batch=16, batch_size=8)
    library = distill_teacher(teacher, space, args.out / "library", config, resume=True, progress=False)
    losses = library.losses()  # one row per (block, candidate): initial and final distillation loss
    print("mean held-out distillation loss per candidate (1.0 = predicting zeros):")
    print(losses.groupby("candidate")["final_loss"].mean().round(4).to_string())

    # the set-up of `tocsr-nas search`: cost table, validation set, supernet quality (no prior here)
    prepared = prepare_search(teacher=teacher, surrogates=library, space=space, candidates=candidates,
                              val_samples=4 if args.quick else 16, prior=False, cost_cache=args.out / "cache")
    result = prepared.search(epsilon=[0.05, 0.2], strategy="ecbo", budget=budget, seed=0,
                             out_dir=args.out / "search", progress=False)
    print(result.summary())
    if result.best is not None:
        chosen = [name for name in result.best.config.values() if name.startswith("lowrank")]
        print(f"best configuration uses linear attention in {len(chosen)} of {len(space)} blocks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
