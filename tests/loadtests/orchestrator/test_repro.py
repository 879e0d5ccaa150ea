"""connstorm repro: the failure, the fix and session pooling, measured on the local stack.

The slow test runs the real command (``--quick``) and reads ``summary.json``,
never the printed text.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connstorm.capacity import CapacityRequest, plan_capacity
from connstorm.loadtests.orchestrator.repro import (
    EXPECTATIONS,
    FULL,
    QUICK,
    VARIANTS,
    build_summary,
    plan_for,
    variant_scenario,
    variants_for,
)
from connstorm.local_stack.rds_proxy import pinning
from connstorm.scenario import load_scenario


def refused(entry: dict[str, Any]) -> int:
    """too_many_connections as clients or functions saw them (init refusals are 502s)."""
    return max(int((entry.get(key) or {}).get("too_many_connections", 0))
               for key in ("errors_by_kind", "function_errors_by_kind"))


@pytest.mark.slow
def test_repro_quick_shows_the_failure_the_fix_and_session_pinning(tmp_path: Path) -> None:
    # WHEN the quick reproduction runs, through the real command line
    out = tmp_path / "repro"
    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    entries = {e["name"]: e for e in summary["variants"]}
    assert list(entries) == ["direct-module_level", "pgbouncer-transaction", "pgbouncer-session"]
    direct, transaction, session = entries.values()
    slots = load_scenario("direct-small").postgres.app_slots
    # THEN direct: PostgreSQL refused connections, and every ordinary slot was taken
    assert refused(direct) > 0
    assert direct["peak_db_connections"] >= slots
    assert direct["max_connections"] == 20
    # AND through PgBouncer in transaction mode: no refusal, the pool bounds the server side
    assert refused(transaction) == 0
    assert transaction["failures"] == 0
    assert 0 < transaction["peak_pooler_server_connections"] <= transaction["pool_size"]
    # AND connstorm capacity predicted both, from the emulator's exact peak concurrency
    # (the sampled peak_environments can miss it: environments whose Init was refused
    # are discarded between samples), with the collector's superuser connection
    # taking one ordinary slot: other_connections=1
    assert direct["peak_concurrency"] >= direct["peak_db_app_connections"] + 1
    over = plan_capacity(CapacityRequest(concurrency=direct["peak_concurrency"],
                                         max_connections=20, other_connections=1))
    assert not over.fits
    assert direct["peak_db_app_connections"] == over.usable
    pooled = plan_capacity(CapacityRequest(concurrency=transaction["peak_concurrency"],
                                           max_connections=20, other_connections=1,
                                           pooler_pool_size=transaction["pool_size"]))
    assert pooled.fits
    assert transaction["peak_pooler_server_connections"] <= pooled.peak_db_connections
    # AND in session mode clients queue for pinned server connections, or give up
    waited = session["peak_pooler_waiting"]
    timeouts = (session.get("errors_by_kind") or {}).get("pool_query_wait_timeout", 0)
    assert waited + timeouts > 0
    assert refused(session) == 0
    # AND each variant is a run folder of its own, the comparison rendered at the top
    for name in entries:
        assert (out / "variants" / name / "samples.jsonl").stat().st_size > 0
    for rendered in ("report.html", "summary.md", "junit.xml"):
        assert (out / rendered).stat().st_size > 0
    assert summary["passed"] is True
    assert all(t["passed"] for t in summary["thresholds"])


def test_repro_variants_cover_the_issue() -> None:
    # (the failover drill's load stays far below the limit on purpose: its own test)
    scenarios = {v.name: variant_scenario(v, FULL) for v in VARIANTS if v.preset != "failover"}
    direct = scenarios["direct-module_level"].functions[0]
    assert (direct.database, direct.pattern) == ("direct", "module_level")
    assert scenarios["pgbouncer-transaction"].pgbouncer.pool_mode == "transaction"
    assert scenarios["pgbouncer-session"].pgbouncer.pool_mode == "session"
    assert scenarios["direct-leaky"].functions[0].pattern == "leaky"
    for scenario in scenarios.values():
        # the load steps well above what PostgreSQL allows
        assert scenario.load.shape == "steps"
        assert scenario.load.users >= 2 * scenario.postgres.max_connections
    assert [v.name for v in variants_for(quick=True)] == [
        "direct-module_level", "pgbouncer-transaction", "pgbouncer-session"]
    # the full demonstration proves the fix users deploy too: RDS Proxy, pooled and pinned
    assert [v.name for v in variants_for(quick=False)] == [
        "direct-module_level", "pgbouncer-transaction", "pgbouncer-session", "direct-leaky",
        "rds_proxy-resilient", "rds_proxy-session_state"]
    assert [v.name for v in variants_for(quick=True, preset="rds_proxy")] == [
        "rds_proxy-resilient", "rds_proxy-session_state"]
    assert QUICK.duration_s < FULL.duration_s


def test_repro_summary_fails_when_the_failure_did_not_reproduce() -> None:
    variant = VARIANTS[0]
    scenario = variant_scenario(variant, QUICK)
    entry = {"name": variant.name, "errors_by_kind": {}, "peak_db_connections": 5}
    doc = build_summary([(variant, scenario, entry)], quick=True, elapsed_s=1.0, complete=True)
    assert doc["passed"] is False
    names = [t["name"] for t in doc["thresholds"] if not t["passed"]]
    assert names == ["direct-module_level: too_many_connections errors",
                     "direct-module_level: peak DB connections (all roles)"]
    assert len([e for e in EXPECTATIONS if e.variant == variant.name]) == 2


def test_repro_summary_of_an_interrupted_run_does_not_pass() -> None:
    variant = VARIANTS[1]
    scenario = variant_scenario(variant, QUICK)
    entry = {"name": variant.name, "errors_by_kind": {}, "peak_pooler_server_connections": 3}
    doc = build_summary([(variant, scenario, entry)], quick=True, elapsed_s=1.0, complete=False)
    assert all(t["passed"] for t in doc["thresholds"])
    assert doc["passed"] is False
    assert doc["repro"]["complete"] is False


def _refuses(url: str | None) -> bool:
    """True when nothing listens at the host:port of a URL or DSN any more."""
    if not url:
        return True
    netloc = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = netloc.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.slow
def test_repro_sigterm_mid_run_stops_the_stack_and_keeps_what_was_measured(
        tmp_path: Path) -> None:
    # GIVEN a quick reproduction running through the real command line
    out = tmp_path / "repro"
    proc = subprocess.Popen([sys.executable, "-m", "connstorm", "repro", "--quick", "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    second = out / "variants" / "pgbouncer-transaction"
    try:
        # WHEN it is terminated once the second variant's stack is up
        deadline = time.monotonic() + 240
        while not (second / "stack.json").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the second variant never started"
            time.sleep(0.2)
        stack = json.loads((second / "stack.json").read_text())
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    # THEN it says so in one line and exits 143
    assert code == 143, stderr
    assert stderr.strip().splitlines()[-1] == "connstorm: terminated, everything stopped"
    # AND the second stack's servers are gone
    for key in ("postgres_dsn", "pgbouncer_dsn", "api_url"):
        assert _refuses(stack.get(key)), f"{key} still answers"
    # AND the comparison holds the finished variant and the interrupted one, and fails
    summary = json.loads((out / "summary.json").read_text())
    names = [v["name"] for v in summary["variants"]]
    assert names[0] == "direct-module_level"
    assert set(names) <= {"direct-module_level", "pgbouncer-transaction"}
    assert summary["passed"] is False
    assert summary["repro"]["complete"] is False
    assert (out / "report.html").is_file()


def test_repro_refuses_an_out_folder_that_holds_a_run(tmp_path: Path) -> None:
    (tmp_path / "variants").mkdir()
    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"connstorm: error: {tmp_path}: already holds a run; give another --out (samples are "
        "appended, so two runs in one folder would mix)")


def test_repro_vpc_preset_varies_only_the_subnets() -> None:
    chosen = variants_for(quick=True, preset="vpc")
    assert [v.name for v in chosen] == ["vpc-one-subnet", "vpc-three-subnets"]
    one, three = (variant_scenario(v, QUICK) for v in chosen)
    vpc_one, vpc_three = one.functions[0].vpc, three.functions[0].vpc
    assert vpc_one is not None
    assert vpc_three is not None
    assert (vpc_one.subnets, vpc_three.subnets) == (1, 3)
    assert vpc_one.eni_model == vpc_three.eni_model == "per_environment"
    assert vpc_one.free_ips_per_subnet == vpc_three.free_ips_per_subnet
    # one subnet holds fewer environments than the load has users; three hold them all
    for plan in (QUICK, FULL):
        assert vpc_one.free_ips_per_subnet < plan.users <= 3 * vpc_three.free_ips_per_subnet


@pytest.mark.slow
def test_repro_vpc_preset_one_subnet_fails_three_pass(tmp_path: Path) -> None:
    # WHEN the VPC comparison runs, through the real command line
    out = tmp_path / "repro-vpc"
    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--preset", "vpc",
                           "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "repro-vpc"
    one, three = summary["variants"]
    # THEN in one subnet new environments found no address: 502s, under the same load
    assert one["errors_by_kind"].get("lambda_vpc_limit", 0) > 0
    assert one["peak_environments"] <= 20
    assert one["lambda_lifecycle"]["rejections"] > 0
    # AND three subnets had an address for every environment
    assert three["failures"] == 0
    assert three["peak_environments"] > 20
    assert summary["passed"] is True


def test_repro_failover_preset_varies_only_the_pattern() -> None:
    chosen = variants_for(quick=True, preset="failover")
    assert [v.name for v in chosen] == ["failover-module_level",
                                        "failover-module_level_resilient",
                                        "failover-per_invocation"]
    scenarios = [variant_scenario(v, plan_for("failover", quick=True)) for v in chosen]
    assert [s.functions[0].pattern for s in scenarios] == [
        "module_level", "module_level_resilient", "per_invocation"]
    assert len({s.timeline for s in scenarios}) == 1
    assert [a.action for a in scenarios[0].timeline] == ["terminate_backends", "restart_postgres"]
    # a load far below the limit: every failure is the faults'
    assert all(s.load.users * 2 < s.postgres.app_slots for s in scenarios)


@pytest.mark.slow
def test_repro_failover_preset_naive_never_recovers_the_others_do(tmp_path: Path) -> None:
    out = tmp_path / "repro-failover"
    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--preset", "failover",
                           "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    naive, resilient, per_invocation = summary["variants"]
    # THEN the naive pattern lost its connections for good after the terminate
    terminate = naive["timeline"][0]
    assert terminate["action"] == "terminate_backends"
    assert terminate["recovery_s"] is None
    assert terminate["errors_during"].get("connection_lost", 0) > 0
    # AND both others came back after each action, within 5 s
    for variant in (resilient, per_invocation):
        for entry in variant["timeline"]:
            assert entry["recovery_s"] is not None, entry
            assert entry["recovery_s"] <= 5.0, entry
    assert "NOT RECOVERED" in (out / "summary.md").read_text()
    assert summary["passed"] is True


def test_repro_rds_proxy_preset_varies_only_the_pattern() -> None:
    chosen = variants_for(quick=True, preset="rds_proxy")
    assert [v.name for v in chosen] == ["rds_proxy-resilient", "rds_proxy-session_state"]
    scenarios = [variant_scenario(v, plan_for("rds_proxy", quick=True)) for v in chosen]
    assert [s.functions[0].pattern for s in scenarios] == ["module_level_resilient",
                                                           "session_state"]
    assert all(s.functions[0].database == "rds_proxy" and s.rds_proxy.enabled
               for s in scenarios)
    assert scenarios[0].rds_proxy == scenarios[1].rds_proxy
    # more users than the pool has connections: pinning must exhaust it
    assert scenarios[0].load.users > scenarios[0].postgres.app_slots // 2


@pytest.mark.slow
def test_repro_rds_proxy_preset_pooled_against_pinned(tmp_path: Path) -> None:
    out = tmp_path / "repro-rds-proxy"
    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--preset", "rds_proxy",
                           "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    resilient, pinned = summary["variants"]
    # THEN the resilient pattern was multiplexed: more clients than database connections
    assert resilient["failures"] == 0
    assert resilient["peak_pinned_connections"] == 0
    assert resilient["pin_reasons"] == {}
    assert resilient["peak_proxy_client_connections"] > resilient[
        "peak_proxy_database_connections"]
    # AND session_state pinned the whole pool and then timed out borrowing
    assert pinned["peak_pinned_connections"] == pinned["proxy_max_connections"] == 10
    assert set(pinned["pin_reasons"]) >= {
        "SQL changed session settings that the proxy doesn't track. Consider moving session "
        "configuration to the proxy's initialization query."}
    # ... for its SETs (AWS's reason today), not for its named prepared statements
    assert set(pinned["pin_reasons"]) == {pinning.SESSION_SETTINGS}
    assert pinned["pin_samples"][pinning.SESSION_SETTINGS].upper().startswith("SET ")
    assert resilient["failures"] == 0
    assert pinned["errors_by_kind"].get("proxy_borrow_timeout", 0) > 0
    assert "PINNED because" in (out / "summary.md").read_text()
    assert "e.g. SET " in (out / "summary.md").read_text()


def test_repro_deploy_preset_varies_only_the_linger() -> None:
    chosen = variants_for(quick=False, preset="deploy")
    assert [v.name for v in chosen] == ["deploy-vanished", "deploy-closed"]
    assert variants_for(quick=True, preset="deploy") == chosen
    vanished, closed = (variant_scenario(v, plan_for("deploy", quick=False)) for v in chosen)
    assert vanished.lambda_.vanished_linger_s is None  # the server's keepalive decides
    assert closed.lambda_.vanished_linger_s == 0
    assert vanished.timeline == closed.timeline
    assert [a.action for a in vanished.timeline] == ["deploy", "deploy"]
    assert vanished.functions[0].database == "direct"
    # the load alone fits twice over: only what the deploys leave behind can refuse it
    assert 2 * vanished.load.users + 1 <= vanished.postgres.app_slots
    assert 3 * vanished.load.users + 1 > vanished.postgres.app_slots


@pytest.mark.slow
def test_repro_deploy_preset_refuses_only_while_the_old_connections_linger(
        tmp_path: Path) -> None:
    out = tmp_path / "repro-deploy"
    done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--preset", "deploy",
                           "--out", str(out)], capture_output=True, text=True,
                          timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    vanished, closed = summary["variants"]
    # THEN the old versions' connections outlived their environments and took the slots
    assert vanished["peak_vanished_connections"] > 0
    assert vanished["lambda_lifecycle"]["refused_while_vanished"] > 0
    assert vanished["errors_by_kind"].get("too_many_connections", 0) > 0
    # AND the same deploys with the connections closed refused nobody
    assert closed["peak_vanished_connections"] == 0
    assert closed["failures"] == 0
    assert "stayed open at the server" in (out / "summary.md").read_text()
    # AND the budget foresaw both: three versions' connections do not fit, two do
    held, freed = vanished["connection_budget"], closed["connection_budget"]
    assert (held["functions"][0]["versions"], held["fits"]) == (3, False)
    assert (freed["functions"][0]["versions"], freed["fits"]) == (2, True)
    assert "× 3 versions (2 deploys inside the load" in (out / "summary.md").read_text()
