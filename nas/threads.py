"""torch's CPU thread count, set the same way by every stage and command."""

from __future__ import annotations

from tocsr_nas.errors import TocsrError

__all__ = ["set_threads"]


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads (``None``: leave torch's choice).

    One thread is often fastest for the package's small models on a busy shared machine.

    Raises:
        TocsrError: ``threads`` is below 1.
    """
    if threads is None:
        return
    if threads < 1:
        raise TocsrError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
