"""Which collectors a stack can have: one per target ``stack.json`` (or a DSN given) names.

Shared by the Locust plugin, which adds Locust's own collector on the master,
and by ``connstorm up --metrics-port``, which samples the stack without Locust.
It imports no Locust, so the orchestrator and the command line may use it; the
collector modules are imported only when their target exists, so psycopg is not
imported before gevent has patched the standard library inside Locust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter


def _user_of(dsn: str | None, default: str) -> str:
    return (urlsplit(dsn).username if dsn else None) or default


def _db_of(dsn: str | None, default: str) -> str:
    path = urlsplit(dsn).path.lstrip("/") if dsn else ""
    return path or default


def stack_collectors(writer: SampleWriter, stack: Mapping[str, Any], *, interval_s: float,
                     postgres_admin_dsn: str = "", pgbouncer_admin_dsn: str = "",
                     ) -> tuple[list[Collector], dict[str, str]]:
    """The collectors of the stack's targets, and why each missing one is missing.

    ``stack`` is ``stack.json``'s document (empty without a stack); the two DSNs
    stand in for its admin DSNs against a live target.
    """
    collectors: list[Collector] = []
    skipped: dict[str, str] = {}
    pg_dsn = stack.get("postgres_admin_dsn") or postgres_admin_dsn
    if pg_dsn:
        from connstorm.loadtests.locust_plugin.collectors.postgres import PostgresCollector
        collectors.append(PostgresCollector(
            writer, pg_dsn, app_user=_user_of(stack.get("postgres_dsn"), "app"),
            interval_s=interval_s))
    else:
        skipped["postgres"] = "no PostgreSQL admin DSN (no local stack, no --postgres-admin-dsn)"
    pb_dsn = stack.get("pgbouncer_admin_dsn") or pgbouncer_admin_dsn
    if pb_dsn:
        from connstorm.loadtests.locust_plugin.collectors.pgbouncer import PgBouncerCollector
        collectors.append(PgBouncerCollector(
            writer, pb_dsn, database=_db_of(stack.get("pgbouncer_dsn"), "app"),
            interval_s=interval_s))
    else:
        skipped["pgbouncer"] = ("PgBouncer disabled in the stack"
                                if stack and not stack.get("live_target") else
                                "no PgBouncer admin DSN (no local stack, no --pgbouncer-admin-dsn)")
    if stack.get("rds_proxy_metrics_url"):
        from connstorm.loadtests.locust_plugin.collectors.rds_proxy import RdsProxyCollector
        collectors.append(RdsProxyCollector(writer, stack["rds_proxy_metrics_url"],
                                            interval_s=interval_s))
    if stack.get("stats_url"):
        from connstorm.loadtests.locust_plugin.collectors.emulator import EmulatorCollector
        collectors.append(EmulatorCollector(writer, stack["stats_url"], interval_s=interval_s))
    else:
        skipped["emulator"] = "no emulator stats URL (live target or no functions)"
    return collectors, skipped
