"""The ``tocsr-nas`` command line.

Each sub-command lives in its own module under ``tocsr_nas.commands`` and exposes
``add_parser(subparsers)`` (which registers the parser and sets ``func``). Errors a user can
cause (:class:`~tocsr_nas.errors.TocsrError` and its subclasses, bad arguments) print one line
to stderr and exit with code 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tocsr_nas.errors import TocsrError

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ("search", "space", "teacher", "distill", "export", "sr", "upscale", "evaluate", "run")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2."""

    def error(self, message: str) -> None:  # pragma: no cover - exercised through main()
        raise SystemExit(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tocsr-nas", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
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
        return int(args.func(args) or 0)
    except TocsrError as exc:
        print(f"tocsr-nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tocsr-nas {args.command}: interrupted; finished work is saved, rerun with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
