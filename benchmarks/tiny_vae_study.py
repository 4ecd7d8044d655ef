"""Why the tiny teacher's VAE looks the way it does: cost, reference PSNRs and a normalisation ablation.

Prints three tables (one run, CPU only):

1. encoder + decoder GMACs at 128 px of a few ``AutoencoderKL`` widths (fvcore, attention counted);
2. reference PSNRs on the teacher's held-out patches (the 128 patches of 64 px that
   ``tocsr-nas teacher train`` reports its VAE PSNR on): bicubic x4 down and up, and a linear
   16-channel code (PCA of 4x4x3 pixel blocks fitted on training patches), which shows what a
   16-channel latent at factor 4 can hold;
3. with ``--train-steps N`` (default 1000; 0 skips it), the held-out PSNR of the shipped VAE
   architecture trained for N steps with ``norm_num_groups`` 8 and 1 (deterministic latents, the
   teacher's loss and batch), the ablation behind ``norm_num_groups=1``.

Usage: ``.venv/bin/python benchmarks/tiny_vae_study.py [--train-steps 1000]`` (about 4 CPU-minutes).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from tocsr_nas.teacher.data import PhotoDataset
from tocsr_nas.evaluators.complexity import count_complexity

WIDTHS = {  # name -> (block_out_channels, norm_num_groups, mid-block attention)
    "previous tiny teacher": ((32, 64, 64), 16, True),
    "(16, 32, 32)": ((16, 32, 32), 1, False),
    "shipped tiny teacher": ((8, 16, 32), 1, False),
}


def make_vae(channels: tuple[int, ...], groups: int, attention: bool, seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=channels, layers_per_block=1,
        latent_channels=16, norm_num_groups=groups, mid_block_add_attention=attention,
    )


class _Encode(torch.nn.Module):
    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode()


class _Decode(_Encode):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1], on the [0, 1] scale."""
    mse = ((x.clamp(-1, 1) - y) / 2).pow(2).mean()
    return float(-10 * torch.log10(mse))


def blocks(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B*H/4*W/4, 48): every 4x4 pixel block as a row."""
    return F.pixel_unshuffle(x, 4).permute(0, 2, 3, 1).reshape(-1, 48)


def pca_psnr(train: torch.Tensor, val: torch.Tensor, k: int = 16) -> float:
    rows = blocks(train)
    mean = rows.mean(0)
    _, _, v = torch.linalg.svd(rows - mean, full_matrices=False)
    basis = v[:k].T  # (48, k)
    b, _, h, w = val.shape
    rec = (blocks(val) - mean) @ basis @ basis.T + mean
    rec = F.pixel_shuffle(rec.reshape(b, h // 4, w // 4, 48).permute(0, 3, 1, 2), 4)
    return psnr(rec, val)


def train_psnr(groups: int, steps: int, train: PhotoDataset, val: torch.Tensor) -> float:
    channels, _, attention = WIDTHS["shipped tiny teacher"]
    vae = make_vae(channels, groups, attention)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    for step in range(steps):
        for g in opt.param_groups:  # warm-up 50 steps, cosine to 0
            g["lr"] = 2e-3 * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = train.random_batch(16, 32, seed=step)  # (16, 3, 32, 32)
        post = vae.encode(x).latent_dist
        x_hat = vae.decode(post.mode()).sample
        loss = F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x) + 1e-6 * post.kl().mean() / x[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
    vae.eval()
    with torch.no_grad():
        return psnr(vae.decode(vae.encode(val).latent_dist.mode()).sample, val)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-steps", type=int, default=1000, help="steps of the normalisation ablation (0: skip)")
    args = p.parse_args()
    torch.set_num_threads(1)

    print("1. AutoencoderKL cost at 128 px (GMACs, attention counted)")
    print("| VAE | block_out_channels | groups | mid attention | encode | decode | params |")
    print("|---|---|---|---|---|---|---|")
    for name, (channels, groups, attention) in WIDTHS.items():
        vae = make_vae(channels, groups, attention).eval()
        with torch.no_grad():
            enc = count_complexity(_Encode(vae), (torch.zeros(1, 3, 128, 128),))
            dec = count_complexity(_Decode(vae), (torch.zeros(1, 16, 32, 32),))
        params = sum(t.numel() for t in vae.parameters())
        print(f"| {name} | {channels} | {groups} | {attention} | {enc.gmacs:.3f} | {dec.gmacs:.3f} | {params / 1e6:.3f}M |")

    # the held-out patches of `tocsr-nas teacher train` (TrainConfig defaults: 128 patches of 64 px)
    train = PhotoDataset.from_skimage("train", val_fraction=0.25, seed=0, min_size=64)
    held_out = PhotoDataset.from_skimage("val", val_fraction=0.25, seed=0, min_size=64)
    per_image = math.ceil(128 / len(held_out))
    val = held_out.grid_patches(64, max_per_image=per_image)[:128]  # (128, 3, 64, 64)
    low = F.interpolate(val, scale_factor=0.25, mode="bicubic", antialias=True)
    print("\n2. Reference PSNRs on the held-out patches")
    print(f"bicubic x4 down and up: {psnr(F.interpolate(low, scale_factor=4, mode='bicubic'), val):.2f} dB")
    print(f"16-component PCA of 4x4 blocks: {pca_psnr(train.random_batch(512, 64, seed=1), val):.2f} dB")

    if args.train_steps > 0:
        print(f"\n3. Shipped VAE architecture after {args.train_steps} steps, by norm_num_groups")
        for groups in (8, 1):
            start = time.process_time()
            value = train_psnr(groups, args.train_steps, train, val)
            print(f"groups {groups}: {value:.2f} dB ({time.process_time() - start:.0f} CPU-s)")


if __name__ == "__main__":
    main()
