"""`connstorm drivers`: which Python driver settings pin, break PgBouncer, or exhaust PostgreSQL.

    connstorm drivers                          # every configuration x every path
    connstorm drivers --only psycopg_default,asyncpg
    connstorm drivers --handler app.handler.lambda_handler   # your own code
    connstorm drivers --expect expected.toml   # exit 6 when a verdict differs

Runs each driver configuration (``handlers/drivers/``) or your handler as a
Lambda function per path (direct, PgBouncer in transaction mode per version
found, the RDS Proxy stand-in) under the same short load, on one local stack,
and prints the matrix: verdict (works, pins, fails, exhausts), pin reasons with
a sample statement, error kinds with the first message, peak database
connections, p95. See :mod:`connstorm.loadtests.orchestrator.drivers`.
Exit code 0 when it ran, whatever the verdicts; 6 when ``--expect`` fails.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from rich.table import Table

from connstorm.console import output_console
from connstorm.run_folder import REPORT_FILE, SUMMARY_FILE

_HANDLER = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "drivers", help="which driver settings pin, break PgBouncer or exhaust PostgreSQL",
        description="Run each Python driver configuration (or your handler) through every "
                    "path: direct, PgBouncer in transaction mode (each version found), the "
                    "RDS Proxy stand-in; print a verdict per driver and path.")
    p.add_argument("--only", metavar="NAMES", default=None,
                   help="comma-separated configurations or drivers (psycopg_default,asyncpg)")
    p.add_argument("--handler", metavar="MODULE.FUNCTION",
                   help="run your own handler (found from the current folder) instead")
    p.add_argument("--expect", type=Path, metavar="FILE",
                   help="TOML of expected verdicts ([config] path = \"works\"); exit 6 "
                        "when one differs")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="run folder (default runs/<UTC time>-drivers)")
    p.set_defaults(func=run)


def matrix_table(summary: dict[str, Any]) -> Table:
    """Configurations as rows, paths as columns, a verdict and its reason per cell."""
    from connstorm.reports import drivers

    table = Table(title=f"connstorm drivers ({summary.get('elapsed_s')} s)")
    table.add_column("driver: configuration")
    for path in summary.get("paths") or []:
        table.add_column(str(path), overflow="fold")
    for label, cells in drivers.matrix(summary):
        table.add_row(label, *(drivers.cell_text(c) for c in cells))
    return table


def run(args: argparse.Namespace) -> int:
    """Run the matrix, print it and where the report is."""
    from connstorm.errors import ConnstormError
    from connstorm.loadtests.orchestrator.drivers import (
        DriversOptions,
        load_expectations,
        run_drivers,
        subjects_for,
    )
    from connstorm.reports import drivers
    from connstorm.run_folder import default_run_dir

    console = output_console()
    if args.handler and not _HANDLER.match(args.handler):
        raise _usage(f"--handler {args.handler}: expected module.function (app.handler.main)")
    out: Path = args.out or default_run_dir("drivers")
    only = tuple(n.strip() for n in (args.only or "").split(",") if n.strip())
    if args.only is not None and not only:  # a script's empty variable: not the whole matrix
        raise _usage("--only: no configuration named (give names like psycopg_default,asyncpg)")
    # Checked before the run folder is announced: a wrong name or file is one line.
    if args.expect is not None:
        load_expectations(args.expect)
    subjects_for(DriversOptions(out=out, only=only, handler=args.handler), say=lambda _: None)

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    say(f"connstorm drivers: run folder {out}")
    summary: dict[str, Any] | None = None
    try:
        summary = run_drivers(DriversOptions(out=out, only=only, handler=args.handler,
                                             expect=args.expect), say=say, progress=say)
    except ConnstormError:
        from connstorm.run_folder import load_json

        done = load_json(out / SUMMARY_FILE)
        if done.get("drivers"):
            console.print(matrix_table(done))
        raise
    console.print(matrix_table(summary))
    for line in drivers.detail_lines(summary):
        say(line)
    say(f"report: {out / REPORT_FILE}  summary: {out / SUMMARY_FILE}")
    return 0


def _usage(message: str) -> Exception:
    from connstorm.loadtests.orchestrator.drivers import DriversUsageError

    return DriversUsageError(message)
