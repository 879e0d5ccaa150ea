"""``sslmode=verify-full`` as the template deploys it: DB_SSLROOTCERT read from the task root.

A real PostgreSQL presents a certificate our own CA signed (as RDS presents one
the RDS CA signed); the handlers check it against the bundle DB_SSLROOTCERT
names, resolved against LAMBDA_TASK_ROOT as Lambda unpacks the zip there.
"""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm.handlers.workload import db, schema
from connstorm.handlers.workload.settings import DbSettings, SettingsError
from connstorm.local_stack.postgres import PostgresServer
from tests.handlers import apigw_events
from tests.handlers.tls import Ca, make_ca, tls_postgres


@pytest.fixture(scope="module")
def ca() -> Ca:
    return make_ca("connstorm test RDS CA")


@pytest.fixture(scope="module")
def tls_pg(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with tls_postgres(ca, tmp_path_factory.mktemp("tls-pg")) as server:
        schema.install(server.app_dsn, 100)
        yield server


def task_root(tmp_path: Path, *cas: Ca) -> Path:
    """A folder laid out as Lambda unpacks the zip: the bundle at its root."""
    (tmp_path / "rds-ca-bundle.pem").write_text("".join(c.pem for c in cas), encoding="ascii")
    return tmp_path


def test_relative_sslrootcert_is_read_from_the_task_root(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = task_root(tmp_path, make_ca("a"))
    monkeypatch.chdir("/")
    settings = DbSettings.from_env({"DB_HOST": "h", "DB_SSLMODE": "verify-full",
                                    "DB_SSLROOTCERT": "rds-ca-bundle.pem",
                                    "LAMBDA_TASK_ROOT": str(root)})
    assert settings.sslrootcert == str(root / "rds-ca-bundle.pem")
    assert db.conninfo(settings)["sslrootcert"] == str(root / "rds-ca-bundle.pem")
    assert db.conninfo(settings)["sslmode"] == "verify-full"
    # An absolute path is taken as it is; none set passes none to libpq.
    absolute = DbSettings.from_env({"DB_HOST": "h",
                                    "DB_SSLROOTCERT": str(root / "rds-ca-bundle.pem")})
    assert absolute.sslrootcert == str(root / "rds-ca-bundle.pem")
    assert "sslrootcert" not in db.conninfo(DbSettings.from_env({"DB_HOST": "h"}))


def test_a_missing_bundle_fails_at_init_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        DbSettings.from_env({"DB_HOST": "h", "DB_SSLROOTCERT": "rds-ca-bundle.pem",
                             "LAMBDA_TASK_ROOT": str(tmp_path)})
    message = str(info.value)
    assert message.startswith(f"DB_SSLROOTCERT: {tmp_path / 'rds-ca-bundle.pem'} is not a file")
    assert "--rds-ca-bundle" in message
    assert "DbSslMode=require" in message


def _handler_env(server: PostgresServer, root: Path, **extra: str) -> dict[str, str]:
    return {"DB_HOST": server.host, "DB_PORT": str(server.port), "DB_NAME": "app",
            "DB_USER": server.app_user, "DB_PASSWORD": server.app_password,
            "DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": "rds-ca-bundle.pem",
            "LAMBDA_TASK_ROOT": str(root), "AWS_LAMBDA_FUNCTION_NAME": "tls",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]" + secrets.token_hex(16),
            **extra}


def _load(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return importlib.reload(importlib.import_module("connstorm.handlers.per_invocation_handler"))


def test_verify_full_accepts_the_servers_ca_and_the_session_is_encrypted(
        tls_pg: PostgresServer, ca: Ca, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the bundle holds an unrelated CA and the server's (as the RDS bundle
    # plus Amazon Root CA 1 do)
    root = task_root(tmp_path, make_ca("unrelated"), ca)
    handler = _load(_handler_env(tls_pg, root), monkeypatch)
    # WHEN the handler answers a request
    answer = handler.lambda_handler(apigw_events.v2("GET", "/items/5"), None)
    # THEN it was served, over TLS (the server's own view of the session)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["item"]["id"] == 5
    conninfo = db.conninfo(handler.SETTINGS)
    with psycopg.connect(**conninfo) as conn:
        ssl = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert ssl == (True,)


def test_verify_full_refuses_a_server_its_bundle_did_not_sign(
        tls_pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a bundle without the server's CA (a man in the middle's view)
    root = task_root(tmp_path, make_ca("someone else"))
    handler = _load(_handler_env(tls_pg, root), monkeypatch)
    # WHEN a request needs a connection
    answer = handler.lambda_handler(apigw_events.v2("GET", "/items/5"), None)
    # THEN libpq refused the certificate and no query ran; require (with no
    # root certificate: given one, libpq makes require act as verify-ca) would
    # have connected to the same server without a word
    assert answer["statusCode"] >= 500, answer
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**db.conninfo(handler.SETTINGS)).close()
    require = {**db.conninfo(handler.SETTINGS), "sslmode": "require"}
    del require["sslrootcert"]
    with psycopg.connect(**require) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
