"""`connstorm report`: re-render one run's reports, or compare several runs side by side.

    connstorm report runs/2026-11-26T22-00-00Z-direct-small
    connstorm report runs/a runs/b runs/c --out comparison.html

One folder: writes report.html (or ``--out``), summary.md and junit.xml into it.
Several folders: one report.html with each run as a variant, in the order given
(default ``comparison.html`` in the current folder). A missing or damaged folder
is one line naming it, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from connstorm.run_folder import COMPARISON_FILE, JUNIT_FILE, MARKDOWN_FILE, REPORT_FILE


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "report", help="re-render a run's report, or compare several runs",
        description=f"Render {REPORT_FILE} (and {MARKDOWN_FILE}, {JUNIT_FILE} for one run) "
                    "from run folders; several folders are compared side by side.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folder(s); several are compared, each as a variant")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help=f"where to write the HTML report (default: RUN_DIR/{REPORT_FILE} for "
                        f"one folder, ./{COMPARISON_FILE} for several)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render and print the paths written, one per line."""
    from connstorm.reports.render import render_all, render_comparison

    out: Path | None = args.out
    if out is not None and out.is_dir():
        out = out / (REPORT_FILE if len(args.run_dirs) == 1 else COMPARISON_FILE)
    if len(args.run_dirs) == 1:
        written = render_all(args.run_dirs[0], html_path=out)
    else:
        written = [render_comparison(args.run_dirs, out or Path(COMPARISON_FILE))]
    sys.stdout.write("".join(f"{path}\n" for path in written))
    return 0
