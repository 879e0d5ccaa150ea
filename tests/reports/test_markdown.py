"""summary.md: the verdict table and thresholds, from summary.json alone."""

from __future__ import annotations

from pathlib import Path

from connstorm.reports import markdown
from tests.reports.run_folders import repro_run, summary


def test_markdown_render_shows_verdict_and_thresholds() -> None:
    text = markdown.render(summary())
    assert text.startswith("# connstorm: direct-small: FAIL")
    row = next(line for line in text.splitlines() if line.startswith("| direct-module_level"))
    assert "too_many_connections" in row
    assert "| 20 / 20 |" in row
    assert "| max_fail_ratio | 0.01 | 0.42 | FAIL |" in text
    assert "| min_rps | 10 | 41.5 | PASS |" in text


def test_markdown_render_passing_run_says_ok() -> None:
    text = markdown.render(summary("pgbouncer-transaction", failures=0, passed=True))
    assert text.startswith("# connstorm: direct-small: PASS")
    assert "OK: no failures" in text


def test_markdown_render_escapes_pipes_in_cells() -> None:
    doc = summary()
    doc["variants"][0]["name"] = "a|b"
    text = markdown.render(doc)
    assert "| a\\|b |" in text


def test_markdown_render_tolerates_a_bare_summary() -> None:
    text = markdown.render({"scenario": "x"})
    assert "# connstorm: x: –" in text
    assert "No variant results" in text
    assert "sets no thresholds" in text


def test_markdown_render_verdict_counts_refusals_the_functions_saw() -> None:
    doc = summary(failures=4, passed=True)
    doc["variants"][0]["errors_by_kind"] = {"http_error": 4}
    doc["variants"][0]["function_errors_by_kind"] = {"too_many_connections": 4}
    text = markdown.render(doc)
    assert "REFUSED: the database refused connections (4 too_many_connections)" in text
    assert "requests: http_error 4; functions: too_many_connections 4" in text


def test_markdown_render_session_pooler_verdict_says_clients_waited() -> None:
    doc = summary("pgbouncer-session", failures=30)
    doc["variants"][0].update(db_path="pgbouncer", pool_mode="session",
                              errors_by_kind={"pool_query_wait_timeout": 30},
                              peak_pooler_waiting=7, peak_pooler_server_connections=10,
                              pool_size=10)
    text = markdown.render(doc)
    assert ("ERRORS: 30 failed (9.1% of requests), mostly pool_query_wait_timeout; peak DB 20 "
            "of 20; up to 7 clients waited for 10 server connections (pool 10)") in text


def test_markdown_render_verdict_shows_provisioned_baseline_and_deploy_overlap() -> None:
    doc = summary("pgbouncer-transaction", failures=0, passed=True)
    doc["variants"][0]["lambda_lifecycle"] = {
        "provisioned_concurrency": 5, "baseline_db_connections": 5,
        "provisioned_utilization": {"mean": 0.4, "max": 1.0}, "spillover_invocations": 12,
        "deploys": 1, "peak_superseded_environments": 8, "scheduled_invocations": 0,
        "rejections": 3}
    text = markdown.render(doc)
    assert ("provisioned concurrency 5 held 5 DB connections before any request (utilisation "
            "mean 40%, max 100%; 12 spillover invocations)") in text
    assert "1 deploy(s): up to 8 environments of the old version stayed connected" in text
    assert "3 invocations refused by the VPC set-up" in text
    assert "scheduled pings" not in text  # nothing said of what did not happen


def test_markdown_repro_separates_the_deciding_checks_from_expected_failures(
        tmp_path: Path) -> None:
    # GIVEN a repro run that showed what it should: the direct variant broke its
    # own thresholds (it is meant to), the transaction pooler kept them
    doc = repro_run(tmp_path / "repro")
    assert doc["passed"] is True
    text = markdown.render(doc)
    lines = text.splitlines()
    assert lines[0] == "# connstorm: repro: PASS"
    # THEN the checks that decide the verdict come first, and none of them failed
    deciding = _section(lines, "## Checks that decide the verdict")
    assert any("direct-module_level: too_many_connections errors" in row for row in deciding)
    assert not any("FAIL" in row for row in deciding)
    # AND the variants' own thresholds are apart, saying they do not decide it,
    # with the direct variant's failure marked as intended
    own_heading = next(line for line in lines if line.startswith("## Each variant's own"))
    assert "do not decide the verdict" in own_heading
    own = _section(lines, own_heading)
    direct = next(row for row in own if row.startswith("| direct-module_level | max_fail_ratio"))
    assert "| FAIL | yes, as intended |" in direct
    pooled = next(row for row in own if row.startswith("| pgbouncer-transaction | max_fail"))
    assert "| PASS | no |" in pooled


def test_markdown_repro_unexpected_variant_failure_is_said_so(tmp_path: Path) -> None:
    doc = repro_run(tmp_path / "repro")
    pooled = next(v for v in doc["variants"] if v["name"] == "pgbouncer-transaction")
    pooled["thresholds"][0]["passed"] = False
    text = markdown.render(doc)
    row = next(line for line in text.splitlines()
               if line.startswith("| pgbouncer-transaction | max_fail_ratio"))
    assert "| FAIL | no: not expected |" in row


def _section(lines: list[str], heading: str) -> list[str]:
    start = lines.index(heading) + 1
    rows: list[str] = []
    for line in lines[start:]:
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append(line)
    return rows


def test_markdown_render_through_rds_proxy_the_pooler_columns_are_the_proxys() -> None:
    # GIVEN a variant through the RDS Proxy stand-in (PgBouncer unused: its peaks are 0)
    doc = summary("rds_proxy-session_state", failures=0, passed=True)
    doc["variants"][0].update(
        db_path="rds_proxy", peak_pooler_clients=0, peak_pooler_server_connections=0,
        pool_size=None, peak_proxy_client_connections=59, peak_proxy_database_connections=10,
        proxy_max_connections=10)
    row = next(line for line in markdown.render(doc).splitlines()
               if line.startswith("| rds_proxy-session_state"))
    # THEN its clients and database connections against its pool show, as a live run's
    # do, not PgBouncer's "0" and "0 / –"
    assert "| 59 | 10 / 10 |" in row
    assert "| 0 / – |" not in row
