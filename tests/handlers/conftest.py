"""Fixtures for the handler tests: a real PostgreSQL with the workload installed.

Until ``local_stack.postgres.PostgresServer`` lands, a minimal cluster is
started here (test code only; it does not ship). It runs as the ``postgres``
OS user, on 127.0.0.1 and a free port, and dies with the test process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from handlers.workload import schema

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRODUCTS = 1000


@dataclass(frozen=True)
class Pg:
    """A running test cluster: app role ``app`` owning database ``app``."""

    host: str
    port: int
    admin_dsn: str
    app_dsn: str
    app_password: str
    data_dir: Path
    proc: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def start_pg(extra: dict[str, str] | None = None) -> Pg:
    """Start a fresh cluster (about a second)."""
    root = Path(tempfile.mkdtemp(prefix="connstorm-h4-"))
    os.chmod(root, 0o755)
    data = root / "data"
    admin_pw, app_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(admin_pw)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"]),
                   check=True, capture_output=True)
    port = _free_port()
    settings = {"listen_addresses": "127.0.0.1", "port": str(port),
                "unix_socket_directories": str(root), "max_connections": "40",
                "fsync": "off", **(extra or {})}
    argv = [str(PG_BIN / "postgres"), "-D", str(data)]
    for k, v in settings.items():
        argv += ["-c", f"{k}={v}"]
    log = open(root / "postgres.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(_as_postgres(argv), stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent, start_new_session=True)
    admin_dsn = f"postgresql://postgres:{admin_pw}@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin_dsn, connect_timeout=2, autocommit=True) as conn:
                conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{app_pw}'")
                conn.execute("CREATE DATABASE app OWNER app")
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "postgres.log").read_text()[-2000:]) from None
            time.sleep(0.1)
    app_dsn = f"postgresql://app:{app_pw}@127.0.0.1:{port}/app"
    return Pg("127.0.0.1", port, admin_dsn, app_dsn, app_pw, data, proc)


def stop_pg(pg: Pg) -> None:
    """Fast shutdown, then remove the cluster."""
    if pg.proc.poll() is None:
        # The whole group: runuser does not pass SIGINT (fast shutdown) on.
        os.killpg(pg.proc.pid, signal.SIGINT)
        try:
            pg.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pg.proc.kill()
            pg.proc.wait()
    shutil.rmtree(pg.data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg() -> Iterator[Pg]:
    """One cluster for the session, the workload installed."""
    server = start_pg()
    try:
        schema.install(server.app_dsn, PRODUCTS)
        yield server
    finally:
        stop_pg(server)


@pytest.fixture
def db_env(pg: Pg, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The DB_* variables a function gets, set in this process too."""
    env = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": "app", "DB_USER": "app",
           "DB_PASSWORD": pg.app_password, "DB_SSLMODE": "disable",
           "AWS_LAMBDA_FUNCTION_NAME": "api",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/26/[$LATEST]" + secrets.token_hex(16)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@contextlib.contextmanager
def admin(pg: Pg) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit superuser connection to database ``app``."""
    with psycopg.connect(pg.admin_dsn.rsplit("/", 1)[0] + "/app", autocommit=True) as conn:
        yield conn
