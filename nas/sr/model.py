"""The super-resolution model: a denoising backbone conditioned on the low-resolution image.

**Conditioning.** For a low-resolution image ``y`` (``h x w``) and scale ``s`` (4), the
conditioning latent is the VAE latent of the bicubic upsampling of ``y`` back to ``sh x sw``::

    z_lr = E(bicubic_s(y))                      # (B, C, sh/f, sw/f), C = 16 latent channels

It is concatenated with the noisy latent ``z_t`` along the channels, so the backbone's first
convolution sees ``2C`` input channels. :func:`widen_conv_in` widens ``conv_in`` from ``C`` to
``2C`` input channels and sets the new weights to **zero**: with ``W = [W_z | W_lr]``::

    conv_in([z_t ; z_lr]) = W_z * z_t + W_lr * z_lr + b = W_z * z_t + b     (W_lr = 0)

so an untrained :class:`SRUNet` computes exactly what its backbone computes, and fine-tuning
starts from the backbone's behaviour instead of from noise.

**Backbones.** Any module with the call signature of diffusers'
:class:`~diffusers.UNet2DConditionModel` (``unet(sample, timestep, encoder_hidden_states=...,
return_dict=False)[0]``) whose first layer is a :class:`torch.nn.Conv2d` at ``.conv_in``: the
teacher's own UNet or a compact UNet exported by the search (:func:`tocsr_nas.load_compact`).
:func:`load_backbone` opens either folder kind.

**The SR folder** (:meth:`SRModel.save` / :meth:`SRModel.load`) is self-contained: ``upscale``
and ``evaluate`` need nothing else::

    sr.json               kind ("multistep" | "onestep"), geometry, sampler, provenance, metrics,
                          and the size and sha256 of every weights file below (checked on load)
    backbone/             the backbone's architecture (a diffusers UNet config.json, or the
                          compact export's compact.json + unet.safetensors)
    weights.safetensors   the SRUNet's weights (backbone with the widened conv_in + null context)
    refiner.safetensors   (format version 2, one-step models) the luma refiner's weights
                          (:mod:`tocsr_nas.sr.refine`; its settings are ``sr.json``'s ``refiner``)
    vae/                  the frozen VAE (diffusers save_pretrained, safetensors)
    scheduler/            the teacher's DDPM scheduler config (training noise schedule)

Example:
    >>> import torch
    >>> conv = torch.nn.Conv2d(16, 8, 3, padding=1)
    >>> wide = widen_conv_in(conv, 16)
    >>> x, c = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    >>> torch.allclose(wide(torch.cat([x, c], 1)), conv(x))
    True
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from tocsr_nas._io import (
    atomic_write_json,
    file_record,
    load_safetensors,
    one_line,
    read_json,
    replace_dir,
    save_safetensors,
    temporary_dir,
    verify_records,
    weight_records,
)
from tocsr_nas.errors import TocsrError
from tocsr_nas.locks import locks_folder
from tocsr_nas.teacher import NullContext, Teacher

__all__ = [
    "SRModelError",
    "Backbone",
    "SRUNet",
    "SRModel",
    "widen_conv_in",
    "load_backbone",
    "bicubic_upsample",
    "SR_FORMAT",
    "sr_fingerprint",
]

logger = logging.getLogger(__name__)

#: ``format`` field of ``sr.json``
SR_FORMAT = "tocsr-sr"
#: version 2 adds the optional luma refiner (``refiner.safetensors``); version 1 folders still load
_SR_VERSION = 2
_WEIGHTS = "weights.safetensors"
_REFINER = "refiner.safetensors"
#: files of a compact UNet export (``tocsr_nas.stages.export``) that rebuild its architecture
_COMPACT_FILE = "compact.json"
_COMPACT_WEIGHTS = "unet.safetensors"
KINDS = ("multistep", "onestep")


class SRModelError(TocsrError):
    """A backbone or SR model folder that is missing, incomplete or of the wrong kind."""


# ---------------------------------------------------------------------- conditioning
def widen_conv_in(conv: nn.Conv2d, extra_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` with ``extra_channels`` more input channels whose weights are zero.

    Args:
        conv: the backbone's first convolution (``C_in -> C_out``).
        extra_channels: input channels to add (the conditioning latent's channels).

    Returns:
        A new :class:`~torch.nn.Conv2d` ``(C_in + extra) -> C_out``: ``weight[:, :C_in]`` and
        ``bias`` copied from ``conv``, ``weight[:, C_in:] = 0``; same kernel, stride, padding,
        dilation, groups (must be 1), device and dtype.

    Raises:
        SRModelError: if ``conv`` is not a plain ``Conv2d`` with ``groups == 1``.
    """
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise SRModelError(f"the backbone's conv_in must be a torch.nn.Conv2d with groups=1, got {conv!r}")
    wide = nn.Conv2d(
        conv.in_channels + extra_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, : conv.in_channels].copy_(conv.weight)  # (C_out, C_in, k, k)
        if conv.bias is not None:
            wide.bias.copy_(conv.bias)
    return wide


def bicubic_upsample(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling ``(B, 3, h, w) -> (B, 3, s h, s w)``, clamped to ``[-1, 1]``."""
    h, w = lr.shape[-2:]
    up = F.interpolate(lr, size=(h * scale, w * scale), mode="bicubic", align_corners=False)
    return up.clamp(-1.0, 1.0)


class SRUNet(nn.Module):
    """A backbone UNet conditioned on the LR latent by channel concatenation.

    Args:
        backbone: a UNet-like module (see the module docstring); its ``conv_in`` is replaced.
        context: the null context feeding the backbone's cross-attention.
        cond_channels: channels of the conditioning latent (the VAE's latent channels).
        widen: widen ``conv_in`` now (``False`` when ``backbone`` already has the wide conv_in).

    Attributes:
        latent_channels: channels ``C`` of ``z_t`` (the backbone's original input channels).
        cond_channels: channels of ``z_lr``.

    Example:
        >>> from tocsr_nas.sr.testing import micro_unet
        >>> from tocsr_nas.teacher import NullContext
        >>> net = SRUNet(micro_unet(), NullContext(num_tokens=2, dim=8))
        >>> z = torch.randn(2, 16, 8, 8)
        >>> net(z, torch.tensor([10, 500]), z).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, backbone: nn.Module, context: NullContext, cond_channels: int = 16, *, widen: bool = True):
        super().__init__()
        conv = getattr(backbone, "conv_in", None)
        if not isinstance(conv, nn.Conv2d):
            raise SRModelError(f"the backbone {type(backbone).__name__} has no torch.nn.Conv2d at .conv_in")
        self.cond_channels = int(cond_channels)
        if widen:
            self.latent_channels = int(conv.in_channels)
            backbone.conv_in = widen_conv_in(conv, self.cond_channels)
        else:
            self.latent_channels = int(conv.in_channels) - self.cond_channels
        self.backbone = backbone
        self.context = context

    def forward(self, z_t: torch.Tensor, timestep: torch.Tensor | int, z_lr: torch.Tensor) -> torch.Tensor:
        """The backbone's prediction for ``z_t`` at ``timestep`` given ``z_lr``.

        Args:
            z_t: noisy latent ``(B, C, h, w)``.
            timestep: ``(B,)``, a 0-d tensor or an int.
            z_lr: conditioning latent ``(B, C, h, w)``.

        Returns:
            The backbone's output ``(B, C, h, w)`` (epsilon for the presets' schedulers).
        """
        b = z_t.shape[0]
        t = torch.as_tensor(timestep, device=z_t.device)
        t = t.expand(b) if t.ndim == 0 else t  # (B,)
        x = torch.cat([z_t, z_lr.to(z_t.dtype)], dim=1)  # (B, 2C, h, w)
        return self.backbone(x, t, encoder_hidden_states=self.context(b).to(z_t.dtype), return_dict=False)[0]


# ---------------------------------------------------------------------- backbones
@dataclass
class Backbone:
    """A denoising backbone and the teacher parts an SR model needs around it.

    Attributes:
        unet: the UNet-like module (conv_in not yet widened).
        vae: the teacher's VAE.
        scheduler: the teacher's training scheduler (DDPM).
        context: the teacher's null context.
        format: ``"diffusers-unet"`` (a teacher's UNet) or ``"compact"`` (an exported compact UNet).
        source: provenance written into ``sr.json`` (folders, teacher fingerprint).
    """

    unet: nn.Module
    vae: AutoencoderKL
    scheduler: Any
    context: NullContext
    format: str
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_teacher(cls, teacher: Teacher, source: dict[str, Any] | None = None) -> Backbone:
        """The teacher's own UNet as the backbone (deep copies: the teacher is left untouched)."""
        return cls(
            unet=copy.deepcopy(teacher.unet),
            vae=copy.deepcopy(teacher.vae),
            scheduler=DDPMScheduler.from_config(teacher.scheduler.config)
            if isinstance(teacher.scheduler, DDPMScheduler)
            else type(teacher.scheduler).from_config(teacher.scheduler.config),
            context=copy.deepcopy(teacher.context),
            format="diffusers-unet",
            source=dict(source or {}, teacher_fingerprint=teacher.fingerprint()),
        )


def _is_teacher_folder(d: Path) -> bool:
    return (d / "teacher.json").is_file() or ((d / "unet" / "config.json").is_file() and (d / "vae").is_dir())


def load_backbone(directory: str | Path, *, teacher: str | Path | None = None) -> Backbone:
    """Open a backbone folder: a teacher folder (its UNet) or an exported compact UNet folder.

    Which kind is decided by the files present: a teacher folder has ``teacher.json`` (or the
    diffusers layout ``unet/`` + ``vae/``); a compact folder has ``compact.json`` (written by
    ``tocsr-nas export``) and carries the teacher's VAE, scheduler and null context beside the
    UNet (:func:`tocsr_nas.stages.export.load_compact_teacher`).

    Args:
        directory: the folder.
        teacher: a teacher folder whose VAE, scheduler and null context replace a compact
            folder's own (they must match the UNet's channels).

    Returns:
        The :class:`Backbone` (deep copies; nothing on disk is modified).

    Raises:
        SRModelError: a missing folder, a folder that is neither kind, or a ``teacher`` other than
            the one the compact UNet was exported from (its fingerprint differs from ``compact.json``'s).
        TocsrError: an unreadable teacher or compact folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SRModelError(f"backbone folder not found: {directory}")
    where = str(directory.resolve())
    if _is_teacher_folder(directory):
        return Backbone.from_teacher(Teacher.load(directory), {"backbone": where, "teacher": where})
    if not (directory / _COMPACT_FILE).is_file():
        raise SRModelError(
            f"{directory} is neither a teacher folder (teacher.json, unet/, vae/) nor a compact UNet folder "
            f"({_COMPACT_FILE}, from `tocsr-nas export`)"
        )
    from tocsr_nas.stages.export import load_compact_teacher

    t = load_compact_teacher(directory)
    source = {"backbone": where, "teacher": where}
    if teacher is not None:
        from tocsr_nas.stages.export import read_compact_meta

        other = Teacher.load(teacher)
        recorded = read_compact_meta(directory).get("teacher_fingerprint")
        if recorded is not None and recorded != other.fingerprint():
            raise SRModelError(
                f"--teacher {teacher} (fingerprint {other.fingerprint()}) is not the teacher compact UNet {directory} "
                f"was exported from ({recorded}); pass that teacher, or leave --teacher out to use the VAE exported "
                "with it"
            )
        t = Teacher(vae=other.vae, unet=t.unet, scheduler=other.scheduler, context=other.context, preset=other.preset)
        source["teacher"] = str(Path(teacher).resolve())
    if t.latent_channels != int(t.unet.conv_in.in_channels):
        raise SRModelError(
            f"compact backbone {directory} does not fit its VAE: conv_in takes {t.unet.conv_in.in_channels} "
            f"channels, the VAE's latent has {t.latent_channels}"
        )
    backbone = Backbone.from_teacher(t, source)
    backbone.format = "compact"
    return backbone


# ---------------------------------------------------------------------- the SR model
@dataclass
class SRModel:
    """A super-resolution model: the conditioned denoiser, the VAE and the noise schedule.

    Attributes:
        net: the :class:`SRUNet`.
        vae: the frozen VAE.
        scheduler: the training noise schedule (a diffusers ``DDPMScheduler``).
        config: the ``sr.json`` content: ``kind`` (``"multistep"`` or ``"onestep"``), ``scale``,
            ``sampler`` (``{"steps", "strength", "eta", "seed"}``), ``onestep`` (``{"timestep", "start"}``,
            one-step models), ``tile`` (latent tile side), ``backbone`` (format and architecture
            files), ``source`` (provenance) and ``metrics``.
        backbone_dir: where the backbone's architecture files are (for :meth:`save`).
        refiner: the luma refiner applied after decoding (:class:`~tocsr_nas.sr.refine.LumaRefiner`),
            or ``None``.
    """

    net: SRUNet
    vae: AutoencoderKL
    scheduler: Any
    config: dict[str, Any]
    backbone_dir: Path | None = None
    refiner: nn.Module | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_backbone(
        cls, backbone: Backbone, *, scale: int = 4, sampler_steps: int = 20, strength: float = 1.0, tile: int = 32
    ) -> SRModel:
        """A new multi-step SR model around ``backbone`` (conv_in widened, zero-initialised)."""
        latent = int(backbone.vae.config.latent_channels)
        net = SRUNet(backbone.unet, backbone.context, cond_channels=latent)
        config = {
            "format": SR_FORMAT,
            "version": _SR_VERSION,
            "kind": "multistep",
            "scale": int(scale),
            "latent_channels": latent,
            "sampler": {"name": "ddim", "steps": int(sampler_steps), "strength": float(strength), "eta": 0.0, "seed": 0},
            "tile": int(tile),
            "context": {"num_tokens": int(backbone.context.config.num_tokens), "dim": int(backbone.context.config.dim)},
            "backbone": {"format": backbone.format},
            "source": dict(backbone.source),
            "metrics": {},
        }
        model = cls(net=net, vae=backbone.vae, scheduler=backbone.scheduler, config=config)
        model._backbone_src = backbone  # architecture source for save()
        return model.eval()

    # ------------------------------------------------------------------ geometry
    @property
    def kind(self) -> str:
        return str(self.config["kind"])

    @property
    def scale(self) -> int:
        return int(self.config["scale"])

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def unet_multiple(self) -> int:
        """The latent side must be a multiple of this (``2 ** number of downsamplers``)."""
        unet = self.net.backbone
        blocks = getattr(getattr(unet, "config", None), "down_block_types", None)
        if blocks is not None:
            return 2 ** (len(blocks) - 1)
        n = sum(1 for name, _ in unet.named_modules() if name.endswith("downsamplers.0"))
        return 2 ** max(n, 0)

    @property
    def pixel_multiple(self) -> int:
        """The HR image side (after padding) must be a multiple of this."""
        return self.vae_scale_factor * self.unet_multiple

    @property
    def min_input_side(self) -> int:
        """The smallest LR image side this model upscales: its bicubic upsampling must fill at least
        one :attr:`pixel_multiple` (a smaller image would be mostly padding)."""
        return -(-self.pixel_multiple // self.scale)

    # ------------------------------------------------------------------ VAE
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[-1, 1]`` (any device) -> scaled latents ``(B, C, H/f, W/f)``
        (posterior mode) on the VAE's device."""
        z = self.vae.encode(images.to(self.vae.device, self.vae.dtype)).latent_dist.mode()
        shift = self.vae.config.get("shift_factor") or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, C, h, w)`` -> images ``(B, 3, h f, w f)`` (about ``[-1, 1]``)."""
        shift = self.vae.config.get("shift_factor") or 0.0
        return self.vae.decode(latents.to(self.vae.device, self.vae.dtype) / self.vae.config.scaling_factor + shift).sample

    def lr_latent(self, lr: torch.Tensor) -> torch.Tensor:
        """``z_lr = E(bicubic_s(lr))``: ``(B, 3, h, w) -> (B, C, s h / f, s w / f)`` (untiled)."""
        return self.encode(bicubic_upsample(lr, self.scale))

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        """Where the denoiser's weights are (every part moves together, :meth:`to`)."""
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> SRModel:
        """Move the denoiser, the VAE and the refiner to ``device`` (in place; dtypes kept); returns ``self``."""
        self.net.to(device)
        self.vae.to(device)
        if self.refiner is not None:
            self.refiner.to(device)
        return self

    # ------------------------------------------------------------------ modes
    def eval(self) -> SRModel:
        self.net.eval()
        self.vae.eval().requires_grad_(False)
        if self.refiner is not None:
            self.refiner.eval()
        return self

    def parameters(self):
        """The trainable parameters (the SRUNet's; the VAE is frozen)."""
        return self.net.parameters()

    # ------------------------------------------------------------------ disk
    @locks_folder("directory")
    def save(self, directory: str | Path) -> Path:
        """Write the SR folder (see the module docstring), replacing ``directory``'s SR files.

        Files are staged in a temporary folder next to ``directory`` and each part is renamed into
        place; ``sr.json`` is written last, so a folder with a readable ``sr.json`` is complete.
        Other files in ``directory`` (checkpoints, reports) are kept.
        """
        directory = Path(directory)
        with temporary_dir(directory, prefix=".sr.tmp-") as staging:
            self._save_backbone_arch(staging / "backbone")
            self.vae.save_pretrained(staging / "vae", safe_serialization=True)
            self.scheduler.save_config(staging / "scheduler")
            save_safetensors(staging / _WEIGHTS, self.net.state_dict(), metadata={"format": SR_FORMAT})
            weights = [_WEIGHTS]
            if self.refiner is not None:
                save_safetensors(staging / _REFINER, self.refiner.state_dict(), metadata={"format": SR_FORMAT})
                weights.append(_REFINER)
            (directory / "sr.json").unlink(missing_ok=True)
            (directory / _REFINER).unlink(missing_ok=True)
            for name in ("backbone", "vae", "scheduler"):
                replace_dir(staging / name, directory / name)
            for name in weights:
                (staging / name).replace(directory / name)
            files = weight_records(directory, (*weights, "vae", "backbone"))
            config = dict(self.config, version=_SR_VERSION, diffusers_version=diffusers.__version__, files=files)
            config.pop("refiner", None)
            if self.refiner is not None:
                config["refiner"] = self.refiner.spec()
            atomic_write_json(directory / "sr.json", config)
        self.backbone_dir = directory / "backbone"
        return directory

    def _save_backbone_arch(self, target: Path) -> None:
        fmt = self.config["backbone"]["format"]
        if self.backbone_dir is not None and self.backbone_dir.is_dir():
            shutil.copytree(self.backbone_dir, target)
            return
        src: Backbone | None = getattr(self, "_backbone_src", None)
        if fmt == "diffusers-unet":
            # the config of the backbone as built (conv_in is widened after building it)
            self.net.backbone.save_config(target)
        elif fmt == "compact" and src is not None and src.source.get("backbone"):
            target.mkdir(parents=True)  # compact.json + unet.safetensors rebuild the architecture
            for name in (_COMPACT_FILE, _COMPACT_WEIGHTS):
                shutil.copy2(Path(src.source["backbone"]) / name, target / name)
        else:
            raise SRModelError(f"cannot save a backbone of format {fmt!r} without its source folder")

    @classmethod
    def load(cls, directory: str | Path, *, kind: str | None = None) -> SRModel:
        """Open an SR folder written by :meth:`save`.

        Args:
            directory: the folder.
            kind: require this kind (``"multistep"`` or ``"onestep"``).

        Raises:
            SRModelError: a missing or incomplete folder, or one of another kind.
            DamagedFileError: ``sr.json`` or a weights file is damaged (truncated, corrupt, or not
                the size and sha256 ``sr.json`` records; a folder saved before they were recorded is
                only read).
        """
        directory = Path(directory)
        meta_path = directory / "sr.json"
        if not meta_path.is_file():
            hint = " (it is a teacher folder; train an SR model with `tocsr-nas sr train`)" if _is_teacher_folder(directory) else ""
            raise SRModelError(f"not an SR model folder (no sr.json): {directory}{hint}")
        try:
            config = read_json(meta_path)
        except (OSError, json.JSONDecodeError) as exc:
            raise SRModelError(f"cannot read {meta_path}: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != SR_FORMAT or config.get("kind") not in KINDS:
            raise SRModelError(f"{meta_path} is not a {SR_FORMAT} model description")
        version = config.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= _SR_VERSION:
            raise SRModelError(
                f"{meta_path} is SR format version {version!r}; this tocsr-nas reads versions 1 to {_SR_VERSION} "
                "(upgrade tocsr-nas, or retrain the model)"
            )
        if kind is not None and config["kind"] != kind:
            raise SRModelError(f"{directory} holds a {config['kind']} model, expected a {kind} model")
        needed = ("backbone", "vae", "scheduler", _WEIGHTS, *((_REFINER,) if config.get("refiner") else ()))
        missing = [n for n in needed if not (directory / n).exists()]
        if missing:
            raise SRModelError(f"SR model folder {directory} is incomplete: missing {', '.join(missing)}")
        verify_records(directory, config.get("files"), meta_path)
        try:
            unet = _build_backbone_arch(directory / "backbone", config["backbone"]["format"])
            vae = AutoencoderKL.from_pretrained(directory / "vae", low_cpu_mem_usage=False, use_safetensors=True)
            scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")
            ctx = NullContext(num_tokens=config["context"]["num_tokens"], dim=config["context"]["dim"], init_std=0.0)
            net = SRUNet(unet, ctx, cond_channels=int(config["latent_channels"]))
            net.load_state_dict(load_safetensors(directory / _WEIGHTS))
            refiner = None
            if config.get("refiner"):
                from tocsr_nas.sr.refine import LumaRefiner

                refiner = LumaRefiner(**config["refiner"])
                refiner.load_state_dict(load_safetensors(directory / _REFINER))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
            raise SRModelError(f"cannot load the SR model in {directory}: {one_line(exc)}") from exc
        return cls(
            net=net, vae=vae, scheduler=scheduler, config=config, backbone_dir=directory / "backbone", refiner=refiner
        ).eval()


def sr_fingerprint(directory: str | Path) -> str:
    """A short hash identifying the SR model saved in ``directory``: its weights file's sha256.

    Read from ``sr.json``'s ``files`` record (no hashing), or computed for a folder saved before
    checksums were recorded. A run derived from the model (``sr distill``) records it, so that
    ``--resume`` refuses another model.

    Args:
        directory: an SR model folder.

    Returns:
        The first 16 hex digits of the weights file's sha256.
    """
    directory = Path(directory)
    record = (read_json(directory / "sr.json").get("files") or {}).get(_WEIGHTS)
    if not record or not record.get("sha256"):
        record = file_record(directory / _WEIGHTS)
    return str(record["sha256"])[:16]


def _build_backbone_arch(folder: Path, fmt: str) -> nn.Module:
    if fmt == "diffusers-unet":
        cfg = read_json(folder / "config.json")
        return UNet2DConditionModel.from_config(cfg)
    if fmt == "compact":
        from tocsr_nas.stages.export import load_compact

        return load_compact(folder)
    raise SRModelError(f"unknown backbone format {fmt!r} in {folder}")
