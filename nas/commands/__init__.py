"""Sub-commands of the ``tocsr-nas`` CLI, one module each (see ``tocsr_nas.cli``), and the
argparse value types and options they share.

A command parses its arguments and calls the library function of its stage (``tocsr_nas.stages``,
``tocsr_nas.sr``); nothing outside this package and ``tocsr_nas.cli`` imports the commands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = [
    "add_action_group",
    "add_checkpoint_options",
    "add_component",
    "add_device_options",
    "add_executor_options",
    "add_image_options",
    "add_out",
    "add_resume",
    "add_seed",
    "add_step_options",
    "add_threads",
    "fraction",
    "given",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "seed",
]

#: the largest seed: every seed must fit a ``torch.Generator`` (64 bits) with room for offsets
MAX_SEED = 2**63 - 1


def _int(text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
    return value


def _float(text: str) -> float:
    """A finite number (NaN and the infinities pass every ``<=`` check, so they are refused here)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int(text, 0)


def seed(text: str) -> int:
    """argparse type: a seed, an integer in ``[0, 2**63 - 1]``."""
    return _int(text, 0, MAX_SEED)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a finite number in ``(0, 1]``."""
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def add_action_group(subparsers: argparse._SubParsersAction, name: str, help: str, dest: str) -> Any:
    """Register command ``name`` whose actions are sub-commands; alone it prints its help (exit code 2).

    Returns:
        The sub-parsers to add the actions to.
    """
    parser = subparsers.add_parser(name, help=help)
    sub = parser.add_subparsers(dest=dest, metavar="ACTION", parser_class=type(parser))

    def missing_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=missing_action)
    return sub


def add_out(p: argparse.ArgumentParser, help: str, *, required: bool = True, default: Path | None = None) -> None:
    """``--out DIR``: the command's output folder."""
    p.add_argument("--out", type=Path, required=required, default=default, help=help)


def add_component(p: argparse.ArgumentParser, help: str = "the searched network") -> None:
    """``--component NAME``: ``denoiser`` (default) or ``vae.decoder`` (:mod:`tocsr_nas.teacher.components`;
    ``None`` when not given, so a command can take the component a library or a search records)."""
    p.add_argument("--component", metavar="NAME", default=None, help=f"{help}: denoiser (default) or vae.decoder")


def add_seed(p: argparse.ArgumentParser, default: int | None = None, help: str = "seed") -> None:
    """``--seed N``; the help names the default (``0`` when ``default`` is ``None``: the config's)."""
    shown = 0 if default is None else default
    p.add_argument("--seed", type=seed, default=default, help=f"{help} (default {shown})")


def add_threads(p: argparse.ArgumentParser, default: int | None = None, help: str = "torch CPU threads") -> None:
    """``--threads N`` (>= 1): torch CPU threads (:func:`tocsr_nas.threads.set_threads`; ``None``: torch's choice)."""
    p.add_argument("--threads", type=positive_int, default=default, help=help)


def add_device_options(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype`` of a computing command, resolved by :func:`tocsr_nas.devices.resolve`
    (an absent device is one line, exit code 2, when the command runs)."""
    p.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N,mps}",
        help="where to compute (default auto: a CUDA or MPS GPU when present, else the CPU)",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16", "float16"),
        help="compute precision (default float32; training keeps float32 weights and runs autocast)",
    )


def add_resume(p: argparse.ArgumentParser, help: str = "continue OUT from its last checkpoint") -> None:
    """``--resume``."""
    p.add_argument("--resume", action="store_true", help=help)


def add_executor_options(p: argparse.ArgumentParser, what: str = "jobs") -> None:
    """``--executor {local,ray}`` and ``--ray-address ADDR``: where the command's ``what`` run
    (:mod:`tocsr_nas.executors`; Ray is imported only when asked for)."""
    from tocsr_nas.executors import EXECUTORS

    p.add_argument(
        "--executor", choices=EXECUTORS, default="local",
        help=f"where the {what} run: local (this machine, default) or ray (a Ray cluster; pip install -e '.[ray]')",
    )
    p.add_argument(
        "--ray-address", metavar="ADDR", default=None,
        help="the Ray cluster to join with --executor ray (default: RAY_ADDRESS if set, else a new local cluster)",
    )


def add_image_options(p: argparse.ArgumentParser, help: str = "train on this folder of images instead") -> None:
    """``--images DIR``: train on a folder of images instead of the built-in photos."""
    p.add_argument("--images", type=Path, default=None, help=help)


def add_step_options(
    p: argparse.ArgumentParser,
    *,
    steps: int,
    batch_size: int,
    lr: str,
    what: tuple[str, str, str] = ("optimisation steps", "latent crops per step", "peak learning rate"),
) -> None:
    """``--steps``, ``--batch-size`` and ``--lr`` of a training command; unset (``None``) they take the
    config's defaults, which the help quotes. ``what`` are the three helps without their defaults.
    ``--steps`` and ``--batch-size`` are integers >= 1 (zero steps would save an untrained model),
    ``--lr`` a finite number > 0."""
    p.add_argument("--steps", type=positive_int, default=None, help=f"{what[0]} (default {steps})")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"{what[1]} (default {batch_size})")
    p.add_argument("--lr", type=positive_float, default=None, help=f"{what[2]} (default {lr})")


def add_checkpoint_options(
    p: argparse.ArgumentParser,
    *,
    every: int,
    keep: str = "keep OUT/checkpoints after success (to extend --steps)",
    threads: str = "torch CPU threads (1 is often fastest on a busy machine)",
) -> None:
    """The options of a checkpointed training command: ``--checkpoint-every``, ``--resume``,
    ``--keep-checkpoints``, ``--no-progress``, ``--threads``, ``--device`` and ``--dtype``."""
    p.add_argument("--checkpoint-every", type=positive_int, default=None, help=f"steps between checkpoints (default {every})")
    add_resume(p)
    p.add_argument("--keep-checkpoints", action="store_true", help=keep)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads(p, help=threads)
    add_device_options(p)


def given(args: argparse.Namespace, *names: str, **renamed: str) -> dict[str, Any]:
    """Config options from parsed arguments: each of ``names`` as is, each ``field=dest`` renamed;
    a ``Path`` becomes a string (configs record plain JSON values)."""
    pairs = [(n, n) for n in names] + list(renamed.items())
    return {field: str(v) if isinstance(v := getattr(args, dest), Path) else v for field, dest in pairs}
