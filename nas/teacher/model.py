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

**Any diffusers denoiser.** ``Teacher.load`` also reads a diffusers pipeline folder
(``model_index.json``; text encoders may be ``null``) whose denoiser is any family a registered
:mod:`~tocsr_nas.teacher.adapters` adapter handles: pixel-space ``UNet2DModel`` (no VAE: ``vae`` is
``None`` and ``encode``/``decode`` are the identity), ``UNet2DConditionModel`` of any latent width
and conditioning, DiT and PixArt transformers. The attribute ``unet`` holds the denoiser whatever
its family; :attr:`Teacher.adapter` knows how to call it (:meth:`Teacher.denoiser_call`).
"""


from __future__ import annotations

import hashlib
import json
import logging
import numbers
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL
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
from tocsr_nas.teacher.adapters import DenoiserAdapter, UnsupportedModelError, adapter_for

__all__ = [
    "NullContext",
    "PooledNullContext",
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


def _normal(*shape: int, std: float) -> torch.Tensor:
    return torch.randn(*shape) * std if std else torch.zeros(*shape)


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
        # exact zeros for init_std=0 (randn * 0 holds signed zeros, whose bytes - and so the teacher's
        # fingerprint - would differ from one load to the next)
        self.embedding = nn.Parameter(_normal(1, num_tokens, dim, std=init_std))  # (1, L, D)

    def forward(self, batch_size: int) -> torch.Tensor:
        """Return the context expanded over the batch, ``(B, L, D)`` (a view, no copy)."""
        return self.embedding.expand(batch_size, -1, -1)


class PooledNullContext(NullContext):
    """A :class:`NullContext` plus a learned null pooled embedding (SDXL's ``text_embeds``).

    Args:
        num_tokens: sequence length ``L`` of the context.
        dim: width ``D`` of the context.
        pooled_dim: width ``P`` of the pooled embedding.
        init_std: standard deviation of the normal initialisation (0 gives zeros).
    """

    @register_to_config
    def __init__(self, num_tokens: int = 77, dim: int = 1024, pooled_dim: int = 1280, init_std: float = 0.02) -> None:
        super().__init__(num_tokens=num_tokens, dim=dim, init_std=init_std)
        self.pooled_embedding = nn.Parameter(_normal(1, pooled_dim, std=init_std))  # (1, P)

    def pooled(self, batch_size: int) -> torch.Tensor:
        """The pooled embedding expanded over the batch, ``(B, P)``."""
        return self.pooled_embedding.expand(batch_size, -1)


def null_context_for(adapter: DenoiserAdapter, init_std: float = 0.02) -> NullContext | None:
    """A fresh null context of the shape the denoiser expects, or ``None`` when it needs none."""
    shape, pooled = adapter.context_shape(), adapter.pooled_dim()
    if shape is None and pooled is None:
        return None
    tokens, dim = shape or (1, 1)
    if pooled is not None:
        return PooledNullContext(num_tokens=tokens, dim=dim, pooled_dim=pooled, init_std=init_std)
    return NullContext(num_tokens=tokens, dim=dim, init_std=init_std)


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

    vae: AutoencoderKL | None
    unet: nn.Module
    scheduler: SchedulerMixin
    context: NullContext | None
    preset: str | None = None
    #: the fingerprint of the float32 weights, recorded by the first move to a lower precision
    _float32_fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def adapter(self) -> DenoiserAdapter:
        """How to call :attr:`unet` (see :mod:`tocsr_nas.teacher.adapters`)."""
        return adapter_for(self.unet)(self.unet, self.vae_scale_factor)

    @property
    def family(self) -> str:
        """The denoiser's family (``unet``, ``unet2d``, ``dit``, ``pixart``...)."""
        return adapter_for(self.unet).family

    # ------------------------------------------------------------------ geometry
    @property
    def vae_scale_factor(self) -> int:
        """Spatial downsampling of the VAE: ``2 ** (levels - 1)`` (1 without a VAE)."""
        if self.vae is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels of the latent (16 for every preset; the image's without a VAE)."""
        if self.vae is None:
            return int(self.unet.config.in_channels)
        return int(self.vae.config.latent_channels)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def unet_downsamplings(self) -> int:
        """How many times the UNet halves its input (``len(down_block_types) - 1``); for a
        transformer, ``log2`` of its patch size."""
        return max(0, int(self.adapter.multiple).bit_length() - 1)

    @property
    def probe_resolution(self) -> int:
        """A small image side that fits the network (shape checks of ``build_space``)."""
        return self.vae_scale_factor * max(8, self.adapter.multiple)

    def latent_size(self, px: int) -> int:
        """Side of the latent for an image side of ``px`` pixels.

        The side must fit the whole network: a positive multiple of ``m = f 2^d`` (the VAE factor
        ``f`` times one halving per UNet downsampling ``d``), so that every level halves exactly and
        every candidate of a block sees the same sizes (odd sides round differently in a strided
        convolution and a pooling, and the skip connections no longer match).

        Raises:
            TocsrError: if ``px`` does not fit.
        """
        f, k = self.vae_scale_factor, self.adapter.multiple
        m = f * k
        if isinstance(px, bool) or not isinstance(px, numbers.Integral) or px < m or px % m:
            what = f"2^{self.unet_downsamplings} (its UNet downsamplings)" if self.family.startswith("unet") else f"{k} (its patch size)"
            raise TocsrError(
                f"resolution {px} px does not fit the teacher: it must be a positive multiple of the VAE factor {f} "
                f"times {what} = {m} px"
            )
        return px // f

    @property
    def default_resolution(self) -> int:
        """The image side the preset is designed for (the VAE's ``sample_size``; without a VAE,
        the denoiser's ``sample_size``)."""
        if self.vae is None:
            return self.adapter.sample_size * self.vae_scale_factor
        size = self.vae.config.sample_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    # ------------------------------------------------------------------ inputs
    def encoder_hidden_states(self, batch: int) -> torch.Tensor | None:
        """The null context for a batch, ``(B, L, D)`` (``None`` for a denoiser without one)."""
        return None if self.context is None else self.context(batch)

    def denoiser_call(self, sample: torch.Tensor, timestep: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` of one denoiser call on ``sample (B, C, h, w)`` at ``timestep (B,)``,
        with the conditioning the adapter synthesises (null context, SDXL ids, null class).
        The call returns a tuple (``return_dict=False``)."""
        b = sample.shape[0]
        with torch.no_grad():
            ctx = self.encoder_hidden_states(b)
            ctx = None if ctx is None else ctx.to(sample.device, sample.dtype).clone()
            pooled = self.context.pooled(b).to(sample.device, sample.dtype).clone() if isinstance(self.context, PooledNullContext) else None
        return self.adapter.call(sample, timestep, ctx, pooled)

    def denoiser_forward(self, model: nn.Module) -> Any:
        """``forward(x_t, t, context) -> eps_hat`` for the quality evaluators, calling ``model`` (the
        teacher's denoiser, a supernet or an assembled copy) as the teacher's denoiser is called.
        ``context`` is ignored: the teacher's own conditioning is used."""
        adapter = self.adapter

        def forward(x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
            args, kwargs = self.denoiser_call(x_t, t)
            return adapter.eps(model(*args, **kwargs))  # (b, C, h, w)

        return forward

    def validation_context(self) -> torch.Tensor:
        """The ``(1, L, D)`` context a validation set records (``(1, 1, 1)`` zeros without one)."""
        ctx = self.encoder_hidden_states(1)
        return torch.zeros(1, 1, 1, device=self.device, dtype=self.dtype) if ctx is None else ctx.detach().clone()

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
            "return_dict": False})`` for a UNet2DConditionModel, on the UNet's device and dtype
            (other families: :meth:`denoiser_call`).
        """
        h = self.latent_size(resolution or self.default_resolution)
        gen = torch.Generator().manual_seed(seed)
        sample = torch.randn(batch, self.adapter.in_channels, h, h, generator=gen)  # (B, C, h, w)
        sample = sample.to(self.device, self.dtype)
        t = self.scheduler.config.num_train_timesteps // 2
        timestep = torch.full((batch,), t, dtype=torch.long, device=self.device)  # (B,)
        return self.denoiser_call(sample, timestep)

    # ------------------------------------------------------------------ VAE
    def encode(
        self, images: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images in ``[-1, 1]`` ``(B, 3, H, W)`` -> scaled latents ``(B, 16, H/f, W/f)``.

        ``z = (mu - shift) * scaling_factor`` with ``mu`` the posterior mode (deterministic,
        default) or a posterior sample (``sample=True``, as in training). Without a VAE: the images.
        """
        if self.vae is None:
            return images.to(self.device, self.dtype)
        dist = self.vae.encode(images.to(self.vae.device, self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()  # (B, 16, h, w)
        shift = self.vae.config.get("shift_factor") or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, 16, h, w)`` -> images ``(B, 3, h*f, w*f)`` (about ``[-1, 1]``)."""
        if self.vae is None:
            return latents
        shift = self.vae.config.get("shift_factor") or 0.0
        z = latents.to(self.vae.device, self.vae.dtype) / self.vae.config.scaling_factor + shift
        return self.vae.decode(z).sample

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """A short stable hash of the denoising model: UNet and null context weights and
        configs, the VAE's weights and config, and the scheduler config.

        Equal before and after :meth:`save` / :meth:`load`; differs after any weight changes.
        Libraries of distilled surrogates record it to refuse another teacher. A teacher moved to a
        lower precision (:meth:`to` with ``bfloat16`` / ``float16``) keeps the fingerprint of the
        float32 weights it was moved from: it is the same teacher computed in another precision, and
        a library distilled with ``--dtype bfloat16`` serves a float32 search of it.

        Returns:
            The first 16 hex digits of a SHA-256.
        """
        if self._float32_fingerprint is not None and self.dtype != torch.float32:
            return self._float32_fingerprint
        h = hashlib.sha256()
        parts = (("unet", self.unet), ("context", self.context), ("vae", self.vae))
        for name, part in ((n, p) for n, p in parts if p is not None):
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
        """The ``nn.Module`` components by folder name (those present)."""
        parts = {"vae": self.vae, "unet": self.unet, "context": self.context}
        return {k: v for k, v in parts.items() if v is not None}

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
        """Move every module (in place); returns ``self``.

        The first move from float32 to another dtype records the float32 weights' fingerprint
        (:meth:`fingerprint`), since the rounded weights would hash differently.
        """
        kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        if dtype is not None and dtype != torch.float32 and self.dtype == torch.float32:
            self._float32_fingerprint = self.fingerprint()
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
            for name, module in self.modules().items():
                module.save_pretrained(staging / name, safe_serialization=True)
            self.scheduler.save_config(staging / "scheduler")
            fingerprint = self.fingerprint()
            atomic_write_text(marker, "a save is in progress or was interrupted; save again\n")
            (directory / "teacher.json").unlink(missing_ok=True)
            for name in COMPONENTS:
                if (staging / name).is_dir():
                    replace_dir(staging / name, directory / name)
                elif (directory / name).is_dir():  # a component this teacher does not have
                    shutil.rmtree(directory / name)
            present = tuple(n for n in COMPONENTS if (directory / n).is_dir())
            meta = {
                "preset": self.preset,
                "family": self.family,
                "fingerprint": fingerprint,
                "latent_channels": self.latent_channels,
                "vae_scale_factor": self.vae_scale_factor,
                "unet_params": sum(p.numel() for p in self.unet.parameters()),
                "diffusers_version": diffusers.__version__,
                "files": weight_records(directory, present),
            }
            atomic_write_json(directory / "teacher.json", meta)
            marker.unlink()
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> Teacher:
        """Load a teacher folder written by :meth:`save`, or a diffusers folder or pipeline.

        Two layouts are read:

        * the toolkit's: ``unet/`` (the denoiser, any supported family), ``scheduler/``, and
          optionally ``vae/`` (none: a pixel-space denoiser) and ``context/``;
        * a diffusers pipeline (``model_index.json``): the denoiser in ``unet/`` or
          ``transformer/``, ``scheduler/``, ``vae/`` when listed; text encoders and tokenizers are
          not loaded (they may be ``null``).

        Without ``context/``, a denoiser that needs conditioning gets a zero null context of the
        shape it expects (see :mod:`~tocsr_nas.teacher.adapters`; zeros are what an untrained or
        unconditional context means) and a message is logged.

        Args:
            directory: the folder.
            device: where to put the modules.

        Returns:
            The teacher, in eval mode.

        Raises:
            TeacherLoadError: the folder is missing, incomplete, half-saved, unreadable, or holds
                pickled (``.bin``) weights instead of safetensors.
            UnsupportedModelError: the denoiser is of a family no adapter handles, or does not run
                on its synthesised inputs (the message names the supported classes).
            DamagedFileError: ``teacher.json`` is damaged, or a weights file differs from the size
                and sha256 it records (a folder saved before they were recorded is not checked).
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise TeacherLoadError(f"teacher folder not found: {directory}")
        if (directory / _SAVING_MARKER).exists():
            raise TeacherLoadError(f"teacher folder {directory} holds an interrupted save; save it again")
        denoiser_dir, vae_dir = _layout(directory)
        meta_path = directory / "teacher.json"
        meta = read_json(meta_path) if meta_path.is_file() else {}
        if not isinstance(meta, dict):
            raise TeacherLoadError(f"{meta_path} is not a teacher description (a JSON object)")
        verify_records(directory, meta.get("files"), meta_path)
        has_context = (directory / "context" / "config.json").is_file()
        for sub in (denoiser_dir, vae_dir, *(("context",) if has_context else ())):
            if sub is not None:
                _require_safetensors(directory / sub)
        denoiser_cfg = read_json(directory / denoiser_dir / "config.json")
        class_name = str(denoiser_cfg.get("_class_name", "UNet2DConditionModel")) if isinstance(denoiser_cfg, dict) else "?"
        adapter_cls = adapter_for(class_name, denoiser_cfg if isinstance(denoiser_cfg, dict) else {})
        try:
            vae = None
            if vae_dir is not None:
                vae = AutoencoderKL.from_pretrained(directory, subfolder=vae_dir, low_cpu_mem_usage=False, use_safetensors=True)
            unet = adapter_cls.model_class(class_name).from_pretrained(
                directory, subfolder=denoiser_dir, low_cpu_mem_usage=False, use_safetensors=True
            )
            scheduler = _load_scheduler(directory / "scheduler")
            if has_context:
                ctx_cfg = read_json(directory / "context" / "config.json")
                ctx_cls = PooledNullContext if ctx_cfg.get("_class_name") == PooledNullContext.__name__ else NullContext
                context = ctx_cls.from_pretrained(directory, subfolder="context", low_cpu_mem_usage=False, use_safetensors=True)
            else:
                context = null_context_for(adapter_cls(unet), init_std=0.0)
                if context is not None:
                    logger.info("%s has no context/: using a zero null context of %s", directory, tuple(context.embedding.shape[1:]))
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError, SafetensorError) as exc:
            raise TeacherLoadError(f"cannot load teacher from {directory}: {one_line(exc)}") from exc
        in_channels = int(unet.config.in_channels)
        if vae is not None and int(vae.config.latent_channels) != in_channels:
            raise TeacherLoadError(
                f"teacher folder {directory}: the VAE's latent has {vae.config.latent_channels} channels "
                f"but the denoiser takes {in_channels}"
            )
        teacher = cls(vae=vae, unet=unet, scheduler=scheduler, context=context, preset=meta.get("preset"))
        teacher = teacher.to(device).eval()
        if meta.get("fingerprint") is None:  # a foreign folder: check once that the denoiser runs
            teacher.check_runs()
        return teacher

    def check_runs(self) -> None:
        """Run the denoiser once on its synthesised inputs at :attr:`probe_resolution`.

        Raises:
            UnsupportedModelError: the call fails (one line naming the class and the supported ones).
        """
        from tocsr_nas.teacher.adapters import supported_classes

        try:
            args, kwargs = self.unet_example_inputs(1, resolution=self.probe_resolution)
            with torch.no_grad():
                self.adapter.eps(self.unet(*args, **kwargs))
        except TocsrError:
            raise
        except Exception as exc:  # any failure of a foreign model on its synthesised inputs
            raise UnsupportedModelError(
                f"cannot run the denoiser {type(self.unet).__name__} on synthesised inputs ({type(exc).__name__}: "
                f"{one_line(exc)}); supported: {', '.join(supported_classes())}"
            ) from None


def _layout(directory: Path) -> tuple[str, str | None]:
    """``(denoiser subfolder, VAE subfolder or None)`` of a toolkit folder or a diffusers pipeline."""
    index_path = directory / "model_index.json"
    if index_path.is_file():
        index = read_json(index_path)
        if not isinstance(index, dict):
            raise TeacherLoadError(f"{index_path} is not a diffusers pipeline index (a JSON object)")
        listed = [k for k in ("unet", "transformer") if isinstance(index.get(k), list) and index[k][-1]]
        if not listed:
            raise TeacherLoadError(f"{index_path} lists no denoiser (a 'unet' or 'transformer' component)")
        denoiser = listed[0]
        vae = "vae" if isinstance(index.get("vae"), list) and index["vae"][-1] else None
        used = {denoiser, "vae", "scheduler"}
        skipped = [k for k, v in index.items() if not k.startswith("_") and k not in used and isinstance(v, list) and v[-1]]
        if skipped:
            logger.info("%s: not loading %s (a learned null context replaces text conditioning)", directory, ", ".join(skipped))
    else:
        denoiser = next((k for k in ("unet", "transformer") if (directory / k / "config.json").is_file()), "unet")
        vae = "vae" if (directory / "vae").is_dir() else None
    needed = {denoiser: "config.json", "scheduler": "scheduler_config.json", **({vae: "config.json"} if vae else {})}
    missing = [f"{sub}/{cfg}" for sub, cfg in needed.items() if not (directory / sub / cfg).is_file()]
    if missing:
        raise TeacherLoadError(
            f"teacher folder {directory} is incomplete: missing {', '.join(missing)} "
            "(expected a diffusers pipeline with model_index.json, or unet/, scheduler/ and optionally vae/, context/)"
        )
    return denoiser, vae


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
