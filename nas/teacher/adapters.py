"""Model adapters: how the toolkit calls each family of diffusers denoiser.

The generic layer (capture, distillation, cost tables, supernet, search) only needs to call the
denoiser on a noisy sample at a timestep. What else the call needs differs by family; an adapter
supplies it. One registered class per family::

    @register_adapter
    class MyAdapter(DenoiserAdapter):
        classes = ("MyDiffusersModel",)
        ...

Families shipped (``tocsr-nas space --teacher DIR`` with any of them):

================================ ===================== =============================================
diffusers class                  default space         inputs synthesised besides ``(x_t, t)``
================================ ===================== =============================================
``UNet2DModel``                  ``unet2d``            ``class_labels`` = 0 when it has class embeddings
``UNet2DConditionModel``         ``unet``              ``encoder_hidden_states`` = the learned null
                                                       context ``(B, L, cross_attention_dim)``;
                                                       SDXL ``text_time``: ``text_embeds`` = the
                                                       learned null pooled embedding, ``time_ids`` =
                                                       ``(H, W, 0, 0, H, W)`` of the image side;
                                                       ``class_labels`` = 0 (zeros for ``projection``)
``DiTTransformer2DModel``,       ``transformer``       ``class_labels`` = the null (classifier-free)
``Transformer2DModel`` (DiT form)                      class when the label table has one, else 0
``PixArtTransformer2DModel``     ``transformer``       ``encoder_hidden_states`` = the null context
                                                       ``(B, L, caption_channels)``; ``resolution`` /
                                                       ``aspect_ratio`` from the sample size
================================ ===================== =============================================

A denoiser that predicts more channels than it takes (``learn_sigma``: DiT, PixArt) is scored on
its first ``in_channels`` output channels, the noise prediction.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from tocsr_nas.errors import TocsrError

__all__ = [
    "ADAPTERS",
    "DenoiserAdapter",
    "UnsupportedModelError",
    "adapter_for",
    "register_adapter",
    "supported_classes",
]


class UnsupportedModelError(TocsrError):
    """A denoiser of a family no adapter handles, or one that does not run on its synthesised inputs."""


#: adapter classes, by family name
ADAPTERS: dict[str, type[DenoiserAdapter]] = {}


def register_adapter(cls: type[DenoiserAdapter]) -> type[DenoiserAdapter]:
    """Class decorator: register a :class:`DenoiserAdapter` subclass under its ``family``.

    Raises:
        ValueError: the family, or one of its classes, is already registered.
    """
    taken = {c for a in ADAPTERS.values() for c in a.classes}
    if cls.family in ADAPTERS or taken & set(cls.classes):
        raise ValueError(f"model adapter {cls.family!r} (classes {cls.classes}) is already registered")
    ADAPTERS[cls.family] = cls
    return cls


def supported_classes() -> list[str]:
    """The diffusers denoiser classes some adapter handles."""
    return sorted(c for a in ADAPTERS.values() for c in a.classes)


def _class_name(model: nn.Module | str) -> str:
    return model if isinstance(model, str) else type(model).__name__


def adapter_for(model: nn.Module | str, config: Any = None) -> type[DenoiserAdapter]:
    """The adapter class for a denoiser (a module, or a class name with its config).

    Raises:
        UnsupportedModelError: no adapter handles it (the message names the supported classes).
    """
    name = _class_name(model)
    cfg = config if config is not None else getattr(model, "config", {})
    for adapter in ADAPTERS.values():
        if name in adapter.classes and adapter.accepts(cfg):
            return adapter
    raise UnsupportedModelError(
        f"unsupported denoiser {name}{adapter_hint(name, cfg)}; supported: {', '.join(supported_classes())}"
    )


def adapter_hint(name: str, cfg: Any) -> str:
    for adapter in ADAPTERS.values():
        if name in adapter.classes:
            return f" ({adapter.refusal(cfg)})"
    return ""


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    try:
        value = cfg[key]
    except (KeyError, TypeError):
        value = getattr(cfg, key, default)
    return default if value is None else value


class DenoiserAdapter:
    """How to call one family of denoiser; one instance wraps one model.

    Attributes:
        family: registered name of the family.
        classes: the diffusers class names it handles.
        default_space: the packaged search space for it (``tocsr_nas/spaces/<name>.yaml``).
        subfolder: the denoiser's folder in a pipeline (``unet`` or ``transformer``).
    """

    family: ClassVar[str] = ""
    classes: ClassVar[tuple[str, ...]] = ()
    default_space: ClassVar[str] = "unet"
    subfolder: ClassVar[str] = "unet"

    def __init__(self, model: nn.Module, vae_scale_factor: int = 1) -> None:
        self.model = model
        self.vae_scale_factor = vae_scale_factor

    @classmethod
    def accepts(cls, config: Any) -> bool:
        """Whether a model of one of :attr:`classes` with this config is handled."""
        return True

    @classmethod
    def refusal(cls, config: Any) -> str:
        """Why :meth:`accepts` refused ``config`` (one phrase)."""
        return "this configuration is not supported"

    @classmethod
    def model_class(cls, name: str) -> type[nn.Module]:
        """The diffusers class of that name."""
        import diffusers

        return getattr(diffusers, name)

    @property
    def config(self) -> Any:
        return self.model.config

    # -------------------------------------------------------------- geometry
    @property
    def in_channels(self) -> int:
        return int(self.config.in_channels)

    @property
    def multiple(self) -> int:
        """The sample side (in latent pixels) must be a multiple of this."""
        return 1

    @property
    def sample_size(self) -> int:
        """The model's own sample side (latent pixels; pixels without a VAE)."""
        size = self.config.sample_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    # -------------------------------------------------------------- conditioning
    def context_shape(self) -> tuple[int, int] | None:
        """``(L, D)`` of the null context it needs as ``encoder_hidden_states``, or ``None``."""
        return None

    def pooled_dim(self) -> int | None:
        """Width of a pooled null embedding it needs (SDXL's ``text_embeds``), or ``None``."""
        return None

    def call(
        self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor | None = None, pooled: torch.Tensor | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` of one call ``model(*args, **kwargs)`` returning a tuple.

        Args:
            sample: ``(B, C, h, w)``.
            timestep: ``(B,)``.
            context: the null context ``(B, L, D)`` when :meth:`context_shape` is not ``None``.
            pooled: the pooled null embedding ``(B, P)`` when :meth:`pooled_dim` is not ``None``.
        """
        raise NotImplementedError

    def eps(self, output: Any) -> torch.Tensor:
        """The noise prediction in a call's output: its first ``in_channels`` channels."""
        out = output[0] if isinstance(output, (tuple, list)) else getattr(output, "sample", output)
        return out[:, : self.in_channels] if out.shape[1] != self.in_channels else out

    # -------------------------------------------------------------- helpers
    def _null_class(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch, dtype=torch.long, device=device)


@register_adapter
class UNet2DAdapter(DenoiserAdapter):
    """Pixel-space (or any-channel) ``UNet2DModel``: DDPM/DDIM-style pipelines."""

    family = "unet2d"
    classes = ("UNet2DModel",)
    default_space = "unet2d"

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.config.down_block_types) - 1)

    def call(self, sample, timestep, context=None, pooled=None):
        kwargs: dict[str, Any] = {"return_dict": False}
        if self.config.class_embed_type is not None or self.config.num_class_embeds is not None:
            kwargs["class_labels"] = self._null_class(sample.shape[0], sample.device)
        return (sample, timestep), kwargs


@register_adapter
class UNet2DConditionAdapter(DenoiserAdapter):
    """``UNet2DConditionModel``: cross-attention (SD1.5/2.1), SDXL ``text_time``, class labels."""

    family = "unet"
    classes = ("UNet2DConditionModel",)
    default_space = "unet"
    #: SDXL's six micro-conditioning ids: original size, crop top-left, target size
    TIME_IDS = 6

    @classmethod
    def accepts(cls, config: Any) -> bool:
        return _get(config, "addition_embed_type") in (None, "text", "text_time") and _get(
            config, "class_embed_type"
        ) in (None, "timestep", "identity", "projection", "simple_projection")

    @classmethod
    def refusal(cls, config: Any) -> str:
        return (
            f"addition_embed_type={_get(config, 'addition_embed_type')!r}, class_embed_type="
            f"{_get(config, 'class_embed_type')!r}; supported: addition_embed_type None, 'text' or 'text_time'"
        )

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.config.down_block_types) - 1)

    def context_shape(self) -> tuple[int, int] | None:
        if self.config.encoder_hid_dim is not None:  # projected inside the UNet (encoder_hid_proj)
            return (77, int(self.config.encoder_hid_dim))
        dim = self.config.cross_attention_dim
        if isinstance(dim, (list, tuple)):
            if len(set(dim)) != 1:
                raise UnsupportedModelError(f"UNet2DConditionModel with per-block cross_attention_dim {dim} needs a context/ folder")
            dim = dim[0]
        return (77, int(dim))

    def pooled_dim(self) -> int | None:
        if self.config.addition_embed_type != "text_time":
            return None
        return int(self.config.projection_class_embeddings_input_dim) - self.TIME_IDS * int(self.config.addition_time_embed_dim)

    def call(self, sample, timestep, context=None, pooled=None):
        b, device = sample.shape[0], sample.device
        kwargs: dict[str, Any] = {"encoder_hidden_states": context}
        cfg = self.config
        if cfg.addition_embed_type == "text_time":
            h, w = (int(s) * self.vae_scale_factor for s in sample.shape[-2:])
            ids = torch.tensor([h, w, 0, 0, h, w], dtype=sample.dtype, device=device).expand(b, -1)  # (B, 6)
            kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": ids}
        if cfg.class_embed_type in ("projection", "simple_projection"):
            kwargs["class_labels"] = torch.zeros(b, int(cfg.projection_class_embeddings_input_dim), dtype=sample.dtype, device=device)
        elif cfg.class_embed_type is not None or cfg.num_class_embeds is not None:
            kwargs["class_labels"] = self._null_class(b, device)
        kwargs["return_dict"] = False
        return (sample, timestep), kwargs


class _PatchTransformerAdapter(DenoiserAdapter):
    default_space = "transformer"
    subfolder = "transformer"

    @property
    def multiple(self) -> int:
        return int(self.config.patch_size)

    def _null_class(self, batch: int, device: torch.device) -> torch.Tensor:
        # the classifier-free "no class" row when the label table has one (DiT: num_classes + 1 rows)
        n = self.config.num_embeds_ada_norm
        table = None
        for module in self.model.modules():
            if type(module).__name__ == "LabelEmbedding":
                table = module.embedding_table.num_embeddings
                break
        label = n if n is not None and table is not None and table > n else 0
        return torch.full((batch,), int(label), dtype=torch.long, device=device)


@register_adapter
class DiTAdapter(_PatchTransformerAdapter):
    """``DiTTransformer2DModel`` and ``Transformer2DModel`` in DiT form (patches, ``ada_norm_zero``)."""

    family = "dit"
    classes = ("DiTTransformer2DModel", "Transformer2DModel")

    @classmethod
    def accepts(cls, config: Any) -> bool:
        return _get(config, "patch_size") is not None and _get(config, "norm_type", "ada_norm_zero") == "ada_norm_zero"

    @classmethod
    def refusal(cls, config: Any) -> str:
        return "only the DiT form (patch_size set, norm_type 'ada_norm_zero') is supported"

    def call(self, sample, timestep, context=None, pooled=None):
        labels = self._null_class(sample.shape[0], sample.device)
        return (sample,), {"timestep": timestep, "class_labels": labels, "return_dict": False}


@register_adapter
class PixArtAdapter(_PatchTransformerAdapter):
    """``PixArtTransformer2DModel`` (``ada_norm_single``, cross-attention to the caption)."""

    family = "pixart"
    classes = ("PixArtTransformer2DModel",)

    def context_shape(self) -> tuple[int, int] | None:
        return (8, int(self.config.caption_channels))

    def call(self, sample, timestep, context=None, pooled=None):
        b = sample.shape[0]
        added: dict[str, Any] = {"resolution": None, "aspect_ratio": None}
        if getattr(self.model, "use_additional_conditions", False):
            h, w = (int(s) * self.vae_scale_factor for s in sample.shape[-2:])
            added = {
                "resolution": torch.tensor([h, w], dtype=sample.dtype, device=sample.device).expand(b, -1),
                "aspect_ratio": torch.full((b, 1), h / w, dtype=sample.dtype, device=sample.device),
            }
        return (sample,), {"encoder_hidden_states": context, "timestep": timestep, "added_cond_kwargs": added, "return_dict": False}
