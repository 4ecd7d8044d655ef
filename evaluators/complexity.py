"""Complexity of a module: multiply-accumulates (MACs) counted with fvcore, and parameters.

Convention (stated first, as fvcore does): **one fused multiply-add is one MAC**. fvcore's
``FlopCountAnalysis`` already counts this way (its "flop" is a MAC), so ``macs`` here is exactly
fvcore's total, extended by one handle:

* ``aten::scaled_dot_product_attention`` (fvcore skips it). For a query ``(..., L_q, D)``, key
  ``(..., L_k, D)`` and value ``(..., L_k, D_v)`` whose leading dims multiply to ``N = B * heads``:

      scores  = Q K^T            ->  N * L_q * L_k * D    MACs
      output  = softmax(scores) V ->  N * L_q * L_k * D_v  MACs
      total   = N * L_q * L_k * (D + D_v)

  The softmax itself, like every elementwise op, costs no MACs. With ``count_attention=False``
  the handle counts 0, which reproduces fvcore's default figure.

Everything fvcore counts by default stays as it is (convolutions, linear layers, matmuls, norms,
upsampling, ...). Ops that fvcore does not support are checked against :data:`ZERO_COST_OPS`, an
explicit list of ops that cost no MACs by this convention (elementwise arithmetic, activations,
``exp``/``sin``/``cos``, softmax, reductions, reshapes). Any other unsupported op raises
:class:`UnsupportedOpError`: a ranking built on a silent undercount would be wrong.

Parameters are the number of elements of the module's unique parameters.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils import _pytree as pytree

from tocsr_nas.searchspace.errors import TocsrError

__all__ = [
    "Complexity",
    "UnsupportedOpError",
    "ZERO_COST_OPS",
    "ATTENTION_OP",
    "count_complexity",
    "count_macs",
    "count_params",
    "trace_macs",
]

logger = logging.getLogger(__name__)

#: the operator name under which attention MACs are reported (fvcore drops the ``aten::`` prefix)
ATTENTION_OP = "scaled_dot_product_attention"

#: ops without a fvcore handle that cost no MACs by our convention (fvcore additionally ignores
#: pure shape/memory ops such as ``aten::view`` or ``aten::cat`` itself).
ZERO_COST_OPS: frozenset[str] = frozenset(
    "aten::" + name
    for name in (
        # elementwise arithmetic (an add or a multiply alone is not a multiply-accumulate)
        "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs",
        "pow", "sqrt", "rsqrt", "reciprocal", "square", "exp", "exp_", "log", "sin", "cos",
        "round", "ceil", "sign", "fmod", "lerp", "addcmul", "addcdiv", "where", "minimum",
        "maximum", "min", "lt", "le", "ne", "logical_and", "logical_or", "logical_not",
        "bitwise_and", "bitwise_or", "isnan", "isinf", "masked_fill_", "fill_", "zero_",
        "clamp_min", "clamp_max", "nan_to_num",
        # activations and normalised exponentials
        "silu", "silu_", "gelu", "gelu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softplus",
        "leaky_relu", "leaky_relu_", "elu", "mish", "hardswish", "hardsigmoid", "hardtanh",
        "softmax", "log_softmax", "_softmax", "erf", "glu",
        # reductions
        "mean", "sum", "var", "std", "var_mean", "amax", "amin", "argmax", "argmin",
        "linalg_vector_norm", "norm", "cumsum", "max_pool2d", "max_pool1d",
        # shape, copy and index ops fvcore does not already ignore
        "repeat", "repeat_interleave", "expand_as", "view_as", "reshape_as", "flip",
        "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "pad", "reflection_pad2d",
        "replication_pad2d", "clone", "alias", "movedim", "swapaxes", "unflatten", "tile",
        "ones_like", "empty_like", "rand_like", "randn_like", "randn", "rand", "normal",
        "bernoulli", "bernoulli_", "feature_dropout", "alpha_dropout", "lift_fresh",
        "scalar_tensor", "tensor", "as_strided", "new_ones", "new_tensor", "item",
        "numel", "dim", "len", "index_select", "masked_select", "scatter", "embedding",
        "_unsafe_view", "contiguous", "resolve_conj", "resolve_neg", "fill", "linspace",
        "float", "long", "sort", "topk", "one_hot", "triu", "tril", "diff",
    )
)


class UnsupportedOpError(TocsrError):
    """The traced module ran an op that has no MAC handle and is not known to cost zero MACs.

    Args:
        ops: the unsupported op names and how often each occurred.
    """

    def __init__(self, ops: Mapping[str, int]) -> None:
        self.ops = dict(ops)
        listed = ", ".join(f"{name} (x{n})" for name, n in sorted(self.ops.items()))
        super().__init__(
            f"cannot count MACs: unsupported op(s) {listed}; register a handle for them or, "
            "if they cost no multiply-accumulates, add them to "
            "tocsr_nas.evaluators.complexity.ZERO_COST_OPS"
        )


@dataclass(frozen=True)
class Complexity:
    """MACs (one fused multiply-add = one MAC) and parameters of a module or configuration.

    Args:
        macs: multiply-accumulates of one forward pass at the traced input shapes.
        params: number of parameters.

    Example:
        >>> c = Complexity(macs=2_000_000_000, params=3_000_000) + Complexity(macs=0, params=1)
        >>> (c.gmacs, c.mparams)
        (2.0, 3.000001)
    """

    macs: int
    params: int

    @property
    def gmacs(self) -> float:
        """MACs in units of 10^9."""
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        """Parameters in units of 10^6."""
        return self.params / 1e6

    def __add__(self, other: Complexity) -> Complexity:
        if not isinstance(other, Complexity):
            return NotImplemented
        return Complexity(macs=self.macs + other.macs, params=self.params + other.params)

    def __radd__(self, other: Any) -> Complexity:
        # lets ``sum(complexities)`` start from 0
        if other == 0:
            return self
        return NotImplemented

    def __sub__(self, other: Complexity) -> Complexity:
        if not isinstance(other, Complexity):
            return NotImplemented
        return Complexity(macs=self.macs - other.macs, params=self.params - other.params)

    def to_dict(self) -> dict[str, int]:
        """The JSON form ``{"macs": int, "params": int}``."""
        return {"macs": int(self.macs), "params": int(self.params)}


# --------------------------------------------------------------------------- handles


def _shape(value: Any) -> list[int]:
    """The complete static shape of a jit value (fvcore's ``get_shape``, but never ``None``)."""
    if not value.isCompleteTensor():
        raise TocsrError("cannot count MACs: a traced tensor has no complete static shape")
    return list(value.type().sizes())


def sdpa_macs(query: Sequence[int], key: Sequence[int], value: Sequence[int]) -> int:
    """MACs of ``scaled_dot_product_attention`` from the shapes of its operands.

    Args:
        query: ``(..., L_q, D)``.
        key: ``(..., L_k, D)``.
        value: ``(..., L_k, D_v)``.

    Returns:
        ``N * L_q * L_k * (D + D_v)`` with ``N`` the product of the query's leading dims
        (batch times heads): ``Q K^T`` plus ``softmax(.) V``.
    """
    *lead, l_q, d = query
    l_k = key[-2]
    d_v = value[-1]
    return math.prod(lead) * l_q * l_k * (d + d_v)


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    # aten::scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, ...)
    return Counter({ATTENTION_OP: sdpa_macs(_shape(inputs[0]), _shape(inputs[1]), _shape(inputs[2]))})


def _baddbmm_handle(inputs: list[Any], outputs: list[Any]) -> int:
    # aten::baddbmm(input, batch1 (n, c, t), batch2 (n, t, d), beta, alpha): n * c * t * d
    n, c, t = _shape(inputs[1])
    return n * c * t * _shape(inputs[2])[-1]


def _as_int_handle(handle: Callable[[list[Any], list[Any]], Any]) -> Callable[[list[Any], list[Any]], Any]:
    """Wraps a fvcore handle so that it reports whole MACs (some fvcore handles return floats)."""

    def wrapped(inputs: list[Any], outputs: list[Any]) -> Any:
        result = handle(inputs, outputs)
        if isinstance(result, Counter):
            return Counter({k: int(round(v)) for k, v in result.items()})
        return int(round(result))

    return wrapped


def _handles() -> dict[str, Callable[[list[Any], list[Any]], Any]]:
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
    from fvcore.nn.jit_handles import elementwise_flop_counter

    handles = dict(_DEFAULT_SUPPORTED_OPS)
    handles["aten::scaled_dot_product_attention"] = _sdpa_handle
    handles["aten::baddbmm"] = _baddbmm_handle
    # average pooling counted like fvcore's adaptive_avg_pool2d: one MAC per input element
    handles["aten::avg_pool2d"] = elementwise_flop_counter(1, 0)
    handles["aten::avg_pool1d"] = elementwise_flop_counter(1, 0)
    handles["aten::upsample_bicubic2d"] = elementwise_flop_counter(0, 16)
    handles["aten::_upsample_nearest_exact2d"] = elementwise_flop_counter(0, 1)
    return {name: _as_int_handle(h) for name, h in handles.items()}


# --------------------------------------------------------------------------- tracing


def _flatten_output(output: Any) -> tuple[torch.Tensor, ...]:
    """Every tensor of a module's output, in order (dataclass outputs, tuples, dicts, None)."""
    if isinstance(output, torch.Tensor):
        return (output,)
    if output is None or isinstance(output, (int, float, bool, str)):
        return ()
    to_tuple = getattr(output, "to_tuple", None)  # diffusers BaseOutput
    if callable(to_tuple):
        output = to_tuple()
    if isinstance(output, Mapping):
        output = tuple(output.values())
    if isinstance(output, (tuple, list)):
        return tuple(t for item in output for t in _flatten_output(item))
    raise TocsrError(f"cannot count MACs: unsupported module output type {type(output).__name__}")


#: module outputs whose anchors are stacked together (see :class:`_TraceAdapter`)
_ANCHOR_CHUNK = 16


class _TraceAdapter(nn.Module):
    """Calls ``module(*args, **kwargs)`` from the flat tuple of its tensor inputs.

    fvcore traces positional tensor inputs only, so the tensors inside ``args``/``kwargs``
    (nested in tuples, lists or dicts) become the traced inputs and every other leaf is a
    constant re-applied at call time; the output is flattened to a tuple of tensors.

    The JIT tracer removes dead code, so a submodule whose output nobody reads (say the time
    embedding of a UNet whose every ResNet was replaced by a skip) would silently drop out of
    the count, although eager PyTorch still runs it. To count what actually runs, and to make
    a block cost the same alone and in context, every submodule output is *anchored*: one
    element of each is stacked into an extra output (``as_strided``, ``stack`` and ``cat``:
    zero MACs). Each traced op costs real time, so an anchor is one op (a 0-d view of the
    first element, no copy even of a non-contiguous output), and the views are stacked every
    :data:`_ANCHOR_CHUNK` outputs, so that they keep at most that many outputs' storage alive
    (holding every one until the end held about 1 GB more in SD2.1's UNet at 512 px).
    """

    def __init__(self, module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.module = module
        leaves, self._spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
        self._tensor_at = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        self._leaves = leaves
        self.tensors = tuple(leaves[i] for i in self._tensor_at)
        # (dtype, device) -> stacked chunks (k,) and the pending 0-d views
        self._anchors: dict[tuple[torch.dtype, torch.device], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    def _anchor_hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        for tensor in _tensors_in(output):
            if tensor.numel() > 0:
                chunks, pending = self._anchors.setdefault((tensor.dtype, tensor.device), ([], []))
                pending.append(tensor.as_strided((), ()))  # (): a view of the first element
                if len(pending) == _ANCHOR_CHUNK:
                    chunks.append(torch.stack(pending))  # (chunk,): a copy, the views go
                    pending.clear()

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = list(self._leaves)
        for i, tensor in zip(self._tensor_at, tensors):
            leaves[i] = tensor
        args, kwargs = pytree.tree_unflatten(leaves, self._spec)
        handles = [m.register_forward_hook(self._anchor_hook) for m in self.module.modules()]
        self._anchors = {}
        try:
            outputs = _flatten_output(self.module(*args, **kwargs))
        finally:
            for handle in handles:
                handle.remove()
        anchors = tuple(
            torch.cat([*chunks, *([torch.stack(pending)] if pending else [])])  # (n,)
            for chunks, pending in self._anchors.values()
        )
        self._anchors = {}
        return (*outputs, *anchors)


def _tensors_in(value: Any) -> list[torch.Tensor]:
    """Every tensor in a module output (lenient: unknown containers hold none)."""
    if isinstance(value, torch.Tensor):
        return [value]
    to_tuple = getattr(value, "to_tuple", None)
    if callable(to_tuple):
        value = to_tuple()
    if isinstance(value, Mapping):
        value = tuple(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors_in(item)]
    return []


def trace_macs(
    module: nn.Module,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    submodules: Sequence[str] = (),
) -> dict[str, tuple[int, int]]:
    """Traces ``module(*args, **kwargs)`` once with fvcore; MACs of the module and of submodules.

    An op counts towards a submodule when it runs inside that submodule's call (fvcore's
    "owner" scopes), so a block's figure here equals a trace of the block alone on the same
    inputs.

    Args:
        module: the module to trace (run under ``torch.no_grad``; its mode is left unchanged).
        args: positional call arguments.
        kwargs: keyword call arguments.
        submodules: dotted paths (relative to ``module``) whose share is wanted as well.

    Returns:
        ``{"": (macs, attention_macs), path: (macs, attention_macs), ...}``: MACs with
        attention counted and the part of them that comes from ``scaled_dot_product_attention``
        (``macs - attention_macs`` is fvcore's default figure).

    Raises:
        UnsupportedOpError: an op without a handle that is not in :data:`ZERO_COST_OPS` ran.
    """
    with warnings.catch_warnings():
        # importing fvcore scripts a few helpers with the deprecated torch.jit.script
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

    adapter = _TraceAdapter(module, tuple(args), dict(kwargs or {}))
    analysis = FlopCountAnalysis(adapter, adapter.tensors)
    analysis.clear_op_handles()
    analysis.set_op_handle(**_handles())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    fvcore_logger = logging.getLogger("fvcore")
    previous = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            counts = analysis.by_module_and_operator()
    finally:
        fvcore_logger.setLevel(previous)
    unsupported = {op: n for op, n in analysis.unsupported_ops().items() if op not in ZERO_COST_OPS}
    if unsupported:
        raise UnsupportedOpError(unsupported)

    def total(name: str) -> tuple[int, int]:
        by_op = counts[analysis.canonical_module_name(name)]
        return int(sum(by_op.values())), int(by_op.get(ATTENTION_OP, 0))

    result = {"": total("")}
    for path in submodules:
        result[path] = total(f"module.{path}" if path else "module")
    return result


def count_macs(
    module: nn.Module, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> tuple[int, int]:
    """Traces ``module(*args, **kwargs)`` once with fvcore and returns its MACs.

    Args:
        module: the module to trace (run under ``torch.no_grad``; its mode is left unchanged).
        args: positional call arguments.
        kwargs: keyword call arguments.

    Returns:
        ``(macs, attention_macs)``: all MACs with attention counted, and the part of them that
        comes from ``scaled_dot_product_attention`` (``macs - attention_macs`` is fvcore's
        default figure).

    Raises:
        UnsupportedOpError: an op without a handle that is not in :data:`ZERO_COST_OPS` ran.
    """
    return trace_macs(module, args, kwargs)[""]


def count_params(module: nn.Module) -> int:
    """Number of elements of the module's unique parameters (shared ones counted once)."""
    return sum(p.numel() for p in module.parameters())


def count_complexity(
    module: nn.Module,
    args: Sequence[Any] | Any = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    count_attention: bool = True,
) -> Complexity:
    """MACs of one forward pass ``module(*args, **kwargs)`` and the module's parameters.

    Args:
        module: any ``nn.Module``; its output may be a tensor, a tuple/list/dict of tensors or a
            diffusers ``BaseOutput``.
        args: positional call arguments (a single tensor is accepted as-is). Tensors may be nested
            in tuples, lists and dicts; other values are passed through as constants.
        kwargs: keyword call arguments, e.g. ``{"return_dict": False}``.
        count_attention: count the MACs of ``scaled_dot_product_attention`` (the default); with
            ``False`` the figure equals fvcore's default count.

    Returns:
        The :class:`Complexity` (``macs`` one fused multiply-add each, ``params``).

    Raises:
        UnsupportedOpError: the module ran an op with no handle that is not known to be free.

    Example:
        >>> import torch
        >>> c = count_complexity(torch.nn.Linear(8, 4), (torch.zeros(2, 8),))
        >>> (c.macs, c.params)
        (64, 36)
    """
    if isinstance(args, torch.Tensor):
        args = (args,)
    macs, attention = count_macs(module, tuple(args), kwargs)
    return Complexity(macs=macs if count_attention else macs - attention, params=count_params(module))

