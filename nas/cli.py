"""The ``tocsr-nas`` command line.

Each sub-command lives in its own module under ``tocsr_nas.commands`` and exposes
``add_parser(subparsers)`` (which registers the parser and sets ``func``). Errors a user can
cause (:class:`~tocsr_nas.errors.TocsrError` and its subclasses, bad arguments) print one line
to stderr and exit with code 2, and so do the file-system refusals of :data:`DISK_ERRNOS` (a full,
read-only or forbidden disk, named by its path); nothing else is caught, so real bugs keep their
traceback.

``--plugin MODULE`` (before the command, repeatable) imports a module - a dotted name on
``sys.path`` or a ``.py`` file - before the command runs, so the strategies, surrogate types and
quality evaluators it registers (``@register_strategy`` ...) can be named on the command line.
Importing *executes* the module's code with your permissions, like ``python FILE``: give only
plugins you trust::

    tocsr-nas --plugin examples/custom_strategy.py search ... --strategy greedy-prior
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

from tocsr_nas.errors import TocsrError, UserInputError

#: ``OSError`` numbers that are the disk's answer, not a bug: no space, quota, read-only, no permission
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ("search", "space", "teacher", "distill", "export", "sr", "upscale", "evaluate", "run")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2, and records in ``prog`` of
    the parsed arguments the full name of the (sub-)command that ran, e.g. ``tocsr-nas sr train``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(prog=self.prog)  # a sub-command's default overrides its parent's

    def error(self, message: str) -> None:  # pragma: no cover - exercised through main()
        raise SystemExit(f"{self.prog}: error: {message}")


def load_plugin(name: str) -> ModuleType:
    """Import a plugin: a ``.py`` file path or a dotted module name (its registrations run on import).

    Raises:
        UserInputError: the file or module does not exist.
    """
    if name.endswith(".py") or "/" in name or "\\" in name:
        path = Path(name)
        if not path.is_file():
            raise UserInputError(f"--plugin {name}: no such file")
        module_name = f"tocsr_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look classes up here
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise UserInputError(f"--plugin {name}: no module named {exc.name!r} (give a .py path or a module on sys.path)") from None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tocsr-nas", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="run a Python file (.py) or import a module before the command, so the strategies, surrogates and "
        "qualities it registers can be named; its code executes with your permissions: use only trusted plugins "
        "(repeatable; goes before the command)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tocsr_nas.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tocsr_nas.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        return int(args.func(args) or 0)
    except TocsrError as exc:
        print(f"{args.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = exc.filename if exc.filename is not None else "a file"
        print(f"{args.prog}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted; finished work is saved, rerun with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
