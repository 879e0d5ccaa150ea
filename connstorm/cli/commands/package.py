"""`connstorm package`: build the AWS Lambda deployment zip of ``handlers/``.

    connstorm package --arch arm64 --out dist/handlers-arm64.zip

The zip holds ``handlers/`` and psycopg's binary wheels (plus psycopg-pool) for
Lambda's Linux on the chosen architecture, Python 3.11; see
:mod:`connstorm.packaging`. Prints where it went and its size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from connstorm.packaging import PLATFORMS, PackageSpec, build_package, default_out


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("package", help="build the Lambda deployment zip of handlers/",
                       description="Build a deployment zip of handlers/ with psycopg's binary "
                                   "wheels for AWS Lambda (python3.11).")
    p.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64",
                   help="Lambda architecture (default x86_64)")
    p.add_argument("--out", type=Path, default=None,
                   help="zip file to write (default dist/handlers-<arch>.zip)")
    p.add_argument("--python-version", default="3.11",
                   help="Lambda runtime's Python version (default 3.11)")
    p.add_argument("--find-links", type=Path, default=None,
                   help="install wheels from this folder only (offline), not from PyPI")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the zip and print its path and size."""
    out = args.out or default_out(args.arch)
    pip_args: tuple[str, ...] = ()
    if args.find_links is not None:
        pip_args = ("--no-index", "--find-links", str(args.find_links))
    result = build_package(PackageSpec(arch=args.arch, out=out,
                                       python_version=args.python_version, pip_args=pip_args))
    sys.stdout.write(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.size_bytes} bytes, "
        f"{result.files} files) for Lambda python{args.python_version} {args.arch}: "
        f"handlers + {', '.join(result.distributions)}\n"
        f"handler: handlers.<pattern>_handler.lambda_handler\n")
    return 0
