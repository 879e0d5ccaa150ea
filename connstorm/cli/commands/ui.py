"""``connstorm ui``: the same run as ``connstorm run``, driven from Locust's web UI.

Starts the stack and Locust with its web UI on 127.0.0.1 (a free port unless
``--web-port``), prints the UI's URL and the live chart's, and runs until Ctrl-C
or SIGTERM; then it stops everything and writes the summary of what ran.

    connstorm ui direct-small        # open the printed URL, press Start
"""

from __future__ import annotations

import argparse
from typing import Any

from connstorm.loadtests.orchestrator.run_arguments import add_common_arguments, options_from_args


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("ui", help="run a load test from Locust's web UI (with the "
                                  "Connections tab and a live chart)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--web-port", type=int, default=None,
                   help="port of the web UI on 127.0.0.1 (default: a free one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the UI until interrupted; exit code 6 if the last run broke a threshold."""
    from connstorm.loadtests.orchestrator.runner import Run

    Run(options_from_args(args, headless=False)).execute()
    return 0
