"""Evaluators: complexity (fvcore MACs with attention counted, parameters, per-block cost tables)
and quality (denoising loss, teacher agreement, the supernet quality function).

Convention: one fused multiply-add = one MAC.
"""

from tocsr_nas.evaluators.complexity import (
    ZERO_COST_OPS,
    Complexity,
    UnsupportedOpError,
    count_complexity,
    count_macs,
    count_params,
)
from tocsr_nas.evaluators.cost_table import TEACHER, BlockCost, CostTable, CostTableError
from tocsr_nas.evaluators.latency import LatencyTable, TableCosts, measure_ms
from tocsr_nas.evaluators.quality import (
    DenoisingLossIncrease,
    QualityEvaluator,
    SupernetQuality,
    TeacherAgreement,
    ValidationSet,
    ValidationSetError,
    available_qualities,
    get_quality,
    make_quality,
    register_quality,
    unet_forward,
)

__all__ = [
    "BlockCost",
    "Complexity",
    "CostTable",
    "CostTableError",
    "LatencyTable",
    "TableCosts",
    "measure_ms",
    "TEACHER",
    "UnsupportedOpError",
    "ZERO_COST_OPS",
    "count_complexity",
    "count_macs",
    "count_params",
    "DenoisingLossIncrease",
    "QualityEvaluator",
    "SupernetQuality",
    "TeacherAgreement",
    "ValidationSet",
    "ValidationSetError",
    "available_qualities",
    "get_quality",
    "make_quality",
    "register_quality",
    "unet_forward",
]
