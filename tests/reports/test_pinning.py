"""The pinning audit's table and verdict line, from summary.json alone (pure logic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connstorm.reports import html as report_html
from connstorm.reports import markdown, pinning
from connstorm.reports.run_folder import load_run
from connstorm.reports.verdicts import DASH
from tests.reports.run_folders import write_run

SET = "SQL changed session settings that the proxy doesn't track."
LOCK = "A session-level advisory lock function was called."


def _summary() -> dict[str, Any]:
    return {"scenario": "repro-rds_proxy", "variants": [
        {"name": "rds_proxy-resilient", "db_path": "rds_proxy", "requests": 100,
         "failures": 0, "peak_proxy_client_connections": 40,
         "peak_proxy_database_connections": 5, "peak_pinned_connections": 0,
         "proxy_max_connections": 8, "pin_reasons": {}, "pin_samples": {}},
        {"name": "rds_proxy-session_state", "db_path": "rds_proxy", "requests": 100,
         "failures": 30, "errors_by_kind": {"proxy_borrow_timeout": 30},
         "peak_proxy_client_connections": 40, "peak_proxy_database_connections": 8,
         "peak_pinned_connections": 8, "proxy_max_connections": 8,
         "pin_reasons": {LOCK: 2, SET: 8},
         "pin_samples": {SET: "SET search_path TO public",
                         LOCK: "SELECT pg_advisory_lock(42), " + "x" * 80}},
        {"name": "direct-module_level", "db_path": "direct", "requests": 10, "failures": 0},
    ]}


def test_audit_rows_list_each_reason_with_count_and_sample_most_first() -> None:
    assert pinning.rows(_summary()) == [
        ["rds_proxy-resilient", "no pinning", "0", DASH],
        ["rds_proxy-session_state", SET, "8", "SET search_path TO public"],
        ["rds_proxy-session_state", LOCK, "2", "SELECT pg_advisory_lock(42), " + "x" * 80],
    ]


def test_verdict_line_names_multiplexing_and_pinning() -> None:
    resilient, pinned, direct = _summary()["variants"]
    assert pinning.pinning_text(resilient) == (
        "RDS Proxy: 40 clients over 5 database connections (pool 8), none pinned")
    assert pinning.pinning_text(pinned) == (
        f"RDS Proxy: 40 clients over 8 database connections (pool 8), up to 8 PINNED "
        f"because: {SET} (×8, e.g. SET search_path TO public); {LOCK} (×2, e.g. SELECT "
        f"pg_advisory_lock(42), {'x' * 30}…)")
    assert pinning.pinning_text(direct) == ""


def test_summary_md_has_the_audit_and_the_verdict() -> None:
    text = markdown.render(_summary())
    assert "## RDS Proxy pinning audit" in text
    assert "| rds_proxy-session_state | SQL changed session settings" in text
    assert "up to 8 PINNED because" in text


def test_report_html_has_the_audit_table(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", summary_doc=_summary())
    page = report_html.render(load_run(run))
    assert "<h2>RDS Proxy pinning audit</h2>" in page
    assert "SET search_path TO public" in page
    assert "up to 8 PINNED because" in page
