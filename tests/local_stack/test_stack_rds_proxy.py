"""The stack starts the RDS Proxy stand-in and points ``database = "rds_proxy"`` functions at it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from connstorm.loadtests.orchestrator.proxy_logs import parse_pin_line
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario

pytestmark = pytest.mark.slow


def test_a_rds_proxy_function_starts_the_stand_in_and_gets_its_url(tmp_path: Path) -> None:
    source = tmp_path / "proxied.toml"
    source.write_text("""
name = "proxied"
[postgres]
max_connections = 20
superuser_reserved_connections = 3
[rds_proxy]
max_connections_percent = 50
[[functions]]
name = "proxied"
handler = "handlers.module_level_handler.lambda_handler"
database = "rds_proxy"
""")
    scenario = load_scenario(source)
    assert scenario.rds_proxy.enabled  # implied by the function
    with Stack(scenario, tmp_path / "run", with_emulator=False, with_schema=False) as stack:
        proxy = stack.rds_proxy
        assert proxy is not None
        assert stack.postgres is not None
        env = stack.function_env(scenario.function("proxied"))
        assert env["DB_PORT"] == str(proxy.port)
        info = json.loads((tmp_path / "run" / "stack.json").read_text())
        assert info["rds_proxy_dsn"].endswith(f"@127.0.0.1:{proxy.port}/app")
        assert info["rds_proxy_max_connections"] == 10  # 50 % of max_connections 20
        with psycopg.connect(info["rds_proxy_dsn"], autocommit=True) as conn:
            conn.execute("set search_path = public")
            assert proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"] == 1
        log = Path(info["rds_proxy_log"]).read_text()
        assert "The client session was pinned to the database connection" in log
        # the live run's parser reads the stand-in's line as it reads RDS Proxy's
        assert [parse_pin_line(line) for line in log.splitlines() if "pinned" in line] == [
            (pinning.SESSION_SETTINGS, "set search_path = public")]
        proxy.restart()  # the restart_rds_proxy fault: same port, fresh state
        with psycopg.connect(info["rds_proxy_dsn"], autocommit=True) as conn:
            assert conn.execute("select current_user").fetchone() == ("app",)
        assert proxy.metrics()["ClientConnectionsSetupSucceeded"] == 1
    assert not proxy.running()


def test_no_stand_in_unless_asked(tmp_path: Path) -> None:
    scenario = load_scenario("direct-small")
    assert not scenario.rds_proxy.enabled
    with Stack(scenario, tmp_path / "run", with_emulator=False, with_schema=False) as stack:
        assert stack.rds_proxy is None
        assert stack.info()["rds_proxy_dsn"] is None
