"""summary.json from a run folder's files; junit.xml, summary.md and the step summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connstorm.loadtests.orchestrator.report_files import junit_xml, markdown, write_reports
from connstorm.loadtests.orchestrator.summary import SCHEMA_VERSION, build_summary
from connstorm.samples import SampleWriter
from connstorm.scenario import load_scenario

CONTRACT_VARIANT_KEYS = {
    "name", "db_path", "pool_mode", "handler", "requests", "failures", "errors_by_kind",
    "peak_db_connections", "max_connections", "peak_pooler_clients", "peak_environments",
    "cold_starts", "throttles", "p50_ms", "p95_ms", "p99_ms", "rps"}

STATS_CSV = "\n".join([
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%",
    "GET,/items/{id},90,30,5,6,1,40,100,9.0,3.0,5,6,7,8,10,20,30,40,40,40,40",
    ",Aggregated,100,40,5,6,1,50,100,10.0,4.0,5,6,7,8,10,25,35,45,50,50,50",
    ""])
FAILURES_CSV = "\n".join([
    "Method,Name,Error,Occurrences",
    "GET,/items/{id},\"CatchResponseError('HTTP 500 [too_many_connections] connection "
    "failed: FATAL: sorry, too many clients already')\",30",
    "GET,/health,\"CatchResponseError('HTTP 502 [http_error] Internal server error')\",10",
    ""])


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "locust_stats.csv").write_text(STATS_CSV)
    (run / "locust_failures.csv").write_text(FAILURES_CSV)
    with SampleWriter(run / "samples.jsonl", started_at=0) as w:
        for i, total in enumerate((5, 20, 12)):
            w.write("postgres", {"ok": True, "db_total": total, "db_app": total - 1,
                                 "max_connections": 20}, t=float(i))
            w.write("emulator", {"ok": True, "env_total": 10 * i, "cold_starts": 7 * i,
                                 "concurrency_peak": (3, 25, 25)[i], "throttles": 0,
                                 "vanished_connections": (0, 4, 2)[i]},
                    t=float(i))
        w.write("postgres", {"ok": False, "error": "gone"}, t=3.0)
    return run


def test_summary_variant_has_every_contract_key(tmp_path: Path) -> None:
    run = _run_folder(tmp_path)
    summary = build_summary(run, load_scenario("direct-small"))
    (variant,) = summary["variants"]
    assert set(variant) >= CONTRACT_VARIANT_KEYS
    assert variant["name"] == "direct-module_level"
    assert (variant["db_path"], variant["pool_mode"]) == ("direct", None)
    assert (variant["requests"], variant["failures"], variant["rps"]) == (100, 40, 10.0)
    assert (variant["p50_ms"], variant["p95_ms"], variant["p99_ms"]) == (5.0, 25.0, 45.0)
    assert variant["peak_vanished_connections"] == 4
    assert variant["errors_by_kind"] == {"http_error": 10, "too_many_connections": 30}
    assert variant["peak_db_connections"] == 20
    assert variant["max_connections"] == 20
    assert variant["peak_environments"] == 20
    # the emulator's exact running peak, finer than the sampled environment count
    assert variant["peak_concurrency"] == 25
    assert variant["cold_starts"] == 14
    assert variant["sample_gaps"] == {"postgres": 1}


def test_summary_has_its_schema_version_and_connection_budget(tmp_path: Path) -> None:
    summary = build_summary(_run_folder(tmp_path), load_scenario("direct-small"), users=30)
    assert summary["schema_version"] == SCHEMA_VERSION == 1
    (variant,) = summary["variants"]
    budget = variant["connection_budget"]
    assert summary["connection_budget"] == budget
    # the server's limit, and the collector's connection taking an ordinary slot
    assert (budget["max_connections"], budget["max_connections_from"]) == (20, "server")
    assert (budget["reserved"], budget["other_connections"], budget["usable"]) == (3, 1, 16)
    # --users 30 rather than the scenario's 60, one connection each
    assert (budget["environments"], budget["needed"], budget["fits"]) == (30, 30, False)


def test_summary_budget_counts_the_versions_the_runs_deploys_leave(tmp_path: Path) -> None:
    # GIVEN deploys at 2 and 5 s of a 30 s load, old versions held 1 s + 360 s
    scenario = load_scenario("direct-small", overrides=[
        "load.users=6", "functions.api.idle_lifetime_s=1",
        'timeline=[{at_s=2, action="deploy", target="api"}, '
        '{at_s=5, action="deploy", target="api"}]'])
    run = _run_folder(tmp_path)
    budget = build_summary(run, scenario)["connection_budget"]
    (entry,) = budget["functions"]
    assert (entry["versions"], budget["needed"], budget["fits"]) == (3, 18, False)
    assert entry["versions_from"]["deploys"] == 2
    # WHEN --duration 4 ends the load before the second deploy: two versions fit
    short = build_summary(run, scenario, duration_s=4)["connection_budget"]
    assert (short["functions"][0]["versions"], short["needed"], short["fits"]) == (2, 12, True)


def test_summary_thresholds_from_the_scenario(tmp_path: Path) -> None:
    summary = build_summary(_run_folder(tmp_path), load_scenario("direct-small"))
    assert summary["passed"] is False
    assert {v["name"]: v["passed"] for v in summary["thresholds"]} == {
        "max_fail_ratio": False, "too_many_connections": False}
    json.dumps(summary)  # serialisable as is


def test_summary_pooled_variant_names_its_pool_mode(tmp_path: Path) -> None:
    summary = build_summary(_run_folder(tmp_path), load_scenario("pgbouncer-transaction"))
    (variant,) = summary["variants"]
    assert (variant["db_path"], variant["pool_mode"]) == ("pgbouncer", "transaction")


def test_junit_fallback_lists_the_failed_threshold(tmp_path: Path) -> None:
    summary = build_summary(_run_folder(tmp_path), load_scenario("direct-small"))
    root = ET.fromstring(junit_xml(summary))
    failures = {case.get("name"): case.find("failure") for case in root.iter("testcase")}
    assert set(failures) == {"max_fail_ratio", "too_many_connections"}
    failure = failures["too_many_connections"]
    assert failure is not None
    assert failure.get("message") == \
        "too_many_connections: 30 (limit <= 0) FAILED, off by 30"
    assert "FAILED" in markdown(summary)


def test_reports_append_markdown_to_github_step_summary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run_folder(tmp_path)
    summary = build_summary(run, load_scenario("direct-small"))
    step = tmp_path / "step_summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    written = write_reports(run, summary)
    assert {"junit.xml", "summary.md"} <= set(written)
    text = step.read_text()
    assert text.startswith("earlier step\n")
    assert written["summary.md"].read_text() in text
    root = ET.fromstring(written["junit.xml"].read_text())
    assert any(c.get("name") == "too_many_connections" and c.find("failure") is not None
               for c in root.iter("testcase"))


def test_summary_explains_opaque_gateway_failures_with_invocation_errors() -> None:
    from connstorm.loadtests.orchestrator.summary import attribute_errors

    client = {"http_error": 50, "pool_query_wait_timeout": 3}
    invocations = {"too_many_connections": 40, "lambda_timeout": 2, "other": 5}
    assert attribute_errors(client, invocations) == {
        "http_error": 8, "lambda_timeout": 2, "pool_query_wait_timeout": 3,
        "too_many_connections": 40}
    # never more explained than the client saw fail
    assert attribute_errors({"http_error": 5}, {"too_many_connections": 40}) == {
        "too_many_connections": 5}
    assert attribute_errors({}, {"too_many_connections": 4}) == {}


def test_summary_has_the_rds_proxy_peaks_and_the_pinning_audit(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    scenario = load_scenario("direct-small", overrides=['functions.api.database="rds_proxy"'])
    reason = "SQL changed session settings that the proxy doesn't track."
    with SampleWriter(run / "samples.jsonl", started_at=0) as w:
        for i, (clients, db, pinned, count) in enumerate(((4, 1, 0, 0), (9, 3, 3, 3),
                                                           (2, 1, 0, 1))):  # 3rd: restarted
            w.write("rds_proxy", {"ok": True, "ClientConnections": clients,
                                  "DatabaseConnections": db,
                                  # cumulative: 0, 5, then 2 after the restart
                                  "BorrowTimeouts": (0, 5, 2)[i],
                                  "IdleClientsClosed": (1, 1, 0)[i],
                                  "DatabaseConnectionsCurrentlySessionPinned": pinned,
                                  "pin_reasons": {reason: {"count": count,
                                                           "sample": "SET search_path TO x"}}
                                  if count else {}}, t=float(i))
        w.write("rds_proxy", {"ok": False, "error": "restarting"}, t=3.0)
    variant = build_summary(run, scenario)["variants"][0]
    assert variant["db_path"] == "rds_proxy"
    assert variant["name"] == "rds_proxy-module_level"
    assert variant["peak_proxy_client_connections"] == 9
    assert variant["peak_proxy_database_connections"] == 3
    assert variant["peak_pinned_connections"] == 3
    assert variant["proxy_borrow_timeouts"] == 7  # 5 before the restart, 2 after
    assert variant["proxy_idle_clients_closed"] == 1
    assert variant["pin_reasons"] == {reason: 3}
    assert variant["pin_samples"] == {reason: "SET search_path TO x"}
    assert variant["sample_gaps"] == {"rds_proxy": 1}
