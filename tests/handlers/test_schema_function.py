"""The AWS schema step: the one-shot function deploy/template.yaml deploys, against real parts.

A real PostgreSQL (a fresh database owned by the application role) and the
Secrets Manager stand-in (moto's server on loopback) play RDS and the
template's generated secret.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from connstorm.handlers.workload import schema_function
from connstorm.handlers.workload.settings import SettingsError
from connstorm.local_stack.secrets_manager import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    SecretsManagerServer,
)
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


def test_schema_function_installs_seeds_and_creates_the_iam_user(
        pg: Pg, fresh_db: FreshDb, monkeypatch: pytest.MonkeyPatch) -> None:
    iam_user = f"iam_{secrets.token_hex(4)}"
    with SecretsManagerServer(username=fresh_db.owner, password=fresh_db.password, host="unused",
                              port=1, dbname="unused") as sm:
        # GIVEN the environment the template gives the function (host from the
        # template, credentials only in the secret)
        env = {**sm.function_env(), "DB_HOST": pg.host, "DB_PORT": str(pg.port),
               "DB_NAME": fresh_db.name, "DB_SSLMODE": "disable", "DB_IAM_USER": iam_user,
               "SEED_PRODUCTS": "250", "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
               "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY, "AWS_REGION": "us-east-1"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # WHEN it is invoked with an event naming the seed size, then again
        answer = schema_function.lambda_handler({"products": 120}, None)
        again = schema_function.lambda_handler({}, None)
        fetches = sm.fetches()
    # THEN the tables exist with the rows asked for (the second run adds up to
    # SEED_PRODUCTS, idempotently), the answer has no password, and the IAM
    # user can read and write the workload's tables
    assert answer == {"products": 120, "accounts": 120, "iam_user": iam_user,
                      "rds_iam_granted": False}
    assert again["products"] == 250
    assert fresh_db.password not in json.dumps(answer)
    assert fetches == 2
    dsn = pg.admin_dsn.rsplit("/", 1)[0] + f"/{fresh_db.name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (250,)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (250,)
        conn.execute(f"SET ROLE {iam_user}")
        conn.execute("INSERT INTO orders (account_id, total_cents) VALUES (1, 100)")
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        conn.execute("RESET ROLE")
        conn.execute(f"DROP OWNED BY {iam_user}")
        conn.execute(f"DROP ROLE {iam_user}")


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
            assert schema_function.install_iam_user(conn, user) is True
            assert schema_function.install_iam_user(conn, user) is True
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
