"""Where and in which precision a command computes: the one place ``--device`` and ``--dtype`` are resolved.

Every computing command (``teacher train``, ``distill``, ``search``, ``sr train``, ``sr distill``,
``upscale``, ``evaluate``, ``run``) takes ``--device {auto,cpu,cuda,cuda:N,mps}`` and ``--dtype
{float32,bfloat16,float16}`` (:func:`tocsr_nas.commands.add_device_options`) and hands the two strings
to its stage, which calls :func:`resolve` once. ``auto`` is a GPU when one is present (CUDA, then
Apple's MPS), else the CPU. A device that is not there is a :class:`DeviceError` (one line, exit 2).

The dtype is the *compute* precision. Capture, search and latency tables run the model in that
dtype; training (teacher, SR, one-step) and SR inference (upscale, evaluate) keep float32 weights
and run under :func:`autocast` (:meth:`Placement.autocast`), so saved weights stay float32. Each
command moves its model(s) to the device once and each step's batch as it is drawn; random numbers
are drawn on the CPU (CPU generators) and moved, so the draws do not depend on the device;
weights are saved, and images and metrics returned, on the CPU.
``cpu`` + ``float32`` is the default and changes nothing: results on the CPU are bit-for-bit those
of a build without this module.

Example:
    >>> p = resolve("cpu", "float32")
    >>> str(p.device), p.dtype, p.reduced
    ('cpu', torch.float32, False)
    >>> resolve("cpu", "bfloat16").label
    'cpu-bfloat16'
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from tocsr_nas.errors import UserInputError

__all__ = [
    "DEVICES",
    "DTYPES",
    "DeviceError",
    "Placement",
    "dtype_name",
    "resolve",
    "resolve_device",
    "resolve_dtype",
]

#: the ``--device`` spellings (``cuda:N`` is accepted too)
DEVICES = ("auto", "cpu", "cuda", "mps")
#: ``--dtype`` name -> torch dtype
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class _EmptyFp32ListFilter(logging.Filter):
    """Drops diffusers' warning that a model has modules to keep in float32 when it names none.

    diffusers 0.42 warns at every ``ModelMixin.to(dtype=...)``, listing ``[]`` when the model has no
    such modules; a ``--dtype bfloat16`` run printed it once per surrogate. A warning that names
    modules still shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_EmptyFp32ListFilter())


class DeviceError(UserInputError):
    """A device that is not present on this machine, or an unknown device or dtype name."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a ``--device`` value (``None`` counts as ``auto``).

    Raises:
        DeviceError: an unknown name, or a device this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: no Apple MPS device on this machine (use --device cpu or auto)")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"--device {name}: expected cuda or cuda:N with N a GPU index")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"--device {name}: no CUDA GPU on this machine (use --device cpu or auto)")
        if index and int(index) >= count:
            raise DeviceError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return torch.device(text)
    raise DeviceError(f"unknown --device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def resolve_dtype(name: str | torch.dtype | None = "float32") -> torch.dtype:
    """The torch dtype for a ``--dtype`` value (``None`` counts as ``float32``).

    Raises:
        DeviceError: a name other than float32, bfloat16, float16.
    """
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise DeviceError(f"unsupported dtype {name}; use one of {', '.join(DTYPES)}")
        return name
    try:
        return DTYPES[(name or "float32").strip().lower()]
    except KeyError:
        raise DeviceError(f"unknown --dtype {name!r}; use one of {', '.join(DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Placement:
    """A resolved device and compute dtype.

    Attributes:
        device: the torch device.
        dtype: the compute dtype.
    """

    device: torch.device
    dtype: torch.dtype = torch.float32

    @property
    def reduced(self) -> bool:
        """Whether the compute dtype is below float32 (bfloat16 or float16)."""
        return self.dtype != torch.float32

    @property
    def label(self) -> str:
        """``"cpu-float32"``, ``"cuda:0-bfloat16"``: a file-name-safe key for caches."""
        return f"{self.device}-{dtype_name(self.dtype)}"

    def is_default(self) -> bool:
        """CPU and float32: the placement every result before devices existed was computed with."""
        return self.device.type == "cpu" and not self.reduced

    def to_dict(self) -> dict[str, str]:
        """``{"device": "cpu", "dtype": "float32"}``: what configs and metadata record."""
        return {"device": str(self.device), "dtype": dtype_name(self.dtype)}

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for training: ``torch.autocast`` in the reduced dtype; nothing for float32.

        Master weights and optimiser state stay float32; only the ops autocast lists run reduced.
        """
        if not self.reduced:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield

    def synchronize(self) -> None:
        """Wait for the device's queued work (for timing); nothing on the CPU."""
        from tocsr_nas.evaluators.latency import synchronize

        synchronize(self.device)


def resolve(device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = "float32") -> Placement:
    """Resolve ``--device`` and ``--dtype`` into a :class:`Placement`.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (or a ``torch.device``).
        dtype: ``float32``, ``bfloat16``, ``float16`` (or a ``torch.dtype``).

    Returns:
        The placement.

    Raises:
        DeviceError: an absent device or an unknown name; float16 on the CPU (most CPU kernels
            have no float16 implementation: use bfloat16).
    """
    placement = Placement(resolve_device(device), resolve_dtype(dtype))
    if placement.device.type == "cpu" and placement.dtype == torch.float16:
        raise DeviceError("--dtype float16 is not supported on the CPU (use bfloat16 or float32)")
    return placement
