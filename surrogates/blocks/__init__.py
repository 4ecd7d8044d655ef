"""The built-in surrogate block types, one small module per family.

Importing this package registers them: ``skip``, ``bottleneck_resnet``, ``dwsep_resnet``,
``light_transformer``, ``conv_mixer``, ``pool_down``, ``light_up``, ``mean_attention``, ``light_block``.
"""

from tocsr_nas.surrogates.blocks.attention import LightBlock, MeanAttention
from tocsr_nas.surrogates.blocks.conv_mixer import ConvMixer
from tocsr_nas.surrogates.blocks.resnet import BottleneckResnet, DwsepResnet
from tocsr_nas.surrogates.blocks.samplers import LightUp, PoolDown
from tocsr_nas.surrogates.blocks.skip import Skip
from tocsr_nas.surrogates.blocks.transformer import LightTransformer

__all__ = ["Skip", "BottleneckResnet", "DwsepResnet", "LightTransformer", "ConvMixer", "PoolDown", "LightUp", "MeanAttention", "LightBlock"]
