"""PostgresServer and ExternalPostgres against real PostgreSQL clusters."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm import error_kinds
from connstorm.errors import EnvironmentProblemError, ScenarioError, StackError
from connstorm.local_stack import postgres as postgres_module
from connstorm.local_stack.external_postgres import ExternalPostgres
from connstorm.local_stack.os_user import server_user
from connstorm.local_stack.ports import port_in_use
from connstorm.local_stack.postgres import PostgresServer, render_conf
from connstorm.local_stack.scratch import processes_in
from connstorm.scenario import PostgresConfig, load_scenario

pytestmark = pytest.mark.slow


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, connect_timeout=5, autocommit=True)


def test_postgres_max_connections_is_exact_then_too_many_and_superuser_gets_reserved_slot(
        postgres_factory: Callable[..., PostgresServer]) -> None:
    # GIVEN max_connections=6 with 2 reserved for superusers: 4 slots for the app role
    pg = postgres_factory(max_connections=6, superuser_reserved_connections=2)
    opened: list[psycopg.Connection[Any]] = []
    try:
        # WHEN the app role opens connections one by one
        for _ in range(4):
            opened.append(_connect(pg.app_dsn))
        with pytest.raises(psycopg.OperationalError) as refused:
            opened.append(_connect(pg.app_dsn))
        # THEN exactly 4 succeed and the 5th is too_many_connections (no SQLSTATE on connect)
        assert len(opened) == 4
        assert "remaining connection slots are reserved" in str(refused.value)
        assert error_kinds.classify_exception(refused.value) == error_kinds.TOO_MANY_CONNECTIONS
        # AND the superuser still gets in through the reserved slots, both of them
        for _ in range(2):
            opened.append(_connect(pg.admin_dsn))
        assert opened[-1].execute("SELECT current_user").fetchone() == ("postgres",)
        # AND past max_connections even the superuser hears "too many clients already"
        with pytest.raises(psycopg.OperationalError) as full:
            _connect(pg.admin_dsn)
        assert "too many clients already" in str(full.value)
        assert error_kinds.classify_exception(full.value) == error_kinds.TOO_MANY_CONNECTIONS
    finally:
        for conn in opened:
            conn.close()


def test_postgres_app_role_is_ordinary_and_owns_its_database(
        postgres_server: PostgresServer) -> None:
    with _connect(postgres_server.app_dsn) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), r.rolsuper, r.rolcreaterole, "
            "pg_get_userbyid(d.datdba) FROM pg_roles r, pg_database d "
            "WHERE r.rolname = current_user AND d.datname = current_database()").fetchone()
        assert row == ("app", "app", False, False, "app")
        # the server listens on loopback only, with the scenario's settings
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW max_connections").fetchone() == ("20",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


def test_postgres_rejects_wrong_password(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.app_dsn.replace(postgres_server.app_password, "wrong")
    with pytest.raises(psycopg.OperationalError) as err:
        _connect(dsn)
    assert error_kinds.classify_exception(err.value) == error_kinds.AUTHENTICATION_FAILED


def test_postgres_each_cluster_has_its_own_passwords(
        postgres_factory: Callable[..., PostgresServer]) -> None:
    a, b = postgres_factory(), postgres_factory()
    assert a.port != b.port
    assert len({a.admin_password, b.admin_password, a.app_password, b.app_password}) == 4
    with _connect(a.admin_dsn), pytest.raises(psycopg.OperationalError):
        _connect(a.admin_dsn.replace(f":{a.port}/", f":{b.port}/"))


def test_postgres_runs_as_unprivileged_user(postgres_server: PostgresServer) -> None:
    proc = postgres_server.process
    assert proc is not None
    assert proc.server_pid is not None
    owner = Path(f"/proc/{proc.server_pid}").stat().st_uid
    user = server_user()
    if user is not None:
        import pwd

        assert owner == pwd.getpwnam(user).pw_uid != 0


def test_postgres_unknown_setting_names_the_key(tmp_run_dir: Path) -> None:
    config = PostgresConfig(settings={"max_conections": 5})
    with pytest.raises(ScenarioError) as err, \
            PostgresServer(config, tmp_run_dir, source="my.toml"):
        pass
    assert str(err.value) == ("my.toml: [postgres] max_conections: unknown PostgreSQL "
                              f"{postgres_module.find_binaries().version} setting "
                              "(did you mean max_connections?)")


def test_postgres_bad_value_fails_with_log_tail_and_leaves_nothing(tmp_run_dir: Path) -> None:
    config = PostgresConfig(settings={"shared_buffers": "lots"})
    server = PostgresServer(config, tmp_run_dir)
    with pytest.raises(StackError) as err, server:
        pass
    assert "postgres exited with status" in str(err.value)
    assert 'invalid value for parameter "shared_buffers"' in str(err.value)
    assert not (tmp_run_dir / ".stack-postgres").exists()
    assert not port_in_use(server.port)
    assert server.process is not None
    assert not server.process.running()


def test_postgres_stop_leaves_no_process_and_no_data(tmp_run_dir: Path) -> None:
    server = PostgresServer(PostgresConfig(), tmp_run_dir)
    with server:
        data = server.data_dir
        assert processes_in(data.parent)
    assert not data.exists()
    assert not processes_in(data.parent)
    assert not port_in_use(server.port)
    assert "database system is shut down" in (tmp_run_dir / "logs" / "postgres.log").read_text()


def test_postgres_missing_binaries_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNSTORM_PG_BINDIR", "/nonexistent/bin")
    postgres_module.find_binaries.cache_clear()
    try:
        with pytest.raises(EnvironmentProblemError, match="apt-get install -y postgresql"):
            postgres_module.find_binaries()
    finally:
        monkeypatch.delenv("CONNSTORM_PG_BINDIR")
        postgres_module.find_binaries.cache_clear()


def test_postgres_timeouts_are_classified(postgres_server: PostgresServer) -> None:
    # idle_session_timeout set per connection, as a scenario would set it server-wide
    conn = psycopg.connect(postgres_server.app_dsn, autocommit=True,
                           options="-c idle_session_timeout=100")
    deadline = time.monotonic() + 10
    with pytest.raises(psycopg.OperationalError) as err:  # noqa: PT012
        while time.monotonic() < deadline:
            conn.execute("SELECT 1")
            time.sleep(0.3)
    assert error_kinds.classify_exception(err.value) == error_kinds.IDLE_SESSION_TIMEOUT
    conn.close()
    # a backend terminated by an administrator
    victim = _connect(postgres_server.app_dsn)
    pid = victim.info.backend_pid
    with _connect(postgres_server.admin_dsn) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError) as killed:
        victim.execute("SELECT 1")
    assert error_kinds.classify_exception(killed.value) == error_kinds.ADMIN_SHUTDOWN
    victim.close()


def test_postgres_connection_refused_is_classified(tmp_run_dir: Path) -> None:
    server = PostgresServer(PostgresConfig(), tmp_run_dir)
    with server:
        dsn = server.app_dsn
    with pytest.raises(psycopg.OperationalError) as err:
        _connect(dsn)
    assert error_kinds.classify_exception(err.value) == error_kinds.CONNECTION_REFUSED


def test_external_postgres_creates_app_role_when_missing(
        postgres_factory: Callable[..., PostgresServer]) -> None:
    # GIVEN a server without the application role
    pg = postgres_factory()
    with _connect(pg.admin_dsn) as admin:
        admin.execute("DROP DATABASE app")
        admin.execute("DROP ROLE app")
    scenario = load_scenario("direct-small", overrides=[f'postgres.url="{pg.admin_dsn}"'])
    # WHEN connstorm uses it by URL
    with ExternalPostgres(scenario.postgres) as ext:
        # THEN an ordinary role and database exist, with a fresh password
        assert ext.port == pg.port
        with _connect(ext.app_dsn) as conn:
            assert conn.execute(
                "SELECT current_user, current_database(), rolsuper FROM pg_roles "
                "WHERE rolname = current_user").fetchone() == ("app", "app", False)
        assert ext.role_secret("app").startswith("SCRAM-SHA-256$")


def test_external_postgres_unreachable_is_one_line(tmp_run_dir: Path) -> None:
    config = PostgresConfig(url="postgresql://postgres:secret@127.0.0.1:1/postgres")
    with pytest.raises(StackError) as err, ExternalPostgres(config, connect_timeout_s=2):
        pass
    assert "cannot connect" in str(err.value)
    assert "secret" not in str(err.value)


def test_render_conf_quotes_strings() -> None:
    text = render_conf({"a": True, "b": 5, "c": "it's", "d": 1.5})
    assert text == "a = on\nb = 5\nc = 'it''s'\nd = 1.5\n"


def test_postgres_retries_on_a_new_port_when_its_free_port_was_taken(
        tmp_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the free port handed out is grabbed by someone else before postgres binds it
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_claim = postgres_module.claim_port
        monkeypatch.setattr(postgres_module, "claim_port",
                            lambda requested: next(ports, None) or real_claim(requested))
        # WHEN the server starts
        with PostgresServer(PostgresConfig(), tmp_run_dir) as pg:
            # THEN it lost the race once, then listens on another port
            assert pg.port != taken
            with _connect(pg.app_dsn) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    assert "already in use" in (tmp_run_dir / "logs" / "postgres.log").read_text()


def test_postgres_template_cluster_is_built_once_and_kept_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an empty cache
    monkeypatch.setenv("CONNSTORM_CACHE_DIR", str(tmp_path / "cache"))
    binaries = postgres_module.find_binaries()
    # WHEN two clusters start one after the other
    with PostgresServer(PostgresConfig(), tmp_path / "one") as first:
        templates = sorted((tmp_path / "cache").glob("pg*-template-v*"))
        built = [p.stat().st_mtime_ns for p in templates]
        with _connect(first.app_dsn):
            pass
    with PostgresServer(PostgresConfig(), tmp_path / "two") as second:
        template, pwfile = templates
        # the template's superuser password no longer opens the running cluster
        stale = second.admin_dsn.replace(second.admin_password, pwfile.read_text().strip())
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _connect(stale)
    # THEN one template (and its password file, owner-only) was made, and reused
    assert template.name == f"pg{binaries.version}-template-v{postgres_module.TEMPLATE_FORMAT}"
    assert (template / "PG_VERSION").is_file()
    assert oct(pwfile.stat().st_mode & 0o777) == "0o600"
    assert [p.stat().st_mtime_ns for p in templates] == built
