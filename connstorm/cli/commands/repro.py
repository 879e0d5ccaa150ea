"""`connstorm repro`: reproduce "too many clients" locally and see which fix makes it stop.

    connstorm repro            # about 45 s on 2 cores
    connstorm repro --quick    # about 16 s
    connstorm repro --out runs/my-repro
    connstorm repro --jobs 1   # one variant at a time: no variant shares the CPU
    connstorm repro --preset vpc   # one subnet against three, same load
    connstorm repro --preset rds_proxy   # RDS Proxy: pooled against pinned
    connstorm repro --preset deploy   # the tail of connections a deploy leaves behind
    connstorm repro --baseline runs/last-repro   # and compare each variant with it
    connstorm repro --baseline runs/last-repro --set thresholds.regression.p95_pct=200

Runs the variants of :mod:`connstorm.loadtests.orchestrator.repro` on fresh local
stacks, one per core at a time (``--jobs``; see
:mod:`connstorm.loadtests.orchestrator.repro_jobs`), prints them side by side with
a verdict each, and writes the comparison (``summary.json``, ``report.html``,
``summary.md``, ``junit.xml``) into the run folder. Exit code 0 when the run
showed what it is meant to show, 6 when it did not (for example the direct
variant was never refused) or, with ``--baseline``, when a variant got worse than
the baseline's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connstorm.console import output_console
from connstorm.errors import ThresholdsFailedError
from connstorm.loadtests.orchestrator.run_arguments import add_locustfile_argument
from connstorm.run_folder import SUMMARY_FILE


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "repro", help="reproduce 'too many clients' and compare the fixes (about 45 s)",
        description="Put the same stepped load, well above max_connections, on several "
                    "variants (direct, PgBouncer transaction and session mode, a leaky "
                    "handler), each on a fresh local stack (one per core at a time), and "
                    "compare them.")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="run folder (default runs/<UTC time>-repro)")
    p.add_argument("--quick", action="store_true",
                   help="the first three variants, shorter steps: about 16 s in all")
    p.add_argument("--preset", choices=("connections", "vpc", "failover", "rds_proxy", "deploy"),
                   default="connections",
                   help="what to compare: the database paths (default), a VPC function "
                        "in one subnet against three (the same load), or three handler "
                        "patterns through a failover drill (backends terminated, then "
                        "PostgreSQL restarted), or through the RDS Proxy stand-in the "
                        "resilient pattern against session_state, which pins, or two "
                        "deploys whose reaped environments leave their connections open "
                        "at the server against the same with them closed")
    p.add_argument("--jobs", type=_jobs, metavar="N",
                   help="variants at once, each on its own stack (default: one per core; "
                        "1: one after another, so that no variant shares the CPU)")
    add_locustfile_argument(p)
    p.add_argument("--baseline", type=Path, metavar="PATH",
                   help=f"an earlier repro of the same preset (its folder or {SUMMARY_FILE}): "
                        "each variant is compared with its namesake; a regression is exit 6")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="thresholds.regression.KEY=VALUE",
                   help="what counts as a regression against --baseline, e.g. "
                        "thresholds.regression.p95_pct=200 (nothing else: the variants are "
                        "fixed)")
    p.set_defaults(func=run)


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


_ROWS: tuple[tuple[str, str], ...] = (
    ("requests", "requests"), ("failures", "failures"), ("errors_by_kind", "errors by kind"),
    ("peak_db_connections", "peak DB connections / max"),
    ("peak_pooler_server_connections", "pooler server conns / pool"),
    ("peak_pooler_waiting", "peak clients waiting"),
    ("peak_environments", "peak environments"),
    ("peak_concurrency", "peak concurrency"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
    ("rps", "requests/s"),
)


def comparison_table(summary: dict[str, Any]) -> Table:
    """Variants as columns, figures as rows: what the terminal shows at the end."""
    from connstorm.reports import verdicts

    entries = verdicts.variants(summary)
    table = Table(title="connstorm repro: the same load on each variant")
    table.add_column("")
    for entry in entries:
        table.add_column(str(entry.get("name")), justify="right", overflow="fold")
    for key, label in _ROWS:
        cells = []
        for entry in entries:
            # no pooler queue to read: none direct, and the proxy's borrowers are not
            # counted while they wait (its borrow timeouts are, as errors)
            if key == "peak_pooler_waiting" and entry.get("db_path") in ("direct", "rds_proxy"):
                cells.append(verdicts.DASH)
            else:
                cells.append(verdicts.cell(entry, key))
        table.add_row(label, *cells)
    return table


def show_results(console: Console, summary: dict[str, Any], out: Path) -> None:
    """The comparison table, a verdict line per variant, and where the report is."""
    from connstorm.reports import verdicts
    from connstorm.reports.verdict_line import verdict
    from connstorm.run_folder import REPORT_FILE

    console.print(comparison_table(summary))
    for entry in verdicts.variants(summary):
        console.print(f"{entry.get('name')}: {verdict(entry)}", highlight=False)
    from connstorm.loadtests.orchestrator.regression import status_word

    section = summary.get("baseline") or {}
    for variant in section.get("variants") or []:
        for comparison in variant.get("comparisons") or []:
            console.print(f"{status_word(comparison)} baseline {comparison.get('line', '')}",
                          highlight=False, soft_wrap=True, markup=False)
    console.print(f"report: {out / REPORT_FILE}", highlight=False)


def run(args: argparse.Namespace) -> int:
    """Run the variants with a progress display, then print the comparison."""
    from connstorm.loadtests.orchestrator.baseline import load_baseline
    from connstorm.loadtests.orchestrator.locustfiles import check_own, load_source
    from connstorm.loadtests.orchestrator.regression import describe as describe_comparison
    from connstorm.loadtests.orchestrator.regression import regressions
    from connstorm.loadtests.orchestrator.repro import (
        check_out,
        check_overrides,
        plan_for,
        repro_name,
        run_repro,
        variant_scenario,
        variants_for,
    )
    from connstorm.loadtests.orchestrator.repro_jobs import default_jobs
    from connstorm.reports import verdicts
    from connstorm.run_folder import default_run_dir

    console = output_console()
    plan = plan_for(args.preset, quick=args.quick)
    chosen = variants_for(quick=args.quick, preset=args.preset)
    overrides = check_overrides(args.overrides)  # one line, exit 2 or 3, before anything
    limit = variant_scenario(chosen[0], plan, overrides).postgres.max_connections
    out: Path = args.out or default_run_dir("repro")
    check_out(out)
    baseline = None
    if args.baseline is not None:  # checked before anything runs: one line, exit code 2
        baseline = load_baseline(args.baseline, scenario=repro_name(args.preset), run_dir=out)
        baseline.require_variants([variant.name for variant in chosen])
        baseline.require_repro_load(quick=args.quick, users={
            fast: plan_for(args.preset, quick=fast).users for fast in (False, True)})
    if args.locustfile is not None:  # one line, exit code 12, before the banner too
        check_own(load_source(variant_scenario(chosen[0], plan), args.locustfile.resolve()))
    jobs = min(args.jobs or default_jobs(), len(chosen))
    budget_s = plan.variant_budget_s * -(-len(chosen) // jobs)
    how = "one after another" if jobs == 1 else f"{jobs} at a time"
    console.print(f"connstorm repro: {len(chosen)} variants, the same load stepping up to "
                  f"{plan.users} users (max_connections is {limit}), {how} on fresh "
                  f"local stacks; about {budget_s} s in all.", highlight=False)
    console.print(f"run folder: {out}", highlight=False)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("starting", total=len(chosen))

        def hook(index: int, variant: Any, phase: str) -> None:
            if phase == "start":
                progress.update(task, description=f"{variant.name}: {variant.shows}")
            else:
                progress.update(task, advance=1)

        summary = run_repro(out, quick=args.quick, progress=hook, preset=args.preset,
                            locustfile=args.locustfile, baseline=baseline,
                            jobs=jobs, overrides=overrides)
        progress.update(task, description="done")
    show_results(console, summary, out)
    missed = [t for t in verdicts.thresholds(summary) if not t.get("passed")]
    worse = regressions(summary)
    parts = []
    if missed:
        parts.append("the run did not show what it should: " + "; ".join(
            verdicts.threshold_line(t) for t in missed))
    if worse:
        parts.append(f"{len(worse)} regression(s) against the baseline {args.baseline}: "
                     + "; ".join(describe_comparison(c) for c in worse))
    if parts:
        raise ThresholdsFailedError("; ".join(parts) + f" (see {out / SUMMARY_FILE})")
    return 0
