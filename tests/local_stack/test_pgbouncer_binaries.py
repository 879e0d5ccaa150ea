"""Both PgBouncers users run in 2026: Debian 12's 1.18 and one that tracks prepared statements.

scripts/bootstrap.sh builds PgBouncer >= 1.21 from Debian 13's source into
connstorm's cache, so these tests find both; the real servers show why both
matter: psycopg 3's default prepared statements break 1.18 in transaction mode
and work through 1.21+ (PgBouncer NEWS, "PgBouncer 1.21.0").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from connstorm.errors import EnvironmentProblemError
from connstorm.local_stack import pgbouncer_binaries
from connstorm.local_stack.pgbouncer import PgBouncerServer, render_ini
from connstorm.local_stack.pgbouncer_binaries import (
    PgBouncerBinary,
    available,
    read_version,
    resolve,
)
from connstorm.local_stack.postgres import PostgresServer

CLIENTS = 3
#: psycopg prepares a query on its 6th execution (prepare_threshold=5, the default).
EXECUTIONS = 8


def _modern() -> PgBouncerBinary:
    found = [b for b in available() if b.tracks_prepared_statements]
    if not found:
        pytest.fail("no PgBouncer >= 1.21: run scripts/bootstrap.sh, which builds one")
    return found[-1]


def test_both_generations_are_found_and_named_by_version() -> None:
    versions = [b.version_tuple for b in available()]
    assert versions == sorted(versions)
    assert any(v < (1, 21) for v in versions), "Debian 12's PgBouncer 1.18 is installed"
    assert _modern().version_tuple >= (1, 21)


def test_resolve_takes_empty_a_version_prefix_or_a_path() -> None:
    installed = resolve("")
    assert installed.installed_by_system
    modern = _modern()
    wanted = ".".join(str(n) for n in modern.version_tuple[:2])
    assert resolve(wanted).version == modern.version
    assert resolve(str(modern.path)) == PgBouncerBinary(modern.path, modern.version)
    assert read_version(modern.path) == modern.version


@pytest.mark.parametrize(("spec", "says"), [
    ("0.9", "no PgBouncer 0.9 found"),
    ("/nonexistent/pgbouncer", "no such program"),
])
def test_resolve_names_what_is_missing_in_one_line(spec: str, says: str) -> None:
    with pytest.raises(EnvironmentProblemError) as caught:
        resolve(spec)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_program_that_is_not_pgbouncer_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "pgbouncer"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(EnvironmentProblemError, match="not a PgBouncer"):
        resolve(str(fake))


def test_elsewhere_than_debian_one_line_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN only a PgBouncer 1.18 and no Debian tools (what exists is faked, nothing else)
    old = [b for b in available() if not b.tracks_prepared_statements]
    monkeypatch.setattr(pgbouncer_binaries, "available", lambda: old)
    monkeypatch.setattr(pgbouncer_binaries, "on_debian", lambda: False)
    lines: list[str] = []
    found = pgbouncer_binaries.ensure_prepared_statement_support(lines.append)
    assert found == old
    assert lines == [pgbouncer_binaries.INSTALL_HINT]


def test_the_private_apt_configuration_reads_and_writes_only_its_folder(tmp_path: Path) -> None:
    options = pgbouncer_binaries._private_apt(tmp_path / "apt")
    pairs = dict(o.split("=", 1) for o in options if "=" in o)
    for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::Cache"):
        assert pairs[key].startswith(str(tmp_path)), key
    assert pairs["Dir::Etc::sourceparts"] == "-"
    sources = (tmp_path / "apt" / "sources.list").read_text()
    assert sources.startswith("deb-src ")
    assert f" {pgbouncer_binaries.SOURCE_SUITE} main" in sources


def test_the_fallback_database_entry_serves_every_database() -> None:
    text = render_ini({}, listen_port=1, db_host="h", db_port=2, db_name="*", auth_file="a")
    assert "* = host=h port=2" in text.splitlines()


def _prepared_clients(dsn: str) -> list[str]:
    """Three psycopg 3 clients with default settings, each repeating one query."""
    errors: list[str] = []
    start = threading.Barrier(CLIENTS)

    def client() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                start.wait(timeout=30)
                for i in range(EXECUTIONS):
                    conn.execute("SELECT %s::int + 1", (i,)).fetchone()
        except psycopg.Error as exc:
            errors.append(str(exc).strip().splitlines()[0])

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.slow
def test_prepared_statements_fail_through_1_18_and_work_through_1_21_plus(
        postgres_factory: Callable[..., PostgresServer],
        pgbouncer_factory: Callable[..., PgBouncerServer]) -> None:
    # GIVEN one server connection shared by three clients in transaction mode
    pg = postgres_factory(max_connections=20)
    old = pgbouncer_factory(pg, pool_mode="transaction", default_pool_size=1)
    new = pgbouncer_factory(pg, pool_mode="transaction", default_pool_size=1,
                            binary=str(_modern().path))
    assert old.binary is not None
    assert not old.binary.tracks_prepared_statements
    assert new.version == _modern().version
    # WHEN each client runs the same query 8 times (psycopg names it _pg3_0 on the 6th)
    old_errors, new_errors = _prepared_clients(old.dsn), _prepared_clients(new.dsn)
    # THEN 1.18 hands one client's statement name to another's server session...
    assert old_errors, "PgBouncer 1.18 cannot carry named prepared statements"
    assert all('prepared statement "_pg3_0"' in e for e in old_errors), old_errors
    # ... and 1.21+ re-prepares each client's statement wherever it runs
    assert new_errors == []
