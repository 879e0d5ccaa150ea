"""`connstorm up`: start a scenario's local stack in the foreground.

Prints where everything is (passwords masked unless ``--show-passwords``), then
waits until Ctrl-C or SIGTERM and stops everything. ``--check`` instead shows the
stack working (a query through each path, the connections PostgreSQL sees),
stops it and exits 0: ``make demo`` uses it. ``--metrics-port PORT`` also samples
the stack (the collectors a run has, Locust's aside) into the run folder's
``samples.jsonl`` and serves the newest values at ``http://127.0.0.1:PORT/metrics``
(``docs/metrics.md``); the port is bound before the stack starts.

    connstorm up pgbouncer-transaction --set pgbouncer.default_pool_size=5
    connstorm up pgbouncer-transaction --set rds_proxy.enabled=true --metrics-port 9464
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from connstorm.console import output_console
from connstorm.errors import StackError
from connstorm.loadtests.orchestrator.run_arguments import add_metrics_port_argument
from connstorm.local_stack.credentials import mask_dsn
from connstorm.run_folder import LOGS_DIR, RDS_PROXY_LOG, SAMPLES_FILE, STACK_FILE, default_run_dir
from connstorm.scenario import BACKENDS, DEFAULT_SCENARIO, Scenario, load_scenario

#: How often the foreground loop checks that every server is still alive.
POLL_INTERVAL_S = 0.5


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "up", help="start a scenario's local stack (PostgreSQL, PgBouncer, Lambda emulator)",
        description="Start the local stack of a scenario in the foreground; Ctrl-C stops it.")
    p.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                   help=f"scenario file or built-in name (default: {DEFAULT_SCENARIO})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario setting, e.g. postgres.max_connections=30")
    p.add_argument("--out", metavar="DIR",
                   help="run folder (default: runs/<UTC yyyymmdd-HHMMSS>-<scenario>)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="run PostgreSQL and PgBouncer as processes (native) or containers "
                        "(docker); default: the scenario's [postgres] backend")
    p.add_argument("--check", action="store_true",
                   help="show the stack working, stop it and exit")
    p.add_argument("--show-passwords", action="store_true",
                   help="print connection URLs with their passwords")
    add_metrics_port_argument(p)
    p.set_defaults(func=run)


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The scenario the command line asks for: the file, its ``--set``s, then ``--backend``."""
    overrides = list(args.overrides)
    if args.backend is not None:
        overrides.append(f'postgres.backend="{args.backend}"')
    return load_scenario(args.scenario, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    """Start the stack; wait for Ctrl-C/SIGTERM, or with --check show it and stop."""
    from connstorm.local_stack.stack import Stack

    scenario = scenario_from_args(args)
    run_dir = default_run_dir(scenario.name) if args.out is None else Path(args.out)
    console = output_console(highlight=False)
    with ExitStack() as resources:
        metrics_url = None
        if args.metrics_port is not None:
            from connstorm.loadtests.orchestrator.metrics_endpoint import MetricsEndpoint

            metrics_url = resources.enter_context(
                MetricsEndpoint(run_dir / SAMPLES_FILE, args.metrics_port)).url
            console.print(f"metrics: {metrics_url}", soft_wrap=True)
        console.print(f"connstorm up: starting [bold]{scenario.name}[/] in {run_dir} ...")
        stack = resources.enter_context(Stack(scenario, run_dir))
        if metrics_url is not None:
            from connstorm.loadtests.orchestrator.stack_sampler import StackSampler

            resources.enter_context(StackSampler(run_dir, stack.info(),
                                                 scenario.load.sample_interval_s))
        _show_where(console, stack, scenario, args.show_passwords)
        if args.check:
            _check(console, stack)
            console.print("check passed; stopping the stack")
            return 0
        console.print("Ctrl-C (or SIGTERM) stops everything.")
        while True:
            stack.check_alive()
            time.sleep(POLL_INTERVAL_S)


def _show_where(console: Console, stack: Any, scenario: Scenario, show: bool) -> None:
    def dsn(value: str | None) -> str:
        return (value if show else mask_dsn(value)) or "-"

    info = stack.info()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("PostgreSQL", f"{dsn(info['postgres_dsn'])}  (max_connections "
                  f"{info['max_connections']}, superuser_reserved_connections "
                  f"{info['superuser_reserved_connections']})")
    table.add_row("  superuser", dsn(info["postgres_admin_dsn"]))
    if info["pgbouncer_dsn"]:
        table.add_row("PgBouncer", f"{dsn(info['pgbouncer_dsn'])}  (pool_mode "
                      f"{info['pool_mode']}, default_pool_size {info['default_pool_size']})")
        table.add_row("  console", dsn(info["pgbouncer_admin_dsn"]))
    if info.get("rds_proxy_dsn"):
        table.add_row("RDS Proxy stand-in", f"{dsn(info['rds_proxy_dsn'])}  (pool "
                      f"{info['rds_proxy_max_connections']}; pins in {RDS_PROXY_LOG})")
        table.add_row("  metrics", info["rds_proxy_metrics_url"])
    if info["api_url"]:
        table.add_row("API Gateway", info["api_url"])
        table.add_row("Lambda Invoke", info["invoke_url"])
        table.add_row("emulator stats", info["stats_url"])
    table.add_row(STACK_FILE, f"{stack.run_dir / STACK_FILE}  (passwords; owner-only)")
    table.add_row(LOGS_DIR, str(stack.run_dir / LOGS_DIR))
    console.print(f"stack [bold]{scenario.name}[/] is up:")
    console.print(table)


def _query(dsn: str, sql: str) -> Any:
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _check(console: Console, stack: Any) -> None:
    """One query through each path; fail with StackError if any does not answer."""
    info = stack.info()
    try:
        who = _query(info["postgres_dsn"], "SELECT current_user || ' on PostgreSQL ' "
                     "|| current_setting('server_version')")
        console.print(f"direct to PostgreSQL: connected as {who}")
        if info["pgbouncer_dsn"]:
            port = _query(info["pgbouncer_dsn"], "SELECT inet_server_port()")
            console.print(f"through PgBouncer: connected, server port {port}")
            with psycopg.connect(info["pgbouncer_admin_dsn"], autocommit=True,
                                 prepare_threshold=None, connect_timeout=5) as conn:
                cur = conn.execute("SHOW POOLS")
                names = [c.name for c in cur.description or ()]
                pools = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            for pool in pools:
                if pool["database"] != "pgbouncer":
                    console.print(f"  pool {pool['database']}/{pool['user']}: "
                                  f"cl_active {pool['cl_active']}, sv_idle {pool['sv_idle']}, "
                                  f"pool_mode {pool['pool_mode']}")
        if info.get("rds_proxy_dsn"):
            port = _query(info["rds_proxy_dsn"], "SELECT inet_server_port()")
            console.print(f"through the RDS Proxy stand-in: connected, server port {port}")
        with psycopg.connect(info["postgres_admin_dsn"], connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT coalesce(usename, '-'), coalesce(state, '-'), count(*) "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    except psycopg.Error as exc:
        raise StackError(f"check failed: {str(exc).strip()}") from None
    table = Table(title="pg_stat_activity (client backends)")
    for col in ("role", "state", "count"):
        table.add_column(col)
    for role, state, count in rows:
        table.add_row(str(role), str(state), str(count))
    console.print(table)
    if info["api_url"]:
        route = next((r for r in stack.scenario.routes
                      if r.method in ("GET", "ANY") and "{" not in r.path), None)
        url = info["api_url"] + route.path if route is not None else info["stats_url"]
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                console.print(f"through API Gateway and Lambda: GET {url} -> HTTP {resp.status}")
        except OSError as exc:
            raise StackError(f"check failed: GET {url}: {exc}") from None
