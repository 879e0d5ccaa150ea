"""``--metrics-port`` end to end: ``/metrics`` scraped during a real run and a real ``up``.

The scrape is parsed with prometheus_client's own parser; every series the
endpoint promises is there, and each value equals the value of the run's
``samples.jsonl`` row it came from (found by the collector's timestamp series),
converted to base units. The expectations below are written out by hand, not
computed by the module under test.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connstorm import metric_names as names
from connstorm.errors import ExitCode
from tests.loadtests.conftest import REPO, alive, connstorm, descendants

#: One scenario with every collector: PostgreSQL, PgBouncer, the RDS Proxy stand-in,
#: the emulator (and Locust, in a run).
SCENARIO = ["pgbouncer-transaction", "--set", "rds_proxy.enabled=true"]
#: Every family the endpoint promises per collector (docs/metrics.md).
FAMILIES: dict[str, tuple[str, ...]] = {
    "postgres": ("connstorm_postgres_connections", "connstorm_postgres_application_connections",
                 "connstorm_postgres_app_role_connections", "connstorm_postgres_max_connections",
                 "connstorm_postgres_superuser_reserved_connections"),
    "pgbouncer": ("connstorm_pgbouncer_client_connections",
                  "connstorm_pgbouncer_server_connections", "connstorm_pgbouncer_max_wait_seconds",
                  "connstorm_pgbouncer_transactions", "connstorm_pgbouncer_queries",
                  "connstorm_pgbouncer_wait_time_seconds", "connstorm_pgbouncer_pool_info"),
    "rds_proxy": ("connstorm_rds_proxy_client_connections",
                  "connstorm_rds_proxy_database_connections",
                  "connstorm_rds_proxy_database_connections_borrowed",
                  "connstorm_rds_proxy_database_connections_in_transaction",
                  "connstorm_rds_proxy_database_connections_pinned",
                  "connstorm_rds_proxy_database_connections_max",
                  "connstorm_rds_proxy_borrow_latency_seconds",
                  "connstorm_rds_proxy_client_connections_setup_succeeded",
                  "connstorm_rds_proxy_client_connections_setup_failed_auth",
                  "connstorm_rds_proxy_query_requests", "connstorm_rds_proxy_borrow_timeouts",
                  "connstorm_rds_proxy_idle_clients_closed", "connstorm_rds_proxy_pins"),
    "emulator": ("connstorm_lambda_environments", "connstorm_lambda_concurrency",
                 "connstorm_lambda_invocations", "connstorm_lambda_cold_starts",
                 "connstorm_lambda_throttles", "connstorm_lambda_errors",
                 "connstorm_lambda_failed_invocations", "connstorm_lambda_environments_reaped"),
    "locust": ("connstorm_load_users", "connstorm_load_requests", "connstorm_load_failures",
               "connstorm_load_errors", "connstorm_load_response_time_seconds",
               "connstorm_load_runner_info"),
}
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    """{sample name: {labels: value}} of a scrape."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in samples.get(name, {}).items()}


def one(samples: Samples, name: str) -> float:
    (value,) = samples[name].values()
    return value


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def metrics_url(proc: subprocess.Popen[str]) -> str:
    """The URL from the first line the command prints."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("metrics: http://127.0.0.1:"), line
    return line.split()[1]


def scrape_until(url: str, ready: Callable[[Samples], bool], proc: subprocess.Popen[str],
                 timeout_s: float = 180.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        samples = parse(scrape(url))
        if ready(samples):
            return samples
        time.sleep(0.5)
    pytest.fail(f"never ready (exit {proc.poll()}); last scrape: {scrape(url)[:2000]}")


def rows_at_scrape(run_dir: Path, samples: Samples) -> dict[str, dict[str, Any]]:
    """The samples.jsonl row each collector's values in the scrape came from."""
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    stamps = by(samples, "connstorm_collector_last_sample_timestamp_seconds", "collector")
    found = {}
    for collector, t in stamps.items():
        (row,) = [r for r in rows if r["collector"] == collector and abs(r["t"] - t) < 5e-4]
        found[collector] = row
    return found


def check_values(samples: Samples, rows: dict[str, dict[str, Any]]) -> None:
    """Each value equals its row's, in base units (hand-written mapping, not the module's)."""
    approx = pytest.approx
    if "postgres" in rows:
        pg = rows["postgres"]
        assert by(samples, "connstorm_postgres_connections", "state") == pg["db_by_state"]
        assert one(samples, "connstorm_postgres_max_connections") == pg["max_connections"]
        assert one(samples, "connstorm_postgres_app_role_connections") == pg["db_app"]
        assert sum(by(samples, "connstorm_postgres_application_connections",
                      "application").values()) == pg["db_total"]
    if "pgbouncer" in rows:
        pb = rows["pgbouncer"]
        assert by(samples, "connstorm_pgbouncer_client_connections", "state") == {
            "active": pb["cl_active"], "waiting": pb["cl_waiting"]}
        assert by(samples, "connstorm_pgbouncer_server_connections", "state") == {
            "active": pb["sv_active"], "idle": pb["sv_idle"], "used": pb["sv_used"],
            "login": pb["sv_login"]}
        assert one(samples, "connstorm_pgbouncer_transactions_total") == pb["total_xact_count"]
        assert one(samples, "connstorm_pgbouncer_queries_total") == pb["total_query_count"]
        assert one(samples, "connstorm_pgbouncer_wait_time_seconds_total") == approx(
            pb["total_wait_time_us"] / 1e6)
        assert one(samples, "connstorm_pgbouncer_max_wait_seconds") == approx(pb["maxwait_s"])
    if "rds_proxy" in rows:
        rp = rows["rds_proxy"]
        cloudwatch = {dict(labels)["cloudwatch_metric"]: (name, value)
                      for name, series in samples.items() for labels, value in series.items()
                      if dict(labels).get("cloudwatch_metric")}
        assert set(cloudwatch) == set(names.RDS_PROXY_CLOUDWATCH)
        for metric, (name, value) in cloudwatch.items():
            scale = 1e-6 if metric == names.BORROW_LATENCY else 1.0
            assert value == approx(rp[metric] * scale), name
        assert cloudwatch[names.DATABASE_CONNECTIONS_PINNED][0] == \
            "connstorm_rds_proxy_database_connections_pinned"
        assert by(samples, "connstorm_rds_proxy_pins_total", "reason") == {
            reason: entry["count"] for reason, entry in rp["pin_reasons"].items()}
    if "emulator" in rows:
        em = rows["emulator"]
        assert by(samples, "connstorm_lambda_environments", "state") == {
            s: em[f"env_{s}"] for s in ("initializing", "busy", "frozen", "idle", "stopping")}
        assert one(samples, "connstorm_lambda_invocations_total") == em["invocations"]
        assert one(samples, "connstorm_lambda_cold_starts_total") == em["cold_starts"]
        assert by(samples, "connstorm_lambda_errors_total", "kind") == em["errors_by_kind"]
        assert one(samples, "connstorm_lambda_failed_invocations_total") == em["errors"]
        # a series for each key the row has, none for a key it lacks
        assert samples.get("connstorm_lambda_vanished_connections", {}).get(()) == \
            em.get("vanished_connections")
    if "locust" in rows:
        lo = rows["locust"]
        assert one(samples, "connstorm_load_users") == lo["users"]
        assert one(samples, "connstorm_load_requests_total") == lo["requests"]
        assert one(samples, "connstorm_load_failures_total") == lo["failures"]
        assert by(samples, "connstorm_load_errors_total", "kind") == lo["errors_by_kind"]
        quantiles = by(samples, "connstorm_load_response_time_seconds", "quantile")
        for key, quantile in (("p50_ms", "0.5"), ("p95_ms", "0.95"), ("p99_ms", "0.99")):
            assert quantiles[quantile] == approx(lo[key] / 1e3), key


def families_present(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


@pytest.mark.slow
def test_run_metrics_scraped_during_the_run_match_its_samples(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # GIVEN a real run (stack, Locust, every collector) with a metrics endpoint
    proc = subprocess.Popen([sys.executable, "-m", "connstorm", "run", *SCENARIO, "-u", "6",
                             "-r", "6", "-t", "15s", "--metrics-port", "0", "--out",
                             str(run_dir)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = metrics_url(proc)
        # WHEN it is scraped while the load runs (every collector sampled, requests made)
        samples = scrape_until(url, lambda s: (
            set(by(s, "connstorm_collector_up", "collector").items())
            == {(c, 1.0) for c in FAMILIES}
            and s.get("connstorm_load_requests_total", {}).get((), 0) > 0
            and by(s, "connstorm_load_response_time_seconds", "quantile").get("0.5", 0) > 0),
            proc)
        text = scrape(url)
        samples = parse(text)
    finally:
        out, err = proc.communicate(timeout=240)
    # THEN every promised series was there, each equal to its samples.jsonl row
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert families_present(text) >= {f for fams in FAMILIES.values() for f in fams}
    rows = rows_at_scrape(run_dir, samples)
    assert set(rows) == set(FAMILIES)
    check_values(samples, rows)


@pytest.mark.slow
def test_up_samples_its_stack_and_serves_it_until_stopped(tmp_path: Path) -> None:
    run_dir = tmp_path / "up"
    proc = subprocess.Popen([sys.executable, "-m", "connstorm", "up", *SCENARIO,
                             "--metrics-port", "0", "--out", str(run_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    family: set[int] = set()
    url = ""
    try:
        url = metrics_url(proc)
        # GIVEN the stack is up: its four collectors sample it (no Locust in `up`)
        stack_collectors = {c for c in FAMILIES if c != "locust"}
        samples = scrape_until(url, lambda s: set(
            by(s, "connstorm_collector_up", "collector").items())
            == {(c, 1.0) for c in stack_collectors}, proc)
        text = scrape(url)
        samples = parse(text)
        family = descendants(proc.pid)
        # THEN the series are there and match the rows the up process wrote
        assert families_present(text) >= {f for c in stack_collectors for f in FAMILIES[c]}
        rows = rows_at_scrape(run_dir, samples)
        assert set(rows) == stack_collectors
        check_values(samples, rows)
        collectors = json.loads((run_dir / "collectors.json").read_text())
        assert set(collectors["running"]) == stack_collectors
    finally:
        # WHEN Ctrl-C
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    # THEN everything stopped, the endpoint too
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert not alive(family)
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        scrape(url)


@pytest.mark.parametrize("command", ["up", "run"])
def test_a_metrics_port_in_use_is_one_line_and_starts_nothing(tmp_path: Path,
                                                              command: str) -> None:
    run_dir = tmp_path / command
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = connstorm(command, "direct-small", "--metrics-port", str(port), "--out",
                           str(run_dir), timeout_s=120)
    assert result.returncode == ExitCode.ENVIRONMENT
    assert result.stderr.strip().splitlines() == [
        f"connstorm: error: --metrics-port {port}: 127.0.0.1:{port} is in use "
        "(choose another port, or 0 for a free one)"]
    # the port is checked first: no stack was started
    assert not (run_dir / "stack.json").exists()


def test_metrics_port_must_be_a_port() -> None:
    result = connstorm("up", "--metrics-port", "70000", timeout_s=60)
    assert result.returncode == ExitCode.USAGE
    assert "must be 0-65535, got 70000" in result.stderr
