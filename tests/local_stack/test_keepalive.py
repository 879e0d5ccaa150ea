"""How long each server keeps a vanished client: from its own settings, read live."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connstorm.local_stack import keepalive
from connstorm.local_stack.pgbouncer import PgBouncerServer
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario


def test_linger_is_idle_plus_interval_times_count() -> None:
    assert keepalive.keepalive_linger_s(300, 30, 2) == 360  # RDS for PostgreSQL
    assert keepalive.keepalive_linger_s(7200, 75, 9) == 7875  # Linux, PgBouncer's default


def test_user_timeout_ends_probing_at_the_first_probe_past_it() -> None:
    # probes at 310, 320, ...: the first at least 335 s after the last word is 340
    assert keepalive.keepalive_linger_s(300, 10, 9, user_timeout_ms=335_000) == 340
    # shorter than the idle time: still the first probe that went unanswered
    assert keepalive.keepalive_linger_s(300, 10, 9, user_timeout_ms=5_000) == 310


def test_endpoint_names_a_peer_as_getpeername_does() -> None:
    assert keepalive.endpoint("127.0.0.1", "5432") == "127.0.0.1:5432"
    assert keepalive.endpoint("localhost", 6432) == "127.0.0.1:6432"


def test_pgbouncer_linger_from_show_config_values() -> None:
    idle, interval, count = keepalive.system_keepalive()
    assert keepalive.pgbouncer_linger_s({"tcp_keepalive": "1", "tcp_keepidle": "0"}) == \
        idle + interval * count
    assert keepalive.pgbouncer_linger_s({"tcp_keepalive": "1", "tcp_keepidle": "10",
                                         "tcp_keepintvl": "2", "tcp_keepcnt": "3"}) == 16
    assert keepalive.pgbouncer_linger_s({"tcp_keepalive": "0"}) is None


@pytest.mark.slow
def test_postgres_linger_is_read_from_the_running_server(
        postgres_factory: Callable[..., PostgresServer]) -> None:
    # the local cluster runs with RDS for PostgreSQL's keepalive defaults
    rds_like = postgres_factory()
    assert keepalive.postgres_linger_s(rds_like.admin_dsn) == 360
    # 0 is "the system's": what the socket really has
    system = postgres_factory(tcp_keepalives_idle=0, tcp_keepalives_interval=0,
                              tcp_keepalives_count=0, tcp_user_timeout=0)
    idle, interval, count = keepalive.system_keepalive()
    assert keepalive.postgres_linger_s(system.admin_dsn) == idle + interval * count


@pytest.mark.slow
def test_pgbouncer_linger_is_read_from_its_console(
        postgres_server: PostgresServer,
        pgbouncer_factory: Callable[..., PgBouncerServer]) -> None:
    tuned = pgbouncer_factory(postgres_server, tcp_keepidle=10, tcp_keepintvl=2, tcp_keepcnt=3)
    assert keepalive.pgbouncer_linger_s(keepalive.pgbouncer_config(tuned.console())) == 16
    off = pgbouncer_factory(postgres_server, tcp_keepalive=0)
    assert keepalive.pgbouncer_linger_s(keepalive.pgbouncer_config(off.console())) is None


@pytest.mark.slow
def test_stack_gives_the_emulator_each_servers_linger_by_the_address_handlers_dial(
        tmp_path: Path) -> None:
    source = tmp_path / "lingers.toml"
    source.write_text("""
name = "lingers"
[rds_proxy]
idle_client_timeout_s = 42
[[functions]]
name = "direct"
pattern = "module_level"
database = "direct"
[[functions]]
name = "pooled"
pattern = "module_level"
database = "pgbouncer"
[[functions]]
name = "proxied"
pattern = "module_level"
database = "rds_proxy"
""")
    scenario = load_scenario(source)
    with Stack(scenario, tmp_path / "run", with_schema=False) as stack:
        config: dict[str, Any] = json.loads(
            (stack.run_dir / "emulator-config.json").read_text())
        envs = {fn.name: stack.function_env(fn) for fn in scenario.functions}
    lingers = config["vanished_lingers"]
    pgbouncer = keepalive.pgbouncer_linger_s({"tcp_keepalive": "1"})
    assert lingers == {
        f"127.0.0.1:{envs['direct']['DB_PORT']}": 360.0,
        f"127.0.0.1:{envs['pooled']['DB_PORT']}": pgbouncer,
        f"127.0.0.1:{envs['proxied']['DB_PORT']}": 42.0,
    }


@pytest.mark.slow
def test_stack_leaves_lingers_to_the_override(tmp_path: Path) -> None:
    scenario = load_scenario("direct-small", overrides=["lambda.vanished_linger_s=7"])
    with Stack(scenario, tmp_path / "run", with_schema=False) as stack:
        config = json.loads((stack.run_dir / "emulator-config.json").read_text())
    assert config["vanished_lingers"] == {}
    assert config["account"]["vanished_linger_s"] == 7
