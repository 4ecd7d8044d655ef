"""Evaluators: complexity (fvcore MACs with attention counted, parameters, per-block cost tables).

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

__all__ = [
    "BlockCost",
    "Complexity",
    "CostTable",
    "CostTableError",
    "TEACHER",
    "UnsupportedOpError",
    "ZERO_COST_OPS",
    "count_complexity",
    "count_macs",
    "count_params",
]
