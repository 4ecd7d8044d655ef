"""The GP features of a configuration: one-hot, neighbour-pair, prior, per-block-scale and distant-pair columns.

:class:`ConfigFeatures` maps choice-index rows to the feature columns whose inner products are the
linear terms of ``ecbo``'s kernel (:mod:`~tocsr_nas.strategies.ecbo.kernel`), and splits linear
weights over those columns back into chain tables (:meth:`ConfigFeatures.decompose`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from tocsr_nas.searchspace import SearchSpace

__all__ = ["DTYPE", "ConfigFeatures"]

#: the dtype of every feature, kernel and GP tensor
DTYPE = torch.float64


class ConfigFeatures:
    """Turns choice-index matrices ``(N, B)`` into GP features ``(N, D)``.

    Columns: ``[phi1 (one-hot, D1) | phi2 (neighbour pairs, D2) | z (prior, 1) | phi_p (prior-scaled
    one-hot, D1, with a prior) | n (shared names, D3) | z2 (compounding, 1, with a prior) |
    r (per-block shape, D5 = B, with a block shape) | phi6 (distant pairs, D6, with far_pairs)]``.

    The distant-pair columns are the one-hot of every two blocks that are not neighbours
    (``b``, ``b'`` with ``b' > b + 1``) / sqrt(their number): interactions the chain cannot hold, such
    as a cell's link pattern that changes how every layer acts. They are left out of the chain
    tables (:meth:`decompose`), so a model using them is searched exactly by the GP's predictions
    and approximately by the chain DP.

    The per-block-shape columns ``r_b(x) = shape[b, x_b] * block_norm`` carry one weight per
    block: block ``b``'s damage is ``s_b * shape[b, x_b]``, one learned scale times a fixed
    shape (the fraction of the block's cost an option removes, or the prior itself), ``B``
    weights instead of the one-hot's ``sum_b K_b`` independent cells.

    Args:
        space: the search space (block order = model order).
        prior: optional ``path -> candidate -> damage``; missing entries take the block's mean.
        shared: include the counts of candidate names shared by several blocks.
        block_shape: optional ``path -> candidate -> shape`` (missing entries 0) for the
            per-block-scale columns, or ``"prior"``: the (normalised) prior table, so that each
            block's prior gets its own scale (:attr:`shape_is_prior`); ``None`` leaves them out.
    """

    def __init__(
        self,
        space: SearchSpace,
        prior: Mapping[str, Mapping[str, float]] | None = None,
        *,
        shared: bool = True,
        block_shape: Mapping[str, Mapping[str, float]] | Literal["prior"] | None = None,
        far_pairs: bool = False,
    ) -> None:
        self.card = np.array(space.cardinalities, dtype=np.int64)  # (B,)
        self.n_blocks = len(self.card)
        self.offsets = np.concatenate([[0], np.cumsum(self.card)[:-1]])  # (B,)
        self.d1 = int(self.card.sum())
        pair_sizes = self.card[:-1] * self.card[1:]  # (B-1,)
        self.pair_offsets = np.concatenate([[0], np.cumsum(pair_sizes)[:-1]]) if len(pair_sizes) else np.zeros(0, np.int64)
        self.d2 = int(pair_sizes.sum())
        self.has_prior = prior is not None
        self.prior_table = np.zeros((self.n_blocks, int(self.card.max())))  # (B, Kmax)
        if prior is not None:
            for b, block in enumerate(space.blocks):
                known = prior.get(block.path, {})
                fill = float(np.mean(list(known.values()))) if known else 0.0
                for k, name in enumerate(block.names):
                    self.prior_table[b, k] = float(known.get(name, 0.0 if k == 0 and not known else fill))
            worst = self.prior_table.max(axis=1).sum()
            if worst > 0:
                self.prior_table /= worst  # z in [0, 1]
        # the prior-scaled one-hot has |phi_p|^2 <= 1, like phi1
        sq = float((self.prior_table.max(axis=1) ** 2).sum())
        self.scaled_norm = 1.0 / math.sqrt(sq) if sq > 0 else 1.0
        # candidates named alike in different blocks (skip, half-width...) damage alike: count them
        names = sorted({n for b in space.blocks for n in b.names[1:]})
        self.name_id = np.full((self.n_blocks, int(self.card.max())), -1, dtype=np.int64)  # (B, Kmax)
        for b, block in enumerate(space.blocks):
            for k, n in enumerate(block.names):
                if k > 0:
                    self.name_id[b, k] = names.index(n)
        self.d3 = len(names) if shared and any((self.name_id == i).sum() > 1 for i in range(len(names))) else 0
        self.d_base = self.d1 + self.d2 + 1 + (self.d1 if self.has_prior else 0)
        # z2: summed geometric-mean prior damage of neighbouring pairs (compounding damage)
        self.d4 = 1 if self.has_prior and self.n_blocks > 1 else 0
        # r: per-block scale times a fixed shape (B columns, with a block shape)
        self.shape_table = np.zeros((self.n_blocks, int(self.card.max())))  # (B, Kmax)
        #: whether the per-block shape is the prior table (``block_shape="prior"``)
        self.shape_is_prior = isinstance(block_shape, str)
        if self.shape_is_prior:
            if block_shape != "prior" or prior is None:
                raise ValueError(f"block_shape must be a table, or 'prior' with a prior; got {block_shape!r}")
            self.shape_table = self.prior_table.copy()
        elif block_shape is not None:
            for b, block in enumerate(space.blocks):
                known = block_shape.get(block.path, {})
                for k, name in enumerate(block.names):
                    self.shape_table[b, k] = float(known.get(name, 0.0))
        self.d5 = self.n_blocks if block_shape is not None else 0
        sq5 = float((np.abs(self.shape_table).max(axis=1) ** 2).sum())
        self.block_norm = 1.0 / math.sqrt(sq5) if sq5 > 0 else 1.0  # |r|^2 <= 1, like phi1
        # phi6: one-hot of every non-neighbour pair of blocks (with far_pairs)
        self.far = [(a, b) for a in range(self.n_blocks) for b in range(a + 2, self.n_blocks)] if far_pairs else []
        self.far_a = np.array([a for a, _ in self.far], dtype=np.int64)
        self.far_b = np.array([b for _, b in self.far], dtype=np.int64)
        far_sizes = self.card[self.far_a] * self.card[self.far_b]  # (P,)
        self.far_offsets = np.concatenate([[0], np.cumsum(far_sizes)[:-1]]) if len(self.far) else np.zeros(0, np.int64)
        self.d6 = int(far_sizes.sum())
        d_r = self.d_base + self.d3 + self.d4 + self.d5
        self.dim = d_r + self.d6
        self.slice_s = list(range(self.d_base, self.d_base + self.d3))
        self.slice_z2 = list(range(self.d_base + self.d3, self.d_base + self.d3 + self.d4))
        self.slice_r = list(range(self.d_base + self.d3 + self.d4, d_r))
        self.slice_far = list(range(d_r, self.dim))
        root = np.sqrt(np.maximum(self.prior_table, 0.0))  # (B, Kmax)
        self.prior_pair_table = root[:-1, :, None] * root[1:, None, :]  # (B-1, Kmax, Kmax)
        self.slice1 = list(range(0, self.d1))
        self.slice2 = list(range(self.d1, self.d1 + self.d2))
        self.slice_z = [self.d1 + self.d2]
        self.slice_p = list(range(self.d1 + self.d2 + 1, self.d_base))  # prior-scaled one-hot

    def __call__(self, idx: np.ndarray) -> Tensor:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, self.n_blocks)  # (N, B)
        n = idx.shape[0]
        out = np.zeros((n, self.dim))
        rows = np.arange(n)[:, None]
        out[rows, self.offsets[None, :] + idx] = 1.0 / math.sqrt(self.n_blocks)
        if self.n_blocks > 1:
            pair = idx[:, :-1] * self.card[None, 1:] + idx[:, 1:]  # (N, B-1)
            out[rows, self.d1 + self.pair_offsets[None, :] + pair] = 1.0 / math.sqrt(self.n_blocks - 1)
        per_block = self.prior_table[np.arange(self.n_blocks)[None, :], idx]  # (N, B)
        out[:, self.slice_z[0]] = per_block.sum(axis=1)
        if self.has_prior:  # one-hot weighted by the prior damage: weights w = p * (s + noise)
            out[rows, self.slice_p[0] + self.offsets[None, :] + idx] = per_block * self.scaled_norm
        if self.d3:  # counts of each shared candidate name / sqrt(B)
            ids = self.name_id[np.arange(self.n_blocks)[None, :], idx]  # (N, B)
            for j in range(self.d3):
                out[:, self.d_base + j] = (ids == j).sum(axis=1) / math.sqrt(self.n_blocks)
        if self.d4:
            blocks = np.arange(self.n_blocks - 1)[None, :]
            out[:, self.slice_z2[0]] = self.prior_pair_table[blocks, idx[:, :-1], idx[:, 1:]].sum(axis=1)
        if self.d5:
            out[:, self.slice_r[0] : self.slice_r[-1] + 1] = self.shape_table[np.arange(self.n_blocks)[None, :], idx] * self.block_norm
        if self.d6:
            pair = idx[:, self.far_a] * self.card[None, self.far_b] + idx[:, self.far_b]  # (N, P)
            out[rows, self.slice_far[0] + self.far_offsets[None, :] + pair] = 1.0 / math.sqrt(len(self.far))
        return torch.as_tensor(out, dtype=DTYPE)

    def column_terms(self) -> dict[str, slice]:
        """Which feature columns belong to which linear kernel term."""
        out = {"additive": slice(0, self.d1), "pairs": slice(self.d1, self.d1 + self.d2),
               "prior": slice(self.d1 + self.d2, self.d1 + self.d2 + 1)}
        if self.has_prior:
            out["scaled"] = slice(self.slice_p[0], self.d_base)
        if self.d3:
            out["shared"] = slice(self.d_base, self.d_base + self.d3)
        if self.d4:
            out["prior_pairs"] = slice(self.slice_z2[0], self.slice_z2[0] + 1)
        if self.d5:
            out["block_scale"] = slice(self.slice_r[0], self.slice_r[-1] + 1)
        if self.d6:
            out["far_pairs"] = slice(self.slice_far[0], self.dim)
        return out

    def decompose(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Split linear weights over the feature columns into chain tables.

        Every feature column is a sum over blocks (one-hot, pair one-hot, summed prior, scaled
        one-hot, name counts) or belongs to one block (per-block shape), so ``features(x) @ w = sum_b U[b, x_b] + sum_b V[b, x_b, x_{b+1}]``
        for weights that are zero on the distant-pair columns; those columns are left out of the
        tables (a chain holds no distant pair).

        Args:
            w: weights ``(D, S)`` for ``S`` weight vectors.

        Returns:
            ``U`` ``(S, B, Kmax)`` (``inf`` where a block has fewer choices) and ``V``
            ``(S, max(B - 1, 0), Kmax, Kmax)`` (zero where invalid).
        """
        S, B, K = w.shape[1], self.n_blocks, int(self.card.max())
        w = w.detach().to(DTYPE)
        valid = torch.as_tensor(np.arange(K)[None, :] < self.card[:, None])  # (B, K)
        flat = torch.as_tensor(np.where(valid.numpy(), self.offsets[:, None] + np.arange(K)[None, :], 0))  # (B, K)
        U = w[flat.reshape(-1)].T.reshape(S, B, K) / math.sqrt(B)  # additive one-hot
        prior = torch.as_tensor(self.prior_table, dtype=DTYPE)  # (B, K)
        U = U + w[self.d1 + self.d2][:, None, None] * prior[None]  # s * z(x)
        if self.has_prior:
            U = U + w[self.slice_p[0] + flat.reshape(-1)].T.reshape(S, B, K) * (prior * self.scaled_norm)[None]
        if self.d3:
            ids = torch.as_tensor(np.maximum(self.name_id, 0))
            shared = w[self.d_base + ids.reshape(-1)].T.reshape(S, B, K) / math.sqrt(B)
            U = U + torch.where(torch.as_tensor(self.name_id >= 0)[None], shared, torch.zeros((), dtype=DTYPE))
        if self.d5:  # s_b * shape[b, k]
            shape = torch.as_tensor(self.shape_table * self.block_norm, dtype=DTYPE)  # (B, K)
            U = U + w[self.slice_r[0] : self.slice_r[-1] + 1].T[:, :, None] * shape[None]
        U = torch.where(valid[None], U, torch.full((), math.inf, dtype=DTYPE))
        V = torch.zeros((S, max(B - 1, 0), K, K), dtype=DTYPE)
        for b in range(B - 1):
            kb, kn = int(self.card[b]), int(self.card[b + 1])
            cols = self.d1 + int(self.pair_offsets[b]) + np.arange(kb * kn)
            V[:, b, :kb, :kn] = w[cols].T.reshape(S, kb, kn) / math.sqrt(B - 1)
        if self.d4:
            V = V + w[self.slice_z2[0]][:, None, None, None] * torch.as_tensor(self.prior_pair_table, dtype=DTYPE)[None]
        return U, V
