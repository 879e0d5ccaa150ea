"""`connstorm package`: build the AWS Lambda deployment zip of ``handlers/``.

    connstorm package --arch arm64 --out dist/handlers-arm64.zip
    connstorm package --rds-ca-bundle global-bundle.pem --rds-ca-bundle AmazonRootCA1.pem

The zip holds ``handlers/`` and psycopg's binary wheels (plus psycopg-pool) for
Lambda's Linux on the chosen architecture, Python 3.11, and with
``--rds-ca-bundle`` the certificates ``sslmode=verify-full`` checks the server
with; see :mod:`connstorm.packaging`. Prints where it went and its size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from connstorm.packaging import (
    CA_BUNDLE_NAME,
    PLATFORMS,
    RDS_CA_BUNDLE_URL,
    PackageSpec,
    build_package,
    default_out,
)


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
    p.add_argument("--rds-ca-bundle", type=Path, action="append", default=[],
                   metavar="FILE",
                   help=f"PEM certificates to put in the zip as {CA_BUNDLE_NAME} for "
                        "sslmode=verify-full (repeatable): the RDS bundle "
                        f"({RDS_CA_BUNDLE_URL}) and, for RDS Proxy, Amazon Root CA 1")
    from connstorm.handlers.drivers import BY_NAME

    p.add_argument("--driver", action="append", default=[], choices=sorted(BY_NAME),
                   metavar="CONFIG",
                   help="also install the driver of a driver-matrix configuration "
                        "(handlers/drivers/CONFIG/, e.g. asyncpg_pool_1; repeatable)")
    p.set_defaults(func=run)


def requirements(drivers: list[str]) -> tuple[str, ...]:
    """psycopg's, plus each named driver-matrix configuration's (in order, once each)."""
    from connstorm.handlers.drivers import BY_NAME
    from connstorm.packaging import REQUIREMENTS

    found = list(REQUIREMENTS)
    for name in drivers:
        found += [r for r in BY_NAME[name].requirements if r not in found]
    return tuple(found)


def run(args: argparse.Namespace) -> int:
    """Build the zip and print its path and size."""
    out = args.out or default_out(args.arch)
    pip_args: tuple[str, ...] = ()
    if args.find_links is not None:
        pip_args = ("--no-index", "--find-links", str(args.find_links))
    result = build_package(PackageSpec(arch=args.arch, out=out,
                                       python_version=args.python_version, pip_args=pip_args,
                                       ca_bundles=tuple(args.rds_ca_bundle),
                                       requirements=requirements(args.driver)))
    if result.ca_certificates:
        tls = (f"{CA_BUNDLE_NAME}: {result.ca_certificates} CA certificates "
               "(deploy with DbSslMode=verify-full, the default)")
    else:
        tls = ("no --rds-ca-bundle: deploy with DbSslMode=require, or build again with "
               f"--rds-ca-bundle (RDS bundle: {RDS_CA_BUNDLE_URL})")
    sys.stdout.write(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.size_bytes} bytes, "
        f"{result.files} files) for Lambda python{args.python_version} {args.arch}: "
        f"handlers + {', '.join(result.distributions)}\n"
        f"handler: handlers.<pattern>_handler.lambda_handler"
        + "".join(f" or handlers.drivers.{d}.handler.lambda_handler" for d in args.driver)
        + f"\n{tls}\n")
    return 0
