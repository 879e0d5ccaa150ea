"""`connstorm package`: not built yet (see the open issues)."""

from __future__ import annotations

import argparse
from typing import Any

from connstorm.errors import ConnstormError


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("package", help="(not built yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    raise ConnstormError("connstorm package is not built yet")
