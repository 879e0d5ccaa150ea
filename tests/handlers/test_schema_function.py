"""The AWS schema step: the one-shot function deploy/template.yaml deploys, against real parts.

A real PostgreSQL (a fresh database owned by a CREATEROLE login, as RDS's
master user) and the Secrets Manager stand-in (moto's server on loopback) play
RDS and the template's two generated secrets: the master user's and the
application role's the schema function creates.
"""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from connstorm.handlers.workload import roles, schema_function
from connstorm.handlers.workload.settings import SettingsError
from connstorm.local_stack import credentials
from connstorm.local_stack.secrets_manager import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    SecretsManagerServer,
)
from tests.handlers import apigw_events
from tests.handlers.conftest import Pg, admin


@dataclass(frozen=True)
class FreshDb:
    """An empty database and its owner, a CREATEROLE login like RDS's master user."""

    name: str
    owner: str
    password: str


@pytest.fixture
def fresh_db(pg: Pg) -> Iterator[FreshDb]:
    db = FreshDb(f"schemafn_{secrets.token_hex(4)}", f"master_{secrets.token_hex(4)}",
                 secrets.token_hex(16))
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
            sql.Identifier(db.owner), sql.Literal(db.password)))
        conn.execute(f"CREATE DATABASE {db.name} OWNER {db.owner}")
    yield db
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {db.name} WITH (FORCE)")
        conn.execute(f"DROP ROLE {db.owner}")


@dataclass
class Deployed:
    """What the template gives the schema function: two secrets and an environment."""

    sm: SecretsManagerServer
    env: dict[str, str]
    app_secret_arn: str
    app_user: str
    app_password: str
    iam_user: str
    dsn: str


@pytest.fixture
def deployed(pg: Pg, fresh_db: FreshDb, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """The master secret (moto), the application role's secret, the function's environment."""
    app_user, iam_user = f"app_{secrets.token_hex(4)}", f"iam_{secrets.token_hex(4)}"
    app_password = secrets.token_urlsafe(24)
    with SecretsManagerServer(username=fresh_db.owner, password=fresh_db.password, host="unused",
                              port=1, dbname="unused") as sm:
        answer = sm.client().create_secret(
            Name=f"app-{secrets.token_hex(4)}",
            SecretString=json.dumps({"username": app_user, "password": app_password}))
        # GIVEN the environment the template gives the function (host from the
        # template, credentials only in the secrets)
        env = {**sm.function_env(), "DB_APP_SECRET_ARN": answer["ARN"], "DB_HOST": pg.host,
               "DB_PORT": str(pg.port), "DB_NAME": fresh_db.name, "DB_SSLMODE": "disable",
               "DB_IAM_USER": iam_user, "SEED_PRODUCTS": "250",
               "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
               "AWS_REGION": "us-east-1"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        dsn = pg.admin_dsn.rsplit("/", 1)[0] + f"/{fresh_db.name}"
        try:
            yield Deployed(sm, env, answer["ARN"], app_user, app_password, iam_user, dsn)
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for role in (app_user, iam_user):
                    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (role,)).fetchone():
                        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def role_oid(dsn: str, role: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return None if row is None else int(row[0])


def test_schema_function_installs_seeds_and_creates_the_roles(
        fresh_db: FreshDb, deployed: Deployed) -> None:
    # WHEN it is invoked with an event naming the seed size, then again
    answer = schema_function.lambda_handler({"products": 120}, None)
    again = schema_function.lambda_handler({}, None)
    fetches = deployed.sm.fetches()
    # THEN the tables exist with the rows asked for (the second run adds up to
    # SEED_PRODUCTS, idempotently), the answers name no password, both secrets
    # were read on each run, and the IAM user can read and write the tables
    assert answer == {"products": 120, "accounts": 120, "app_user": deployed.app_user,
                      "app_user_created": True, "iam_user": deployed.iam_user,
                      "rds_iam_granted": False}
    assert again["products"] == 250
    assert again["app_user_created"] is False
    for text in (json.dumps(answer), json.dumps(again)):
        assert fresh_db.password not in text
        assert deployed.app_password not in text
    assert fetches == 4
    with psycopg.connect(deployed.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (250,)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (250,)
        conn.execute(f"SET ROLE {deployed.iam_user}")
        conn.execute("INSERT INTO orders (account_id, total_cents) VALUES (1, 100)")
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        conn.execute("RESET ROLE")


def _workload_env(deployed: Deployed, **extra: str) -> dict[str, str]:
    env = {key: deployed.env[key] for key in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_SSLMODE")}
    return {**env, "AWS_LAMBDA_FUNCTION_NAME": "api",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]" + secrets.token_hex(16),
            **extra}


def _load(module: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in ("DB_USER", "DB_PASSWORD", "DB_SECRET_ARN", "DB_IAM_AUTH", "DB_SSLROOTCERT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return importlib.reload(importlib.import_module(f"connstorm.handlers.{module}"))


def _call(handler: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    event = apigw_events.v2(method, path, body=None if body is None else json.dumps(body))
    answer = handler.lambda_handler(event, None)
    assert answer["statusCode"] in (200, 201), answer
    return json.loads(answer["body"])


def test_schema_function_twice_creates_the_app_role_once_and_the_workload_runs_as_it(
        deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the schema function has run once (role created) and again (role found)
    assert schema_function.lambda_handler({"products": 50}, None)["app_user_created"] is True
    oid = role_oid(deployed.dsn, deployed.app_user)
    assert schema_function.lambda_handler({"products": 50}, None)["app_user_created"] is False
    # THEN there is one role, the same one, that cannot change the schema or roles
    assert oid is not None
    assert role_oid(deployed.dsn, deployed.app_user) == oid
    with psycopg.connect(deployed.dsn) as conn:
        flags = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin "
                             "FROM pg_roles WHERE rolname = %s",
                             (deployed.app_user,)).fetchone()
    assert flags == (False, False, False, True)
    app_dsn = psycopg.conninfo.make_conninfo(
        deployed.dsn, user=deployed.app_user, password=deployed.app_password)
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (deployed.app_user,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE scratch (id int)")
    # WHEN the workload runs as the role: a password pattern with the app secret's
    # password (the template's DB_PASSWORD), and secrets_cached reading the app secret
    pw = _load("module_level_handler",
               _workload_env(deployed, DB_USER=deployed.app_user,
                             DB_PASSWORD=deployed.app_password), monkeypatch)
    cached = _load("secrets_cached_handler",
                   _workload_env(deployed, DB_SECRET_ARN=deployed.app_secret_arn,
                                 AWS_ENDPOINT_URL_SECRETS_MANAGER=deployed.sm.endpoint_url),
                   monkeypatch)
    # THEN every route answers: reads, an order written and read back
    for handler in (pw, cached):
        assert _call(handler, "GET", "/items/5")["item"]["id"] == 5
        order = _call(handler, "POST", "/orders", {"account_id": 1,
                                                   "items": [{"product_id": 2, "quantity": 1}]})
        order_id = order["order"]["id"]
        assert _call(handler, "GET", f"/orders/{order_id}")["order"]["id"] == order_id
    with psycopg.connect(deployed.dsn) as conn:
        users = {row[0] for row in conn.execute(
            "SELECT usename FROM pg_stat_activity WHERE application_name LIKE 'api:%'")}
    assert users == {deployed.app_user}
    pw.CONN.close()
    assert cached.CONNECTION.conn is not None
    cached.CONNECTION.conn.close()


def test_schema_function_sets_a_rotated_app_password_again(deployed: Deployed) -> None:
    # GIVEN the role exists, then its secret gets a new password
    schema_function.lambda_handler({"products": 10}, None)
    rotated = secrets.token_urlsafe(24)
    deployed.sm.client().put_secret_value(
        SecretId=deployed.app_secret_arn,
        SecretString=json.dumps({"username": deployed.app_user, "password": rotated}))
    # WHEN the schema function runs again
    assert schema_function.lambda_handler({"products": 10}, None)["app_user_created"] is False
    # THEN the new password logs in and the old one no longer does
    new = psycopg.conninfo.make_conninfo(deployed.dsn, user=deployed.app_user, password=rotated)
    with psycopg.connect(new) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (10,)
    old = psycopg.conninfo.make_conninfo(deployed.dsn, user=deployed.app_user,
                                         password=deployed.app_password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(old).close()


def test_schema_function_refuses_an_app_secret_naming_the_master_user(
        fresh_db: FreshDb, deployed: Deployed) -> None:
    deployed.sm.client().put_secret_value(
        SecretId=deployed.app_secret_arn,
        SecretString=json.dumps({"username": fresh_db.owner, "password": "x"}))
    with pytest.raises(SettingsError, match="names the master user"):
        schema_function.lambda_handler({}, None)


def test_scram_verifier_is_the_local_stacks() -> None:
    salt = b"0123456789abcdef"
    assert roles.scram_verifier("pw", salt=salt) == credentials.scram_verifier("pw", salt=salt)


def test_install_iam_user_grants_rds_iam_when_the_role_exists(pg: Pg,
                                                             fresh_db: FreshDb) -> None:
    # GIVEN a server that has RDS's rds_iam role
    user = f"iam_{secrets.token_hex(4)}"
    with admin(pg) as conn:
        conn.execute("CREATE ROLE rds_iam")
    try:
        dsn = pg.admin_dsn.rsplit("/", 1)[0] + f"/{fresh_db.name}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            # WHEN the IAM user is installed twice
            assert roles.install_iam_user(conn, user) is True
            assert roles.install_iam_user(conn, user) is True
            # THEN it is a member of rds_iam
            member = conn.execute(
                "SELECT pg_has_role(%s, 'rds_iam', 'member')", (user,)).fetchone()
            assert member == (True,)
            conn.execute(f"DROP OWNED BY {user}")
            conn.execute(f"DROP ROLE {user}")
    finally:
        with admin(pg) as conn:
            conn.execute("DROP ROLE rds_iam")


@pytest.mark.parametrize(("event", "env", "wanted"), [
    ({"products": 5}, {"SEED_PRODUCTS": "9"}, 5),
    ({}, {"SEED_PRODUCTS": "9"}, 9),
    (None, {}, 1000),
    ({"products": "7"}, {}, 7),
])
def test_products_wanted(event: object, env: dict[str, str], wanted: int) -> None:
    assert schema_function.products_wanted(event, env) == wanted


@pytest.mark.parametrize(("event", "env", "message"), [
    ({"products": -1}, {}, "event products: -1 is out of range"),
    ({"products": "many"}, {}, "event products: expected an integer, got 'many'"),
    ({"products": True}, {}, "event products: expected an integer, got True"),
    ({}, {"SEED_PRODUCTS": "x"}, "SEED_PRODUCTS: expected an integer, got 'x'"),
])
def test_products_wanted_names_the_bad_value(event: object, env: dict[str, str],
                                             message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        schema_function.products_wanted(event, env)
