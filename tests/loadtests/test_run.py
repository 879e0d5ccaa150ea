"""``connstorm run`` end to end: real stack, real Locust, real collectors, real verdicts.

Loads are short (10 s, a few dozen users) and every run's stack is small, so a
concurrency above ``max_connections`` is cheap to reach.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.loadtests.conftest import connstorm, processes_mentioning, rows

pytestmark = pytest.mark.slow

# 10 connections, 3 reserved: the application role gets 7; 20 users need 20.
SMALL_DB = ["--set", "postgres.max_connections=10", "--set", "pgbouncer.default_pool_size=4"]
LOAD = ["-u", "20", "-r", "20", "-t", "10s"]


def _no_leftovers(run_dir: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(run_dir)) == []


def test_run_direct_above_max_connections_counts_too_many_connections(tmp_path: Path) -> None:
    run_dir = tmp_path / "direct"
    # WHEN 20 users hit module_level handlers connecting straight to 7 usable slots
    result = connstorm("run", "direct-small", *SMALL_DB, *LOAD, "--out", str(run_dir))
    # THEN the thresholds (too_many_connections = 0, max_fail_ratio) fail with exit code 6
    assert result.returncode == 6, result.stderr
    assert "threshold(s) failed" in result.stderr
    assert "too_many_connections" in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    (variant,) = summary["variants"]
    assert summary["passed"] is False
    assert variant["db_path"] == "direct"
    assert variant["errors_by_kind"].get("too_many_connections", 0) > 0
    # Locust itself classified the front's bare 502s, from X-Connstorm-Error-Kind
    assert variant["client_errors_by_kind"].get("too_many_connections", 0) > 0
    assert "http_error" not in variant["client_errors_by_kind"]
    assert variant["max_connections"] == 10
    assert variant["peak_db_connections"] <= 10
    # ... and visible in the samples: the emulator classified the invocations' errors
    emulator = rows(run_dir, "emulator")
    assert emulator[-1]["errors_by_kind"].get("too_many_connections", 0) > 0
    postgres = rows(run_dir, "postgres")
    # Every ordinary slot taken: PostgreSQL counts the collector's superuser
    # connection against them too, while they are free (7 = 6 app + collector).
    assert max(r["db_total"] for r in postgres) == 7
    # ... and the JUnit file names the failed threshold
    cases = {c.get("name"): c for c in ET.parse(run_dir / "junit.xml").iter("testcase")}
    assert cases["too_many_connections"].find("failure") is not None
    assert (run_dir / "summary.md").exists()
    assert (run_dir / "report.html").exists()
    _no_leftovers(run_dir)


def test_run_pgbouncer_transaction_mode_has_no_connection_errors(tmp_path: Path) -> None:
    run_dir = tmp_path / "pooled"
    result = connstorm("run", "pgbouncer-transaction", *SMALL_DB, *LOAD, "--out", str(run_dir))
    # A passing scenario: exit code 0.
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    (variant,) = summary["variants"]
    assert summary["passed"] is True
    assert (variant["db_path"], variant["pool_mode"]) == ("pgbouncer", "transaction")
    assert "too_many_connections" not in variant["errors_by_kind"]
    assert variant["requests"] > 0
    # never more server connections than the pool allows, seen from both sides
    pooler = rows(run_dir, "pgbouncer")
    assert pooler
    assert max(r["sv_active"] + r["sv_idle"] + r["sv_used"] + r["sv_login"]
               for r in pooler) <= 4
    assert max(r["db_app"] for r in rows(run_dir, "postgres")) <= 4
    assert max(r["cl_active"] + r["cl_waiting"] for r in pooler) > 4  # more clients than pool
    _no_leftovers(run_dir)


def test_run_distributed_with_two_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "distributed"
    result = connstorm("run", "ci-smoke", "--processes", "2", "-t", "6s", "--out", str(run_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    (variant,) = summary["variants"]
    # same contract keys as a single-process run
    assert {"requests", "failures", "errors_by_kind", "peak_db_connections", "p95_ms",
            "rps"} <= set(variant)
    by_worker = variant["requests_by_worker"]
    assert len(by_worker) == 2
    assert all(n > 0 for n in by_worker.values())
    assert sum(by_worker.values()) == variant["requests"]
    # the database was sampled by the master alone: one row per interval, not per worker
    postgres = rows(run_dir, "postgres")
    span_s = postgres[-1]["t"] - postgres[0]["t"]
    assert len(postgres) <= span_s / 1.0 + 2
    _no_leftovers(run_dir)


def test_run_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    result = connstorm("run", "no-such-scenario", "--out", str(tmp_path / "x"), timeout_s=60)
    assert result.returncode == 3
    assert result.stderr.startswith("connstorm: error: no-such-scenario: no such scenario")
    assert "Traceback" not in result.stderr
    result = connstorm("run", "direct-small", "--duration", "soon", timeout_s=60)
    assert result.returncode == 2
    assert "invalid duration 'soon'" in result.stderr
