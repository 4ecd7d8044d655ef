"""The teacher: a 16-channel-latent diffusion model built from diffusers components.

A :class:`Teacher` bundles an :class:`~diffusers.AutoencoderKL` whose latent has 16 channels, a
:class:`~diffusers.UNet2DConditionModel` denoiser, a diffusers noise scheduler and a
:class:`NullContext`.

**How cross-attention is fed.** Super-resolution needs no text, but a text-conditioned UNet's
cross-attention layers need *some* ``encoder_hidden_states``. Instead of a text encoder, the
teacher owns a learned *null context*: one parameter tensor ``(1, L, D)`` (``L`` tokens of the
UNet's ``cross_attention_dim`` ``D``) that is expanded over the batch and fed to every
cross-attention layer. It is trained together with the UNet, costs nothing at inference beyond
the cross-attention itself, and keeps the UNet architecture (and so its complexity) exactly that
of the text-conditioned original. Later, the SR stage conditions on the low-resolution image by
other means; the null context stays. Get it with :meth:`Teacher.encoder_hidden_states`.

Presets live in :mod:`tocsr_nas.teacher.presets`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from safetensors import SafetensorError
from torch import nn

from tocsr_nas._io import (
    atomic_write_json,
    atomic_write_text,
    one_line,
    read_json,
    replace_dir,
    temporary_dir,
    verify_records,
    weight_records,
)
from tocsr_nas.errors import TocsrError
from tocsr_nas.locks import locks_folder

__all__ = [
    "NullContext",
    "Teacher",
    "TeacherLoadError",
    "LATENT_CHANNELS",
]

logger = logging.getLogger(__name__)

#: channels of the teacher's latent space (TOC-SR: richer latents matter more for SR)
LATENT_CHANNELS = 16
#: the components of a teacher folder, each a sub-folder in diffusers' ``save_pretrained`` layout
COMPONENTS = ("vae", "unet", "scheduler", "context")
#: null-context length used when a user's folder has no ``context/`` (CLIP's sequence length)
DEFAULT_CONTEXT_TOKENS = 77
_SAVING_MARKER = ".saving"


class TeacherLoadError(TocsrError):
    """A teacher folder is missing, incomplete or unreadable."""


class NullContext(ModelMixin, ConfigMixin):
    """A learned null text embedding that feeds every cross-attention layer of the UNet.

    Args:
        num_tokens: sequence length ``L`` of the context.
        dim: width ``D``, the UNet's ``cross_attention_dim``.
        init_std: standard deviation of the normal initialisation (0 gives zeros).

    Example:
        >>> ctx = NullContext(num_tokens=4, dim=64)
        >>> ctx(3).shape
        torch.Size([3, 4, 64])
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, num_tokens: int = 77, dim: int = 1024, init_std: float = 0.02) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(1, num_tokens, dim) * init_std)  # (1, L, D)

    def forward(self, batch_size: int) -> torch.Tensor:
        """Return the context expanded over the batch, ``(B, L, D)`` (a view, no copy)."""
        return self.embedding.expand(batch_size, -1, -1)


@dataclass
class Teacher:
    """A latent diffusion teacher: VAE (16-channel latent), UNet, scheduler and null context.

    Attributes:
        vae: the autoencoder; ``encode``/``decode`` apply its ``scaling_factor``.
        unet: the denoiser, called as ``unet(sample, timestep, encoder_hidden_states=...)``.
        scheduler: a diffusers scheduler (``DDPMScheduler`` for the presets) with ``add_noise``.
        context: the learned null context.
        preset: the preset name it was built from, or ``None``.
    """

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: SchedulerMixin
    context: NullContext
    preset: str | None = None

    # ------------------------------------------------------------------ geometry
    @property
    def vae_scale_factor(self) -> int:
        """Spatial downsampling of the VAE: ``2 ** (levels - 1)``."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels of the latent (16 for every preset)."""
        return int(self.vae.config.latent_channels)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def unet_downsamplings(self) -> int:
        """How many times the UNet halves its input (``len(down_block_types) - 1``)."""
        blocks = getattr(getattr(self.unet, "config", None), "down_block_types", None)
        if blocks is not None:
            return len(blocks) - 1
        return sum(1 for name, _ in self.unet.named_modules() if name.endswith("downsamplers.0"))

    def latent_size(self, px: int) -> int:
        """Side of the latent for an image side of ``px`` pixels.

        The side must fit the whole network: a positive multiple of ``m = f 2^d`` (the VAE factor
        ``f`` times one halving per UNet downsampling ``d``), so that every level halves exactly and
        every candidate of a block sees the same sizes (odd sides round differently in a strided
        convolution and a pooling, and the skip connections no longer match).

        Raises:
            TocsrError: if ``px`` does not fit.
        """
        f, d = self.vae_scale_factor, self.unet_downsamplings
        m = f * 2**d
        if isinstance(px, bool) or not isinstance(px, numbers.Integral) or px < m or px % m:
            raise TocsrError(
                f"resolution {px} px does not fit the teacher: it must be a positive multiple of the VAE factor {f} "
                f"times 2^{d} (its UNet downsamplings) = {m} px"
            )
        return px // f

    @property
    def default_resolution(self) -> int:
        """The image side the preset is designed for (the VAE's ``sample_size``)."""
        size = self.vae.config.sample_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    # ------------------------------------------------------------------ inputs
    def encoder_hidden_states(self, batch: int) -> torch.Tensor:
        """The null context for a batch, ``(B, L, D)``."""
        return self.context(batch)

    def unet_example_inputs(
        self, batch: int = 1, resolution: int | None = None, seed: int = 0
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
        """Deterministic inputs for ``unet(*args, **kwargs)`` (e.g. for fvcore or capture).

        Args:
            batch: batch size ``B``.
            resolution: image side in pixels (default: :attr:`default_resolution`).
            seed: seed of the random latent.

        Returns:
            ``((sample (B, 16, h, w), timestep (B,)), {"encoder_hidden_states": (B, L, D),
            "return_dict": False})``, on the UNet's device and dtype.
        """
        h = self.latent_size(resolution or self.default_resolution)
        gen = torch.Generator().manual_seed(seed)
        sample = torch.randn(batch, self.unet.config.in_channels, h, h, generator=gen)  # (B, C, h, w)
        sample = sample.to(self.device, self.dtype)
        t = self.scheduler.config.num_train_timesteps // 2
        timestep = torch.full((batch,), t, dtype=torch.long, device=self.device)  # (B,)
        with torch.no_grad():
            ehs = self.encoder_hidden_states(batch).to(self.device, self.dtype).clone()  # (B, L, D)
        return (sample, timestep), {"encoder_hidden_states": ehs, "return_dict": False}

    # ------------------------------------------------------------------ VAE
    def encode(
        self, images: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images in ``[-1, 1]`` ``(B, 3, H, W)`` -> scaled latents ``(B, 16, H/f, W/f)``.

        ``z = (mu - shift) * scaling_factor`` with ``mu`` the posterior mode (deterministic,
        default) or a posterior sample (``sample=True``, as in training).
        """
        dist = self.vae.encode(images.to(self.vae.device, self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()  # (B, 16, h, w)
        shift = self.vae.config.get("shift_factor") or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, 16, h, w)`` -> images ``(B, 3, h*f, w*f)`` (about ``[-1, 1]``)."""
        shift = self.vae.config.get("shift_factor") or 0.0
        z = latents.to(self.vae.device, self.vae.dtype) / self.vae.config.scaling_factor + shift
        return self.vae.decode(z).sample

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """A short stable hash of the denoising model: UNet and null context weights and
        configs, the VAE's weights and config, and the scheduler config.

        Equal before and after :meth:`save` / :meth:`load`; differs after any weight changes.
        Libraries of distilled surrogates record it to refuse another teacher.

        Returns:
            The first 16 hex digits of a SHA-256.
        """
        h = hashlib.sha256()
        for name, part in (("unet", self.unet), ("context", self.context), ("vae", self.vae)):
            h.update(f"[{name}]".encode())
            h.update(_canonical_config(part.config).encode())
            for key, tensor in sorted(part.state_dict().items()):
                t = tensor.detach().to("cpu").contiguous()
                h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        h.update(b"[scheduler]")
        h.update(_canonical_config(self.scheduler.config).encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ modes
    def modules(self) -> dict[str, nn.Module]:
        """The ``nn.Module`` components by folder name."""
        return {"vae": self.vae, "unet": self.unet, "context": self.context}

    def eval(self) -> Teacher:
        """Put every module in eval mode; returns ``self``."""
        for m in self.modules().values():
            m.eval()
        return self

    def requires_grad_(self, flag: bool = True) -> Teacher:
        """Set ``requires_grad`` on every parameter; returns ``self``."""
        for m in self.modules().values():
            m.requires_grad_(flag)
        return self

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Teacher:
        """Move every module (in place); returns ``self``."""
        kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        for m in self.modules().values():
            m.to(**kwargs)
        return self

    # ------------------------------------------------------------------ disk
    @locks_folder("directory")
    def save(self, directory: str | Path) -> Path:
        """Save in diffusers' folder layout: ``vae/``, ``unet/``, ``scheduler/``, ``context/``
        (each via ``save_pretrained`` / ``save_config``, safetensors) plus ``teacher.json``, which
        records the size and sha256 of every weights file (``files``; :meth:`load` checks them).

        Other files in ``directory`` (metrics, training checkpoints) are kept. Each component is
        written to a temporary folder inside ``directory`` and renamed into place; a ``.saving``
        marker exists while components are swapped, so :meth:`load` refuses a half-saved folder
        instead of mixing old and new weights.

        Args:
            directory: the teacher folder (created if missing).

        Returns:
            The folder.
        """
        directory = Path(directory)
        marker = directory / _SAVING_MARKER
        with temporary_dir(directory, prefix=".teacher.tmp-") as staging:
            self.vae.save_pretrained(staging / "vae", safe_serialization=True)
            self.unet.save_pretrained(staging / "unet", safe_serialization=True)
            self.context.save_pretrained(staging / "context", safe_serialization=True)
            self.scheduler.save_config(staging / "scheduler")
            fingerprint = self.fingerprint()
            atomic_write_text(marker, "a save is in progress or was interrupted; save again\n")
            (directory / "teacher.json").unlink(missing_ok=True)
            for name in COMPONENTS:
                replace_dir(staging / name, directory / name)
            meta = {
                "preset": self.preset,
                "fingerprint": fingerprint,
                "latent_channels": self.latent_channels,
                "vae_scale_factor": self.vae_scale_factor,
                "unet_params": sum(p.numel() for p in self.unet.parameters()),
                "diffusers_version": diffusers.__version__,
                "files": weight_records(directory, COMPONENTS),
            }
            atomic_write_json(directory / "teacher.json", meta)
            marker.unlink()
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> Teacher:
        """Load a teacher folder written by :meth:`save`, or any diffusers-format folder.

        ``vae/``, ``unet/`` and ``scheduler/`` are required. ``context/`` is optional: without it
        a zero null context of ``77 x unet.config.cross_attention_dim`` is created (zeros are
        what an untrained or unconditional context means; the UNet sees the same thing at every
        step) and a message is logged.

        Args:
            directory: the folder.
            device: where to put the modules.

        Returns:
            The teacher, in eval mode.

        Raises:
            TeacherLoadError: the folder is missing, incomplete, half-saved, unreadable, or holds
                pickled (``.bin``) weights instead of safetensors.
            DamagedFileError: ``teacher.json`` is damaged, or a weights file differs from the size
                and sha256 it records (a folder saved before they were recorded is not checked).
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise TeacherLoadError(f"teacher folder not found: {directory}")
        if (directory / _SAVING_MARKER).exists():
            raise TeacherLoadError(f"teacher folder {directory} holds an interrupted save; save it again")
        needed = {"vae": "config.json", "unet": "config.json", "scheduler": "scheduler_config.json"}
        missing = [f"{sub}/{cfg}" for sub, cfg in needed.items() if not (directory / sub / cfg).is_file()]
        if missing:
            raise TeacherLoadError(
                f"teacher folder {directory} is incomplete: missing {', '.join(missing)} "
                "(expected diffusers layout with vae/, unet/, scheduler/ and optionally context/)"
            )
        meta_path = directory / "teacher.json"
        meta = read_json(meta_path) if meta_path.is_file() else {}
        if not isinstance(meta, dict):
            raise TeacherLoadError(f"{meta_path} is not a teacher description (a JSON object)")
        verify_records(directory, meta.get("files"), meta_path)
        has_context = (directory / "context" / "config.json").is_file()
        for sub in ("vae", "unet", *(("context",) if has_context else ())):
            _require_safetensors(directory / sub)
        try:
            vae = AutoencoderKL.from_pretrained(
                directory, subfolder="vae", low_cpu_mem_usage=False, use_safetensors=True
            )
            unet = UNet2DConditionModel.from_pretrained(
                directory, subfolder="unet", low_cpu_mem_usage=False, use_safetensors=True
            )
            scheduler = _load_scheduler(directory / "scheduler")
            if has_context:
                context = NullContext.from_pretrained(
                    directory, subfolder="context", low_cpu_mem_usage=False, use_safetensors=True
                )
            else:
                dim = _cross_attention_dim(unet, directory)
                logger.info(
                    "%s has no context/: using a zero null context of %d x %d", directory, DEFAULT_CONTEXT_TOKENS, dim
                )
                context = NullContext(num_tokens=DEFAULT_CONTEXT_TOKENS, dim=dim, init_std=0.0)
        except (OSError, ValueError, KeyError, json.JSONDecodeError, SafetensorError) as exc:
            raise TeacherLoadError(f"cannot load teacher from {directory}: {one_line(exc)}") from exc
        if int(vae.config.latent_channels) != int(unet.config.in_channels):
            raise TeacherLoadError(
                f"teacher folder {directory}: the VAE's latent has {vae.config.latent_channels} channels "
                f"but the UNet takes {unet.config.in_channels}"
            )
        teacher = cls(vae=vae, unet=unet, scheduler=scheduler, context=context, preset=meta.get("preset"))
        return teacher.to(device).eval()


def _require_safetensors(folder: Path) -> None:
    """Refuse a component folder whose weights are pickled (``.bin``, ``.pt``...) instead of safetensors."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
    if pickled:
        raise TeacherLoadError(
            f"{folder / pickled[0]} holds pickled weights, which tocsr-nas does not load; "
            "convert the folder to safetensors (save_pretrained(..., safe_serialization=True))"
        )


def _canonical_config(config: Any) -> str:
    """Config as canonical JSON, without diffusers' private keys (``_class_name``, versions, paths)."""
    clean = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    return json.dumps(clean, sort_keys=True, default=str, separators=(",", ":"))


def _load_scheduler(folder: Path) -> SchedulerMixin:
    cfg = read_json(folder / "scheduler_config.json")
    cls = getattr(diffusers, str(cfg.get("_class_name", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin) and hasattr(cls, "add_noise")):
        raise TeacherLoadError(f"{folder}: unsupported scheduler class {cfg.get('_class_name')!r}")
    return cls.from_config(cfg)


def _cross_attention_dim(unet: UNet2DConditionModel, directory: Path) -> int:
    dim = unet.config.cross_attention_dim
    if isinstance(dim, (list, tuple)):
        if len(set(dim)) != 1:
            raise TeacherLoadError(f"{directory}: per-block cross_attention_dim {dim} needs a context/ folder")
        dim = dim[0]
    return int(dim)
