"""The comparison table ``connstorm repro`` prints at the end (pure rendering)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from connstorm.cli.commands.repro import comparison_table


def _render(summary: dict[str, Any]) -> list[str]:
    console = Console(width=200, record=True)
    console.print(comparison_table(summary))
    return console.export_text().splitlines()


def test_the_rds_proxy_variants_show_the_proxys_pool_not_an_unused_pgbouncers() -> None:
    # GIVEN the two RDS Proxy variants as a repro summarises them (PgBouncer ran unused)
    entry = {"db_path": "rds_proxy", "peak_pooler_clients": 0, "peak_pooler_server_connections": 0,
             "peak_pooler_waiting": 0, "pool_size": None, "peak_proxy_client_connections": 59,
             "peak_proxy_database_connections": 10, "proxy_max_connections": 10}
    lines = _render({"variants": [{"name": "rds_proxy-resilient", **entry}]})
    row = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in lines
           if line.count("│") >= 3}
    # THEN the pool row is the proxy's database connections against its pool, and the
    # clients-waiting row says it was not measured rather than 0
    assert row["pooler server conns / pool"] == "10 / 10"
    assert row["peak clients waiting"] == "–"
