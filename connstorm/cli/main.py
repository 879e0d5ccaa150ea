"""The ``connstorm`` command line.

Each subcommand lives in its own module under :mod:`connstorm.cli.commands` and
exposes ``add_parser(subparsers)`` and ``run(args) -> int``. This module only
dispatches and turns user errors into one line and an exit code (see
:class:`connstorm.errors.ExitCode`); a traceback means a bug in connstorm.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from connstorm import __version__
from connstorm.errors import ConnstormError, ExitCode
from connstorm.signals import Terminated, exit_on_sigterm, received_sigterm

COMMANDS = ("up", "run", "ui", "live", "repro", "drivers", "report", "capacity", "package",
            "schema")


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser; each command module in ``commands`` adds its own subparser."""
    parser = argparse.ArgumentParser(
        prog="connstorm",
        description="Reproduce and fix Lambda-to-PostgreSQL connection storms.")
    parser.add_argument("--version", action="version", version=f"connstorm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands:
        module = importlib.import_module(f"connstorm.cli.commands.{name}")
        module.add_parser(sub)
    return parser


def commands_needed(argv: Sequence[str]) -> tuple[str, ...]:
    """The commands whose modules parsing ``argv`` needs: one, none or all.

    Why: a command's module imports what its options name (the scenario model and
    pydantic, psycopg, rich), and importing all nine cost ``--version`` most of
    its 0.44 s (``python -X importtime``, issue 24). So the parser holds only the
    command that is asked for; ``--version`` before any command needs none, and
    top-level help or a word that names no command gets all of them, for the list
    or the "invalid choice" error.
    """
    for arg in argv:
        if arg in ("-h", "--help"):
            return COMMANDS
        if arg == "--version":
            return ()
        if not arg.startswith("-"):
            return (arg,) if arg in COMMANDS else COMMANDS
    return COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(commands_needed(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        with exit_on_sigterm():
            code = int(args.func(args))
        if received_sigterm():
            raise Terminated()
        return code
    except ConnstormError as exc:
        sys.stderr.write(f"connstorm: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("connstorm: interrupted, everything stopped\n")
        return int(ExitCode.INTERRUPTED)
    except Terminated:
        sys.stderr.write("connstorm: terminated, everything stopped\n")
        return int(ExitCode.TERMINATED)
