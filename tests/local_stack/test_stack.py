"""The Stack: parts in order, stack.json, function env, failures half way, stale runs."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm.errors import StackError
from connstorm.local_stack.os_user import server_user
from connstorm.local_stack.ports import port_in_use
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.scratch import LINK_NAME, create_scratch, processes_in, remove_scratch
from connstorm.local_stack.stack import Stack
from connstorm.scenario import Scenario, load_scenario

pytestmark = pytest.mark.slow

STACK_KEYS = {"scenario", "run_dir", "pid", "postgres_dsn", "postgres_admin_dsn",
              "pgbouncer_dsn", "pgbouncer_admin_dsn", "api_url", "invoke_url", "stats_url",
              "max_connections", "superuser_reserved_connections", "pool_mode",
              "default_pool_size", "pgbouncer_version"}


def _scratch_of(run_dir: Path) -> Path:
    link = run_dir / LINK_NAME
    return Path(link.read_text().strip()) if link.is_file() else link


def test_two_stacks_run_side_by_side_without_colliding(tmp_path: Path,
                                                       scenario_with: Callable[..., Scenario]
                                                       ) -> None:
    scenario = scenario_with("pgbouncer-transaction", pgbouncer={"default_pool_size": 3})
    with Stack(scenario, tmp_path / "a", with_emulator=False) as a, \
            Stack(scenario, tmp_path / "b", with_emulator=False) as b:
        docs = [json.loads((s.run_dir / "stack.json").read_text()) for s in (a, b)]
        # every documented key, owner-only file
        for s, doc in zip((a, b), docs, strict=True):
            assert doc.keys() >= STACK_KEYS
            assert stat.S_IMODE((s.run_dir / "stack.json").stat().st_mode) == 0o600
            assert (s.run_dir / "scenario.json").is_file()
            assert doc["pool_mode"] == "transaction"
            assert doc["default_pool_size"] == 3
            assert doc["pgbouncer_version"] == s.pgbouncer.version  # type: ignore[union-attr]
            assert doc["pgbouncer_version"].count(".") == 2
        ports = {a.postgres.port, b.postgres.port, a.pgbouncer.port, b.pgbouncer.port}  # type: ignore[union-attr]
        assert len(ports) == 4
        # each has its own data: a table made in one is absent from the other
        with psycopg.connect(docs[0]["pgbouncer_dsn"], autocommit=True) as conn:
            conn.execute("CREATE TABLE only_in_a (id int)")
        with psycopg.connect(docs[1]["postgres_dsn"]) as conn:
            row = conn.execute("SELECT to_regclass('only_in_a') IS NULL").fetchone()
            assert row == (True,)
        scratches = [_scratch_of(a.run_dir), _scratch_of(b.run_dir)]
        assert all(processes_in(s) for s in scratches)
    for s in scratches:
        assert not s.exists()
        assert not processes_in(s)
    assert not any(port_in_use(p) for p in ports)


def test_stack_failing_half_way_stops_postgres_and_reports_pgbouncer_log(
        tmp_path: Path, scenario_with: Callable[..., Scenario]) -> None:
    scenario = scenario_with("pgbouncer-transaction", pgbouncer={"listen_backlog": "many"})
    stack = Stack(scenario, tmp_path / "run", with_emulator=False, with_schema=False)
    with pytest.raises(StackError) as err, stack:
        pass
    message = str(err.value)
    assert message.startswith("pgbouncer exited with status 1 before it was ready")
    assert "listen_backlog" in message
    assert stack.postgres is not None
    assert not port_in_use(stack.postgres.port)
    assert not (tmp_path / "run" / LINK_NAME).exists()
    assert not (tmp_path / "run" / "stack.json").exists()


def test_stack_gives_each_function_the_database_of_its_path(tmp_path: Path) -> None:
    source = tmp_path / "paths.toml"
    source.write_text("""
name = "paths"
[[functions]]
name = "direct"
handler = "handlers.module_level_handler.lambda_handler"
database = "direct"
env = { DB_SSLMODE = "prefer", LOG_LEVEL = "DEBUG" }
[[functions]]
name = "pooled"
handler = "handlers.module_level_handler.lambda_handler"
database = "pgbouncer"
[[functions]]
name = "nodb"
handler = "handlers.module_level_handler.lambda_handler"
database = "none"
""")
    scenario = load_scenario(source)
    with Stack(scenario, tmp_path / "run", with_emulator=False, with_schema=False) as stack:
        assert stack.postgres is not None
        assert stack.pgbouncer is not None
        direct = stack.function_env(scenario.function("direct"))
        pooled = stack.function_env(scenario.function("pooled"))
        nodb = stack.function_env(scenario.function("nodb"))
        assert direct["DB_PORT"] == str(stack.postgres.port)
        assert pooled["DB_PORT"] == str(stack.pgbouncer.port)
        assert direct["DB_SSLMODE"] == "prefer"  # the function's own env wins
        assert direct["LOG_LEVEL"] == "DEBUG"
        assert pooled["DB_SSLMODE"] == "disable"
        assert pooled["DB_CONNECT_TIMEOUT_S"] == "5"
        assert "DB_HOST" not in nodb
        for env in (direct, pooled):
            dsn = (f"host={env['DB_HOST']} port={env['DB_PORT']} dbname={env['DB_NAME']} "
                   f"user={env['DB_USER']} password={env['DB_PASSWORD']}")
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("app",)


def test_stack_cleans_the_scratch_folder_of_a_crashed_run(
        tmp_path: Path, scenario_with: Callable[..., Scenario], private_scratch_root: Path) -> None:
    # GIVEN a crashed run: its owner process is gone, a "server" still works in its folder
    runs = tmp_path / "runs"
    crashed_run = runs / "crashed"
    crashed_run.mkdir(parents=True)
    code = ("import sys; from pathlib import Path; from connstorm.local_stack.scratch import "
            "create_scratch; print(create_scratch(Path(sys.argv[1]), sys.argv[2] or None))")
    out = subprocess.run([sys.executable, "-c", code, str(crashed_run), server_user() or ""],
                         capture_output=True, text=True, check=True).stdout
    crashed = Path(out.strip())
    leftover = subprocess.Popen(["sleep", "60"], cwd=crashed, start_new_session=True)
    assert processes_in(crashed) == [leftover.pid]
    # AND a live stack's folder, which must be left alone
    live = create_scratch(runs / "live", server_user())
    # WHEN a new stack starts under the same runs root
    scenario = scenario_with("direct-small", pgbouncer={"enabled": False})
    try:
        with Stack(scenario, runs / "new", with_emulator=False, with_schema=False):
            # THEN the leftover is stopped and the crashed folder deleted
            assert leftover.wait(timeout=10) is not None
            assert not crashed.exists()
            assert not (crashed_run / LINK_NAME).exists()
            assert live.exists()
    finally:
        remove_scratch(runs / "live", live)


def test_stack_uses_an_existing_server_by_url_behind_pgbouncer(
        tmp_path: Path, postgres_factory: Callable[..., PostgresServer],
        scenario_with: Callable[..., Scenario]) -> None:
    pg = postgres_factory()
    scenario = scenario_with("pgbouncer-transaction", postgres={"url": pg.admin_dsn})
    with Stack(scenario, tmp_path / "run", with_emulator=False, with_schema=False) as stack:
        doc: dict[str, Any] = json.loads((stack.run_dir / "stack.json").read_text())
        assert doc["postgres_admin_dsn"] == pg.admin_dsn
        with psycopg.connect(doc["pgbouncer_dsn"]) as conn:
            row = conn.execute("SELECT current_user, inet_server_port()").fetchone()
        assert row == ("app", pg.port)
    # the external server is someone else's: still running
    with psycopg.connect(pg.admin_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stack_stops_everything_when_the_block_raises(
        tmp_path: Path, scenario_with: Callable[..., Scenario]) -> None:
    scenario = scenario_with("pgbouncer-transaction")
    stack = Stack(scenario, tmp_path / "run", with_emulator=False, with_schema=False)
    with pytest.raises(RuntimeError, match="user code failed"), stack:  # noqa: PT012
        scratch = _scratch_of(stack.run_dir)
        servers = processes_in(scratch)
        assert len(servers) >= 2
        raise RuntimeError("user code failed")
    assert not scratch.exists()
    assert not processes_in(scratch)
    assert stack.postgres is not None
    assert not stack.postgres.running()
