"""``connstorm run``: a load test against the local stack (or a live URL), with verdicts.

Headless by default: a live terminal view while it runs, a summary table and the
thresholds at the end, exit code 6 when a threshold fails. Everything lands in
the run folder (``docs/run-folder.md``).

    connstorm run direct-small --users 40 --duration 20s
    connstorm run ci-smoke --out runs/ci          # CI: junit.xml, summary.md
    connstorm run direct-small --target-url https://abc.execute-api.eu-west-1.amazonaws.com
    connstorm run direct-small --processes 2      # one master, two workers
"""

from __future__ import annotations

import argparse
from typing import Any

from connstorm.loadtests.orchestrator.run_arguments import (
    add_common_arguments,
    add_run_only_arguments,
    duration_s,
    http_url,
    options_from_args,
    positive_float,
    positive_int,
)

__all__ = ["add_common_arguments", "add_parser", "duration_s", "http_url", "options_from_args",
           "positive_float", "positive_int", "run"]


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("run", help="run a load test headless, with a live view and verdicts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    add_run_only_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the load test; 0 when every threshold holds (6 is raised otherwise)."""
    from connstorm.loadtests.orchestrator.runner import Run

    Run(options_from_args(args, headless=True)).execute()
    return 0
