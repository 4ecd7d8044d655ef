"""Components: which network of a teacher a search works on (``--component NAME``).

A :class:`Component` is one registered class that says, for one network inside a teacher, what
the generic layer (space, capture, distillation, cost table, supernet, search, export) needs:

==================  ======================================================================
``module``          the network whose blocks are searched (``teacher.unet``, ``teacher.vae.decoder``)
``example_inputs``  ``(args, kwargs)`` of one call at an image side (cost table, shape probe)
``check_resolution`` which image sides the network takes
``feature_batches`` the calls whose block features are captured for distillation, from photos
``validation``      the fixed held-out set of the search
``quality``         ``quality(config) -> float`` over a supernet wrapping ``module``
``export``          a standalone folder of a configuration (``load_compact`` reads it back)
==================  ======================================================================

Two components ship:

* ``denoiser`` (the default): the UNet, on noisy latents of the photos over the whole schedule;
  qualities ``denoising`` and ``agreement`` (:mod:`tocsr_nas.evaluators.quality`).
* ``vae.decoder``: the VAE decoder, on the latents of the photos (encoder posterior mode, through
  ``post_quant_conv``: exactly what ``vae.decode`` hands the decoder); qualities ``reconstruction``
  and ``agreement`` (:mod:`tocsr_nas.evaluators.reconstruction`), the same epsilon meaning as the
  denoiser's: "at most this fraction worse than the teacher", in units of the teacher decoder's
  own reconstruction error on the held-out photos.

A library records the component it was distilled for; using it for another is a
:class:`~tocsr_nas.surrogates.errors.LibraryMismatchError`. Add a component with
``@register_component("name")`` on a :class:`Component` subclass.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from tocsr_nas.errors import TocsrError, UserInputError
from tocsr_nas.locks import locks_folder

__all__ = [
    "Component",
    "DEFAULT_COMPONENT",
    "DECODER_FORMAT",
    "register_component",
    "get_component",
    "available_components",
    "library_component",
    "check_library_component",
    "export_decoder",
    "load_decoder",
    "replace_decoder",
]

logger = logging.getLogger(__name__)

#: the component searched when none is named
DEFAULT_COMPONENT = "denoiser"
#: the ``format`` of a compact decoder folder's ``compact.json``
DECODER_FORMAT = "tocsr-nas/compact-vae-decoder"
_DECODER_WEIGHTS = "decoder.safetensors"
_COMPACT_FILE = "compact.json"

_REGISTRY: dict[str, type[Component]] = {}


class Component:
    """What the generic search layer needs to know about one network of a teacher.

    Attributes:
        name: the registered name (``--component NAME``).
        default_space: the packaged space used when none is given (``None``: the one the teacher's
            model family names, :func:`tocsr_nas.stages.space.default_space_name`).
        qualities: the quality evaluators this component can be searched with, the default first.
    """

    name: ClassVar[str] = ""
    default_space: ClassVar[str | None] = None
    qualities: ClassVar[tuple[str, ...]] = ()

    @property
    def default_quality(self) -> str:
        """The first of :attr:`qualities`."""
        return self.qualities[0]

    def module(self, teacher: Any) -> nn.Module:
        """The searched network of ``teacher``."""
        raise NotImplementedError

    def check_resolution(self, teacher: Any, px: int) -> None:
        """Raise :class:`TocsrError` if the network cannot take images of side ``px``."""
        raise NotImplementedError

    def example_inputs(self, teacher: Any, resolution: int | None = None, batch: int = 1) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Deterministic ``(args, kwargs)`` for one call of :meth:`module` at ``resolution`` px."""
        raise NotImplementedError

    def probe(self, teacher: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Small inputs for the candidates' shape check (a latent side of 8)."""
        return self.example_inputs(teacher, teacher.vae_scale_factor * 8)

    def architecture(self, teacher: Any) -> dict[str, Any]:
        """What identifies the network's architecture (the cost table's cache key)."""
        raise NotImplementedError

    def feature_batches(self, teacher: Any, images: torch.Tensor, *, seed: int, batch: int) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """The calls of :meth:`module` whose block features are captured, from photo patches ``(N, 3, P, P)``."""
        raise NotImplementedError

    def validation(self, teacher: Any, *, samples: int, resolution: int, seed: int, cache: Any = None) -> Any:
        """The search's fixed held-out set."""
        raise NotImplementedError

    def quality(self, supernet: Any, name: str, validation: Any, teacher: Any = None) -> Callable[[Mapping[str, str]], float]:
        """``quality(config) -> float`` for a supernet over :meth:`module` of ``teacher``."""
        raise NotImplementedError

    def export(self, teacher: Any, space: Any, library: Any, config: Mapping[str, str], out: Any, **options: Any) -> dict[str, Any]:
        """Write the compact network of ``config`` to ``out``; returns its ``compact.json``."""
        raise NotImplementedError

    def check_quality(self, name: str | None) -> str:
        """``name`` (default: :attr:`default_quality`), refused when this component has no such quality.

        Raises:
            UserInputError: an unknown quality for this component.
        """
        name = self.default_quality if name is None else name
        if name not in self.qualities:
            raise UserInputError(f"unknown quality {name!r} for component {self.name!r}; valid: {', '.join(self.qualities)}")
        return name


def register_component(name: str) -> Callable[[type[Component]], type[Component]]:
    """Register a :class:`Component` subclass under ``name``."""

    def wrap(cls: type[Component]) -> type[Component]:
        if name in _REGISTRY:
            raise ValueError(f"component {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_components() -> list[str]:
    """Registered component names."""
    return sorted(_REGISTRY)


def get_component(name: str | Component | None = None) -> Component:
    """The component registered as ``name`` (``None``: :data:`DEFAULT_COMPONENT`).

    Raises:
        UserInputError: an unknown name (the message lists the valid ones).
    """
    if isinstance(name, Component):
        return name
    name = DEFAULT_COMPONENT if name is None else name
    if name not in _REGISTRY:
        raise UserInputError(f"unknown component {name!r}; valid: {', '.join(available_components())}")
    return _REGISTRY[name]()


def library_component(root: str | os.PathLike[str]) -> str:
    """The component a surrogate library was distilled for (libraries that predate components: the denoiser)."""
    from tocsr_nas.surrogates.library import read_manifest

    return str(read_manifest(root).get("component") or DEFAULT_COMPONENT)


def check_library_component(root: str | os.PathLike[str], component: str | None) -> str:
    """The library's component, checked against ``component`` when one is given.

    Raises:
        LibraryMismatchError: the library was distilled for another component.
    """
    from tocsr_nas.surrogates.errors import LibraryMismatchError

    found = library_component(root)
    if component is not None and get_component(component).name != found:
        raise LibraryMismatchError(
            f"surrogate library {root} was distilled for component {found!r}, not {component!r}; "
            f"distill one with `tocsr-nas distill --component {component} --out NEW_DIR`"
        )
    return found


# ---------------------------------------------------------------------- the denoiser
@register_component("denoiser")
class Denoiser(Component):
    """The teacher's denoiser (a UNet or a transformer, through its model adapter,
    :mod:`tocsr_nas.teacher.adapters`); its packaged space is the one of the teacher's family."""

    default_space = None
    qualities = ("denoising", "agreement")

    def module(self, teacher: Any) -> nn.Module:
        return teacher.unet

    def check_resolution(self, teacher: Any, px: int) -> None:
        teacher.latent_size(px)

    def example_inputs(self, teacher: Any, resolution: int | None = None, batch: int = 1):
        return teacher.unet_example_inputs(batch, resolution=resolution)

    def probe(self, teacher: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return teacher.unet_example_inputs(1, resolution=teacher.probe_resolution)

    def architecture(self, teacher: Any) -> dict[str, Any]:
        return {
            "unet": {k: v for k, v in dict(teacher.unet.config).items() if not k.startswith("_")},
            "context": list(teacher.validation_context().shape),
        }

    def feature_batches(self, teacher: Any, images: torch.Tensor, *, seed: int, batch: int):
        from tocsr_nas.stages.distill import noisy_unet_batches

        return noisy_unet_batches(teacher, images, seed=seed, batch=batch)

    def validation(self, teacher: Any, *, samples: int, resolution: int, seed: int, cache: Any = None):
        from tocsr_nas.stages.validation import build_validation_set

        return build_validation_set(teacher, samples=samples, resolution=resolution, seed=seed, cache=cache)

    def quality(self, supernet: Any, name: str, validation: Any, teacher: Any = None):
        from tocsr_nas.evaluators import make_quality
        from tocsr_nas.evaluators.quality import SupernetQuality

        forward = teacher.denoiser_forward if teacher is not None else None  # each family called its way
        return SupernetQuality(supernet, make_quality(name, validation), make_forward=forward)

    def export(self, teacher: Any, space: Any, library: Any, config: Mapping[str, str], out: Any, **options: Any):
        from tocsr_nas.stages.export import export_compact

        return export_compact(teacher, space, library, config, out, **options)


# ---------------------------------------------------------------------- the VAE decoder
def _decoder_kwargs(vae: nn.Module) -> dict[str, Any]:
    """The arguments ``AutoencoderKL`` builds its ``Decoder`` with (from the VAE's config)."""
    cfg = vae.config
    return {
        "in_channels": int(cfg.latent_channels),
        "out_channels": int(cfg.out_channels),
        "up_block_types": list(cfg.up_block_types),
        "block_out_channels": list(cfg.block_out_channels),
        "layers_per_block": int(cfg.layers_per_block),
        "norm_num_groups": int(cfg.norm_num_groups),
        "act_fn": str(cfg.act_fn),
        "mid_block_add_attention": bool(cfg.get("mid_block_add_attention", True)),
    }


def _post_quant_latents(vae: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What ``vae.decode`` hands its decoder for the photos' posterior modes: ``post_quant_conv(mu)``."""
    z = vae.encode(images.to(vae.device, vae.dtype)).latent_dist.mode()  # (B, C, h, w)
    pq = getattr(vae, "post_quant_conv", None)
    return pq(z) if pq is not None else z


@register_component("vae.decoder")
class VaeDecoder(Component):
    """The teacher VAE's decoder: ``decoder(z) -> image``, with ``z`` the latent after ``post_quant_conv``.

    Features and the validation set decode the latents of photo patches (the encoder's posterior
    mode), so the surrogates learn the decoder on the latents it sees in the pipeline.
    """

    default_space = "vae.decoder"
    qualities = ("reconstruction", "agreement")

    def module(self, teacher: Any) -> nn.Module:
        return teacher.vae.decoder

    def check_resolution(self, teacher: Any, px: int) -> None:
        f = teacher.vae_scale_factor
        if isinstance(px, bool) or not isinstance(px, int) or px < f or px % f:
            raise TocsrError(f"resolution {px} px does not fit the VAE decoder: it must be a positive multiple of its factor {f} px")

    def example_inputs(self, teacher: Any, resolution: int | None = None, batch: int = 1):
        px = resolution or teacher.default_resolution
        self.check_resolution(teacher, px)
        h = px // teacher.vae_scale_factor
        gen = torch.Generator().manual_seed(0)
        z = torch.randn(batch, int(teacher.vae.config.latent_channels), h, h, generator=gen)  # (B, C, h, w)
        return (z.to(teacher.vae.device, teacher.vae.dtype),), {}

    def architecture(self, teacher: Any) -> dict[str, Any]:
        return {"vae.decoder": _decoder_kwargs(teacher.vae)}

    def feature_batches(self, teacher: Any, images: torch.Tensor, *, seed: int, batch: int):
        for start in range(0, images.shape[0], batch):
            with torch.no_grad():
                z = _post_quant_latents(teacher.vae, images[start : start + batch])  # (b, C, h, w)
            yield (z,), {}

    def validation(self, teacher: Any, *, samples: int, resolution: int, seed: int, cache: Any = None):
        from tocsr_nas.evaluators.reconstruction import ReconstructionSet
        from tocsr_nas.stages.validation import _patches
        from tocsr_nas.teacher.data import PhotoDataset

        self.check_resolution(teacher, resolution)
        photos = PhotoDataset.from_skimage("val", min_size=resolution)
        images = _patches(photos, samples, resolution)  # (N, 3, P, P), a fixed grid: the seed plays no part
        with torch.no_grad():
            z = torch.cat([_post_quant_latents(teacher.vae, images[i : i + 8]) for i in range(0, samples, 8)])
        decoder = self.module(teacher).eval()
        return ReconstructionSet.build(latents=z, images=images.to(z.device, z.dtype), decoder=decoder, chunk_size=8)

    def quality(self, supernet: Any, name: str, validation: Any, teacher: Any = None):
        from tocsr_nas.evaluators.reconstruction import SupernetReconstruction

        return SupernetReconstruction(supernet, validation, name)

    def export(self, teacher: Any, space: Any, library: Any, config: Mapping[str, str], out: Any, **options: Any):
        return export_decoder(teacher, space, library, config, out, **options)


@locks_folder("out_dir", "export")
def export_decoder(
    teacher: Any,
    space: Any,
    library: Any,
    config: Mapping[str, str],
    out_dir: str | os.PathLike[str],
    *,
    resolution: int | None = None,
    info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the compact VAE decoder of ``config`` to ``out_dir`` (atomically).

    The folder holds ``compact.json`` (format :data:`DECODER_FORMAT`, the decoder's constructor
    arguments, the surrogate configs of the replaced blocks, the configuration, measured params and
    GMACs at ``resolution`` px, the teacher VAE's config) and ``decoder.safetensors``.

    Returns:
        The ``compact.json`` content.
    """
    from tocsr_nas._io import atomic_dir, atomic_write_text, check_out_path, save_safetensors, weight_records
    from tocsr_nas.evaluators import count_complexity
    from tocsr_nas.stages.export import _block_entries, assemble_from_library

    out = Path(out_dir)
    check_out_path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserInputError(f"{out} exists and is not empty; choose another --out or remove it")
    component = get_component("vae.decoder")
    cfg = space.validate(config)
    model = assemble_from_library(component.module(teacher), space, library, cfg)
    resolution = resolution or teacher.default_resolution
    args, kwargs = component.example_inputs(teacher, resolution)
    cost = count_complexity(model, args, kwargs)
    meta = {
        "format": DECODER_FORMAT,
        "version": 1,
        "component": "vae.decoder",
        "decoder_config": _decoder_kwargs(teacher.vae),
        "vae_config": {k: v for k, v in dict(teacher.vae.config).items() if not k.startswith("_")},
        "configuration": cfg.to_dict(),
        "configuration_hash": cfg.hash,
        "blocks": _block_entries(model, cfg),
        "resolution": resolution,
        "measured": {"params": cost.params, "gmacs": cost.gmacs, "macs": cost.macs},
        "teacher_fingerprint": teacher.fingerprint(),
        **dict(info or {}),
    }
    with atomic_dir(out) as tmp:
        save_safetensors(tmp / _DECODER_WEIGHTS, model.state_dict(), metadata={"format": DECODER_FORMAT})
        meta["files"] = weight_records(tmp, (_DECODER_WEIGHTS,))
        atomic_write_text(tmp / _COMPACT_FILE, json.dumps(meta, indent=1, default=str))
    logger.info("exported decoder %s: %.3f M params, %.4f GMACs at %d px", out, cost.params / 1e6, cost.gmacs, resolution)
    return meta


def _decoder_meta(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``compact.json`` of a compact decoder folder, or ``None`` when the folder is something else."""
    from tocsr_nas._io import read_json

    path = Path(directory) / _COMPACT_FILE
    if not path.is_file():
        return None
    meta = read_json(path)
    return meta if isinstance(meta, dict) and meta.get("format") == DECODER_FORMAT else None


def load_decoder(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module | None:
    """Rebuild a compact decoder from its folder alone (``None`` when ``directory`` is no decoder export).

    Returns:
        A diffusers ``Decoder`` (``decoder(z) -> (B, 3, H, W)``, ``z`` the post-quant latent), its
        searched blocks replaced by the exported surrogates, in eval mode.

    Raises:
        CompactFormatError: an architecture that does not rebuild, or weights that do not fit it.
        DamagedFileError: a weights file that is not the size and sha256 recorded.
    """
    from diffusers.models.autoencoders.vae import Decoder

    from tocsr_nas._io import load_safetensors, one_line, verify_records
    from tocsr_nas.stages.export import CompactFormatError
    from tocsr_nas.surrogates.registry import surrogate_from_config

    meta = _decoder_meta(directory)
    if meta is None:
        return None
    try:
        decoder = Decoder(**meta["decoder_config"])
        for path, entry in meta["blocks"].items():
            decoder.set_submodule(path, surrogate_from_config(entry["config"], type_name=entry["type"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CompactFormatError(f"{Path(directory) / _COMPACT_FILE} is damaged: its architecture does not rebuild ({one_line(exc)})") from None
    verify_records(directory, meta.get("files"), Path(directory) / _COMPACT_FILE)
    state = load_safetensors(Path(directory) / _DECODER_WEIGHTS)
    missing, unexpected = decoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CompactFormatError(
            f"{directory}: weights do not match the architecture ({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )
    return decoder.to(device).eval()


def replace_decoder(vae: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Put the compact decoder exported at ``directory`` into ``vae`` (in place), e.g. an SR model's VAE.

    ``vae.decode`` then runs ``post_quant_conv`` and the compact decoder, and every cost counted
    through ``vae.decode`` (the per-image GMACs of ``tocsr-nas evaluate``) is the compact one's.

    Returns:
        ``vae``.

    Raises:
        UserInputError: ``directory`` is not a compact decoder folder, or was exported for a VAE
            of another architecture.
    """
    decoder = load_decoder(directory, device=next(vae.parameters()).device)
    if decoder is None:
        raise UserInputError(f"--decoder {directory} is not a compact VAE decoder (export one with `tocsr-nas export` from a --component vae.decoder search)")
    want, got = _decoder_kwargs(vae), _decoder_meta(directory)["decoder_config"]
    if want != got:
        raise UserInputError(f"--decoder {directory} was exported from a VAE decoder of another architecture ({got}, this VAE: {want})")
    vae.decoder = decoder.to(dtype=next(vae.parameters()).dtype)
    return vae
