"""The credential stand-ins: RDS IAM token verification and the Secrets Manager secret.

Tokens are made by the real ``boto3`` ``generate_db_auth_token``; the proxy and
the handlers talk to a real PostgreSQL.
"""

from __future__ import annotations

import calendar
import importlib
import json
import time
import types
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest

from connstorm.handlers.workload import db
from connstorm.local_stack.iam_auth_proxy import IamAuthProxy, TokenError, verify_token
from connstorm.local_stack.secrets_manager import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    SecretsManagerServer,
)
from tests.handlers import apigw_events
from tests.handlers.conftest import Pg, admin

KEYS = {DUMMY_ACCESS_KEY: DUMMY_SECRET_KEY}


def make_token(host: str = "127.0.0.1", port: int = 5432, user: str = "app",
               region: str = "us-east-1", secret: str = DUMMY_SECRET_KEY) -> str:
    rds = boto3.session.Session().client(
        "rds", region_name=region, aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=secret, aws_session_token="local-session")
    return str(rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user))


def check(token: str, **kw: Any) -> str:
    args: dict[str, Any] = {"host": "127.0.0.1", "port": 5432, "user": "app",
                            "region": "us-east-1", "keys": KEYS, **kw}
    return verify_token(token, **args)


def test_verify_token_accepts_a_real_boto3_token() -> None:
    token = make_token()
    assert len(check(token)) == 64


@pytest.mark.parametrize(("token_kw", "check_kw", "reason"), [
    ({"port": 5433}, {}, "not 127.0.0.1:5432"),
    ({"host": "db.example.com"}, {}, "not 127.0.0.1:5432"),
    ({"user": "admin"}, {}, "not 'app'"),
    ({"region": "eu-west-1"}, {}, "scope"),
    ({"secret": "some-other-secret"}, {}, "signature does not match"),
    ({}, {"keys": {"AKIAOTHER": "x"}}, "unknown access key"),
    ({}, {"now_after_signing_s": 901}, "expired"),
    ({}, {"now_after_signing_s": -301}, "future"),
])
def test_verify_token_refuses(token_kw: dict[str, Any], check_kw: dict[str, Any],
                              reason: str) -> None:
    token = make_token(**token_kw)
    if "now_after_signing_s" in check_kw:
        signed = token.split("X-Amz-Date=")[1][:16]
        at = calendar.timegm(time.strptime(signed, "%Y%m%dT%H%M%SZ"))
        check_kw = {"now": at + check_kw.pop("now_after_signing_s")}
    with pytest.raises(TokenError, match=reason):
        check(token, **check_kw)


def test_verify_token_accepts_within_lifetime_and_skew() -> None:
    token = make_token()
    at = calendar.timegm(time.strptime(token.split("X-Amz-Date=")[1][:16], "%Y%m%dT%H%M%SZ"))
    check(token, now=at + 899)
    check(token, now=at - 299)


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("Action=connect", "Action=admin", "Action"),
    ("DBUser=app", "DBUser=app&DBUser=app", "repeats"),
    ("X-Amz-Expires=900", "X-Amz-Expires=3600", "X-Amz-Expires"),
    ("X-Amz-Expires=900", "X-Amz-Expires=899", "signature does not match"),
])
def test_verify_token_refuses_tampering(old: str, new: str, reason: str) -> None:
    token = make_token()
    assert old in token
    with pytest.raises(TokenError, match=reason):
        check(token.replace(old, new))


@pytest.fixture(scope="module")
def proxy(pg: Pg) -> Iterator[IamAuthProxy]:
    with IamAuthProxy(upstream_host=pg.host, upstream_port=pg.port,
                      upstream_password=pg.app_password, keys=KEYS) as p:
        yield p


def test_proxy_logs_in_with_a_token_and_splices_a_session(proxy: IamAuthProxy) -> None:
    token = make_token(port=proxy.port)
    for sslmode in ("prefer", "disable"):
        with psycopg.connect(host=proxy.host, port=proxy.port, user="app", dbname="app",
                             password=token, sslmode=sslmode, application_name="t:1") as conn:
            row = conn.execute("SELECT current_user, application_name, count(*) "
                               "FROM pg_stat_activity, generate_series(1, 3) "
                               "WHERE pid = pg_backend_pid() GROUP BY 1, 2").fetchone()
            assert row == ("app", "t:1", 3)
            with conn.transaction():
                conn.execute("SELECT pg_sleep(0)")
    assert proxy.logins[-1].accepted


def test_proxy_refuses_a_bad_token_as_rds_does(proxy: IamAuthProxy) -> None:
    token = make_token(port=proxy.port, user="someone")
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(host=proxy.host, port=proxy.port, user="app", dbname="app",
                        password=token, sslmode="disable")
    assert 'PAM authentication failed for user "app"' in str(caught.value)
    assert db.classify(str(caught.value)) == "authentication_failed"
    assert proxy.logins[-1].accepted is False
    assert "not 'app'" in proxy.logins[-1].reason


def test_proxy_passes_the_servers_refusal_on(pg: Pg) -> None:
    with IamAuthProxy(upstream_host=pg.host, upstream_port=pg.port,
                      upstream_password="wrong", keys=KEYS) as p:
        token = make_token(port=p.port)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host=p.host, port=p.port, user="app", dbname="app",
                            password=token, sslmode="disable")


def test_iam_token_handler_regenerates_only_near_expiry(proxy: IamAuthProxy,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {**proxy.function_env(), "DB_USER": "app", "DB_SSLMODE": "disable",
                 "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
                 "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY}.items():
        monkeypatch.setenv(k, v)
    h = importlib.reload(importlib.import_module("connstorm.handlers.iam_token_handler"))
    first = h.token()
    assert h.token() == first
    fetches = db.COUNTERS.credential_fetches
    h._token_expires_at = time.time() + h.REFRESH_MARGIN_S - 1  # about to expire
    h.token()
    assert db.COUNTERS.credential_fetches == fetches + 1  # regenerated
    assert h.token() == h.token()
    assert db.COUNTERS.credential_fetches == fetches + 1  # and cached again
    out = h.lambda_handler(apigw_events.v1("GET", "/health"), types.SimpleNamespace())
    assert out["statusCode"] == 200


@pytest.mark.slow
def test_secrets_cached_refreshes_once_after_rotation(pg: Pg,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a role of its own whose password lives in the secret
    with admin(pg) as conn:
        conn.execute("DROP ROLE IF EXISTS rotator")
        conn.execute("CREATE ROLE rotator LOGIN PASSWORD 'first-password'")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO rotator")
    with SecretsManagerServer(username="rotator", password="first-password", host=pg.host,
                              port=pg.port, dbname="app") as sm:
        for k, v in {**sm.function_env(), "DB_SSLMODE": "disable",
                     "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
                     "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
                     "AWS_LAMBDA_FUNCTION_NAME": "rotating"}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("DB_HOST", raising=False)
        h = importlib.reload(importlib.import_module("connstorm.handlers.secrets_cached_handler"))

        def get() -> int:
            return int(h.lambda_handler(apigw_events.v2("GET", "/items/1"), None)["statusCode"])

        assert [get(), get(), get()] == [200, 200, 200]
        assert sm.fetches() == 1
        # WHEN the password is rotated and the open connection dropped
        with admin(pg) as conn:
            conn.execute("ALTER ROLE rotator PASSWORD 'second-password'")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = 'rotator'")
        sm.rotate("second-password")
        # THEN the cached password is refused once, the secret read again, and it works
        assert [get(), get()] == [200, 200]
        assert sm.fetches() == 2
        secret = json.loads(sm.client().get_secret_value(SecretId=sm.secret_arn)["SecretString"])
        assert secret["password"] == "second-password"
    with admin(pg) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE usename = 'rotator'")
        conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM rotator")
        conn.execute("DROP ROLE rotator")


def test_proxy_stop_ends_sessions_and_the_listener(pg: Pg) -> None:
    import socket

    p = IamAuthProxy(upstream_host=pg.host, upstream_port=pg.port,
                     upstream_password=pg.app_password, keys=KEYS)
    p.start()
    conn = psycopg.connect(host=p.host, port=p.port, user="app", dbname="app",
                           password=make_token(port=p.port), sslmode="disable")
    assert conn.execute("SELECT 1").fetchone() == (1,)
    p.stop()
    p.stop()  # idempotent
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect((p.host, p.port))


def test_secrets_server_env_has_no_password_and_stops(pg: Pg) -> None:
    import socket

    from connstorm.local_stack.secrets_manager import secrets_cached_env

    stack_env = {"DB_HOST": "h", "DB_PORT": "1", "DB_NAME": "app", "DB_USER": "app",
                 "DB_PASSWORD": "pw", "DB_SSLMODE": "disable"}
    with SecretsManagerServer(username="app", password="pw", host="h", port=1,
                              dbname="app") as sm:
        env = secrets_cached_env(stack_env, sm)
        assert "DB_PASSWORD" not in env
        assert "DB_USER" not in env
        assert env["DB_HOST"] == "h"
        assert env["DB_SECRET_ARN"] == sm.secret_arn
        assert env["AWS_ENDPOINT_URL_SECRETS_MANAGER"].startswith("http://127.0.0.1:")
        port = int(env["AWS_ENDPOINT_URL_SECRETS_MANAGER"].rsplit(":", 1)[1])
        assert sm.fetches() == 0  # creating the secret is not a fetch
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))
