"""The container services' configuration: rendered by the native stack's functions.

Pure logic (no engine): what each compose service / testcontainers container
would write, compared with what the native servers write for the same scenario.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from connstorm.cli import container_entry as entry
from connstorm.errors import ConnstormError, StackError
from connstorm.local_stack.pgbouncer import render_ini
from connstorm.local_stack.postgres import render_conf
from connstorm.scenario import load_scenario


def test_service_env_reads_connstorm_variables_with_their_types() -> None:
    env = entry.ServiceEnv.from_env({"CONNSTORM_PG_PORT": "25432", "CONNSTORM_PG_HOST": "db",
                                     "CONNSTORM_WAIT_TIMEOUT_S": "2.5", "OTHER": "x"})
    assert env.pg_port == 25432
    assert env.pg_host == "db"
    assert env.wait_timeout_s == 2.5
    assert env.listen_addr == "127.0.0.1"


def test_service_env_rejects_a_port_that_is_no_number() -> None:
    with pytest.raises(ConnstormError, match="CONNSTORM_PG_PORT: expected int, got 'five'"):
        entry.ServiceEnv.from_env({"CONNSTORM_PG_PORT": "five"})


def test_postgres_conf_is_the_managed_settings_then_the_scenarios(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNSTORM_POSTGRES_SETTINGS_JSON", raising=False)
    scenario = load_scenario("direct-small", overrides=["postgres.max_connections=33"])
    env = entry.ServiceEnv(listen_addr="0.0.0.0", pg_port=25432)
    text = entry.postgres_conf(scenario, env)
    assert "listen_addresses = '0.0.0.0'\nport = 25432\n" in text
    assert text.endswith(render_conf(scenario.postgres.settings))
    assert "max_connections = 33" in text


def test_pgbouncer_ini_is_rendered_by_the_native_function(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONNSTORM_PGBOUNCER_SETTINGS_JSON", raising=False)
    scenario = load_scenario("pgbouncer-session")
    env = entry.ServiceEnv(listen_addr="127.0.0.1", pg_host="postgres", pg_port=15432,
                           pgbouncer_port=16432)
    files = entry.pgbouncer_files(scenario, env, "SCRAM-SHA-256$x", "pw", tmp_path)
    assert files["pgbouncer.ini"] == render_ini(
        scenario.pgbouncer.settings, listen_port=16432, db_host="postgres", db_port=15432,
        db_name="app", auth_file=str(tmp_path / "userlist.txt"), listen_addr="127.0.0.1")
    assert "pool_mode = session" in files["pgbouncer.ini"]
    assert files["userlist.txt"].startswith('"app" "SCRAM-SHA-256$x"\n"pgbouncer_admin" "SCRAM')


def test_settings_given_as_json_win_over_the_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNSTORM_POSTGRES_SETTINGS_JSON", json.dumps({"max_connections": 7}))
    scenario = load_scenario("direct-small")
    assert entry.settings_of("postgres", scenario) == {"max_connections": 7}
    assert "max_connections = 7\n" in entry.postgres_conf(scenario, entry.ServiceEnv())


def test_secrets_are_generated_once_private_and_kept(tmp_path: Path) -> None:
    env = entry.ServiceEnv(secrets_dir=str(tmp_path / "secrets"))
    first = entry.load_secrets(env, create=True, environ={})
    again = entry.load_secrets(env, create=False, environ={})
    assert first == again
    assert set(first) == {"postgres", "app", "pgbouncer_admin"}
    assert len(set(first.values())) == 3
    mode = stat.S_IMODE(os.stat(tmp_path / "secrets" / entry.SECRETS_FILE).st_mode)
    assert mode == 0o600


def test_secrets_from_the_environment_need_no_folder(tmp_path: Path) -> None:
    env = entry.ServiceEnv(secrets_dir=str(tmp_path / "none"))
    got = entry.load_secrets(env, create=False, need=("pgbouncer_admin",),
                             environ={"CONNSTORM_PGBOUNCER_ADMIN_PASSWORD": "given"})
    assert got == {"pgbouncer_admin": "given"}
    assert not (tmp_path / "none").exists()


def test_secrets_missing_fail_after_the_timeout_with_one_line(tmp_path: Path) -> None:
    env = entry.ServiceEnv(secrets_dir=str(tmp_path))
    with pytest.raises(StackError, match="no passwords yet"):
        entry.load_secrets(env, create=False, environ={}, timeout_s=0)


def test_functions_get_the_database_of_their_path() -> None:
    scenario = load_scenario("tests/docker/scenarios/both-paths.toml")
    env = entry.ServiceEnv(pg_host="postgres", pg_port=1, pgbouncer_host="pgbouncer",
                           pgbouncer_port=2)
    secrets = {"postgres": "a", "app": "b", "pgbouncer_admin": "c"}
    got = entry.function_env(scenario, env, secrets)
    assert (got["direct"]["DB_HOST"], got["direct"]["DB_PORT"]) == ("postgres", "1")
    assert (got["pooled"]["DB_HOST"], got["pooled"]["DB_PORT"]) == ("pgbouncer", "2")
    assert got["pooled"]["DB_PASSWORD"] == "b"
    assert got["pooled"]["DB_USER"] == "app"


def test_render_command_writes_every_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNSTORM_SCENARIO", "pgbouncer-transaction")
    assert entry.main(["render", "--render-dir", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["pg_hba.conf", "pgbouncer.ini", "postgresql.conf", "userlist.txt"]


def test_unknown_scenario_is_one_line_and_its_exit_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONNSTORM_SCENARIO", "/scenarios/nope.toml")
    assert entry.main(["postgres"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("connstorm: error: /scenarios/nope.toml: no such scenario file")
