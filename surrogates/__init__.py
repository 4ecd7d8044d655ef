"""Surrogate blocks: cheaper stand-ins for the teacher UNet's blocks, found by name in a registry.

Quick start::

    from tocsr_nas.surrogates import available_surrogates, build_surrogate, block_kind

    kind = block_kind(unet.down_blocks[0].resnets[0])          # "resnet"
    block = build_surrogate("bottleneck_resnet", unet.down_blocks[0].resnets[0], ratio=0.25)
    block.config                                               # JSON-able; type(block).from_config(...) rebuilds it

Add a type with ``@register_surrogate("name")`` on a :class:`SurrogateBlock` subclass (see
:mod:`tocsr_nas.surrogates.base`) and check it with :mod:`tocsr_nas.surrogates.testing`.
"""

from tocsr_nas.surrogates.base import SurrogateBlock, check_bool, check_number
from tocsr_nas.surrogates.blocks import (
    BottleneckResnet,
    ConvMixer,
    DwsepResnet,
    LightTransformer,
    LightUp,
    PoolDown,
    Skip,
)
from tocsr_nas.surrogates.errors import (
    DuplicateSurrogateError,
    IncompatibleBlockError,
    SurrogateError,
    SurrogateParamError,
    SurrogateShapeError,
    UnknownSurrogateError,
)
from tocsr_nas.surrogates.kinds import (
    ANY_KIND,
    KINDS,
    ResnetDims,
    SamplerDims,
    TransformerDims,
    bind_call,
    block_kind,
    block_output,
    call_signature,
    example_inputs,
    resnet_dims,
    sampler_dims,
    transformer_dims,
    transformer_output,
)
from tocsr_nas.surrogates.registry import (
    available_surrogates,
    build_surrogate,
    get_surrogate,
    register_surrogate,
    surrogate_from_config,
    surrogates_for,
    unregister_surrogate,
)

__all__ = [
    "SurrogateBlock",
    "register_surrogate",
    "unregister_surrogate",
    "get_surrogate",
    "available_surrogates",
    "surrogates_for",
    "build_surrogate",
    "surrogate_from_config",
    "block_kind",
    "KINDS",
    "ANY_KIND",
    "call_signature",
    "bind_call",
    "example_inputs",
    "block_output",
    "transformer_output",
    "resnet_dims",
    "transformer_dims",
    "sampler_dims",
    "ResnetDims",
    "TransformerDims",
    "SamplerDims",
    "check_number",
    "check_bool",
    "SurrogateError",
    "UnknownSurrogateError",
    "DuplicateSurrogateError",
    "SurrogateParamError",
    "IncompatibleBlockError",
    "SurrogateShapeError",
    "Skip",
    "BottleneckResnet",
    "DwsepResnet",
    "LightTransformer",
    "ConvMixer",
    "PoolDown",
    "LightUp",
]

# the library on disk and the supernet that routes configurations through it
from tocsr_nas.surrogates.library import SurrogateLibrary  # noqa: E402
from tocsr_nas.surrogates.supernet import SuperNet  # noqa: E402

__all__ += ["SurrogateLibrary", "SuperNet"]
