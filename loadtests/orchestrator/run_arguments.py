"""The options of a load run (``connstorm run`` / ``ui`` / ``live``), and the run they describe.

They live beside the runner rather than in :mod:`connstorm.cli.commands` so that
other entry points (the container image's ``loadtest`` service) parse the same
options without importing the command line: the command line sits on top of
everything, and nothing below it imports it.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from connstorm.loadtests.orchestrator.baseline import BaselineError, load_baseline
from connstorm.run_folder import SUMMARY_FILE
from connstorm.scenario import LOAD_SHAPES, load_scenario

_SPAN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_s(text: str) -> float:
    """``30``, ``30s``, ``2m``, ``1h30m`` -> seconds (argparse type)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        match = _SPAN.match(text)
        if not text or match is None:
            raise argparse.ArgumentTypeError(
                f"invalid duration {text!r}: use seconds or e.g. 30s, 2m, 1h30m") from None
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        value = hours * 3600.0 + minutes * 60.0 + seconds
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def tcp_port(text: str) -> int:
    """A TCP port, 0 meaning "a free one" (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def add_metrics_port_argument(p: argparse.ArgumentParser) -> None:
    """``--metrics-port`` (``up``, ``run``, ``ui``): off unless given."""
    p.add_argument("--metrics-port", type=tcp_port, default=None, metavar="PORT",
                   help="serve the collectors' latest values at http://127.0.0.1:PORT/metrics "
                        "(Prometheus text format / OpenMetrics; 0: a free port; "
                        "see docs/metrics.md)")


def http_url(text: str) -> str:
    """An http(s) URL (argparse type)."""
    if not re.match(r"^https?://[^/\s]+", text):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options ``run`` and ``ui`` share."""
    p.add_argument("scenario", nargs="?", default=None,
                   help="scenario file or built-in name (default: direct-small)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario setting, e.g. postgres.max_connections=30")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default: runs/<UTC time>-<scenario>)")
    p.add_argument("--users", "-u", type=positive_int, default=None,
                   help="peak concurrent users (default: [load] users)")
    p.add_argument("--spawn-rate", "-r", type=positive_float, default=None,
                   help="users started per second (default: [load] spawn_rate)")
    p.add_argument("--duration", "-t", type=duration_s, default=None,
                   help="run time, e.g. 20s or 2m (default: [load] duration_s)")
    p.add_argument("--shape", choices=LOAD_SHAPES, default=None,
                   help="load shape (default: [load] shape)")
    add_locustfile_argument(p)
    p.add_argument("--target-url", type=http_url, default=None,
                   help="send the load to this deployed API instead of a local stack")
    # DSNs hold passwords: the environment keeps them out of `ps` and shell history.
    p.add_argument("--postgres-admin-dsn",
                   default=os.environ.get("CONNSTORM_POSTGRES_ADMIN_DSN") or None,
                   help="with --target-url: superuser DSN of its PostgreSQL, to sample it "
                        "(or env CONNSTORM_POSTGRES_ADMIN_DSN)")
    p.add_argument("--pgbouncer-admin-dsn",
                   default=os.environ.get("CONNSTORM_PGBOUNCER_ADMIN_DSN") or None,
                   help="with --target-url: admin-console DSN of its PgBouncer, to sample it "
                        "(or env CONNSTORM_PGBOUNCER_ADMIN_DSN)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="N Locust worker processes on this machine (default: [load] processes)")
    p.add_argument("--master", action="store_true",
                   help="run as Locust master and wait for --expect-workers remote workers")
    p.add_argument("--expect-workers", type=positive_int, default=1, metavar="N",
                   help="with --master: workers to wait for before starting")
    p.add_argument("--master-bind-host", default="127.0.0.1",
                   help="with --master: address to listen on for workers (default 127.0.0.1; "
                        "use the machine's address for remote workers)")
    p.add_argument("--master-bind-port", type=int, default=5557,
                   help="with --master: port to listen on for workers (default 5557)")
    add_metrics_port_argument(p)
    p.add_argument("--baseline", type=Path, default=None, metavar="PATH",
                   help=f"compare with this earlier run (its folder or {SUMMARY_FILE}): a "
                        "regression by [thresholds.regression] fails the run, exit code 6")


def add_locustfile_argument(p: argparse.ArgumentParser) -> None:
    """``--locustfile``: shared by run, ui, live and repro."""
    p.add_argument("--locustfile", type=Path, default=None, metavar="PATH",
                   help="your own locustfile: its User classes send the load, connstorm's "
                        "collectors, Connections tab, thresholds and report stay (default: "
                        "[load] locustfile, else users generated from the scenario's routes)")


def add_run_only_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``run`` that ``ui`` does not have."""
    p.add_argument("--headless", action="store_true", default=True,
                   help="no web UI (the default for run; see 'connstorm ui')")
    p.add_argument("--worker", action="store_true",
                   help="run only a Locust worker for the master at --master-host")
    p.add_argument("--master-host", default="127.0.0.1", help="with --worker: the master's host")
    p.add_argument("--master-port", type=int, default=5557, help="with --worker: its port")


def run_parser(prog: str = "connstorm run") -> argparse.ArgumentParser:
    """A parser of ``connstorm run``'s options on its own."""
    p = argparse.ArgumentParser(prog=prog)
    add_common_arguments(p)
    add_run_only_arguments(p)
    return p


def options_from_args(args: argparse.Namespace, *, headless: bool) -> Any:
    """The :class:`connstorm.loadtests.orchestrator.runner.RunOptions` the arguments describe."""
    from connstorm.loadtests.orchestrator.run_options import RunOptions
    from connstorm.run_folder import default_run_dir

    scenario = load_scenario(args.scenario, overrides=args.overrides)
    run_dir = args.out or default_run_dir(scenario.name)
    if args.processes is not None and args.processes < 0:
        raise SystemExit("connstorm: error: --processes must be 0 or more")
    baseline = None
    if getattr(args, "baseline", None) is not None:
        if getattr(args, "worker", False):
            raise BaselineError("--baseline: not with --worker (the master compares the run)")
        baseline = load_baseline(args.baseline, scenario=scenario.name, run_dir=run_dir)
    return RunOptions(
        scenario=scenario, run_dir=run_dir, headless=headless, users=args.users,
        spawn_rate=args.spawn_rate, duration_s=args.duration, shape=args.shape,
        target_url=args.target_url, postgres_admin_dsn=args.postgres_admin_dsn,
        pgbouncer_admin_dsn=args.pgbouncer_admin_dsn, processes=args.processes,
        master=args.master, expect_workers=args.expect_workers,
        master_bind_host=args.master_bind_host, master_bind_port=args.master_bind_port,
        worker=getattr(args, "worker", False),
        master_host=getattr(args, "master_host", "127.0.0.1"),
        master_port=getattr(args, "master_port", 5557),
        web_port=getattr(args, "web_port", None), locustfile=args.locustfile,
        metrics_port=getattr(args, "metrics_port", None), baseline=baseline)
