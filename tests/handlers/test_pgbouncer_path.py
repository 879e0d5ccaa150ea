"""The handlers through PgBouncer in transaction mode (the RDS Proxy stand-in).

Transaction pooling hands each transaction to any server connection, so session
state must not be relied on: no server-side prepared statements (psycopg would
prepare after 5 runs of a query), no session ``SET``. These run the handlers
through the stack's real PgBouncer to show they hold.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest

from connstorm.handlers.workload import db
from connstorm.handlers.workload.settings import DbSettings
from connstorm.local_stack.iam_auth_proxy import IamAuthProxy
from connstorm.local_stack.secrets_manager import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario
from tests.handlers import apigw_events

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A stack (PostgreSQL + PgBouncer, transaction mode, pool 2); the function env."""
    scenario = load_scenario("pgbouncer-transaction",
                             overrides=["pgbouncer.default_pool_size=2"])
    run_dir = Path(tmp_path_factory.mktemp("pgb")) / "run"
    with Stack(scenario, run_dir, with_emulator=False) as stack:
        yield stack.function_env(scenario.functions[0])


def test_pgbouncer_transaction_mode_serves_repeated_queries_and_writes(
        pooled: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in pooled.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "pooled")
    h = importlib.reload(
        importlib.import_module("connstorm.handlers.module_level_resilient_handler"))
    # More runs of one query than psycopg's default prepare threshold (5).
    for i in range(1, 12):
        out = h.lambda_handler(apigw_events.v2("GET", f"/items/{i}"), None)
        assert out["statusCode"] == 200, out
    body = json.dumps({"account_id": 2, "items": [{"product_id": 7, "quantity": 1}]})
    created = h.lambda_handler(apigw_events.v2("POST", "/orders", body=body), None)
    assert created["statusCode"] == 201
    order_id = json.loads(created["body"])["order"]["id"]
    read = h.lambda_handler(apigw_events.v2("GET", f"/orders/{order_id}"), None)
    assert read["statusCode"] == 200


def test_pgbouncer_statement_timeout_is_local_to_the_transaction(
        pooled: dict[str, str]) -> None:
    settings = DbSettings.from_env({**pooled, "AWS_LAMBDA_FUNCTION_NAME": "timeouts"})
    with db.connect(settings) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled), db.bounded(conn, 50):
            conn.execute("SELECT pg_sleep(2)")
        assert db.classify("ERROR:  canceling statement due to statement timeout") == (
            "statement_timeout")
        # THEN no server connection of the pool kept the limit (pool of 2: try both)
        with db.connect(settings) as other:
            for c in (conn, other, conn, other):
                assert c.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_pgbouncer_options_startup_parameter_is_refused(pooled: dict[str, str]) -> None:
    # Why the statement timeout is SET LOCAL and not `options=-c ...`.
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(host=pooled["DB_HOST"], port=pooled["DB_PORT"], dbname="app",
                        user=pooled["DB_USER"], password=pooled["DB_PASSWORD"],
                        options="-c statement_timeout=100")


def test_iam_auth_proxy_in_front_of_pgbouncer(pooled: dict[str, str]) -> None:
    with IamAuthProxy(upstream_host=pooled["DB_HOST"], upstream_port=int(pooled["DB_PORT"]),
                      upstream_password=pooled["DB_PASSWORD"],
                      keys={DUMMY_ACCESS_KEY: DUMMY_SECRET_KEY}) as proxy:
        rds = boto3.session.Session().client(
            "rds", region_name="us-east-1", aws_access_key_id=DUMMY_ACCESS_KEY,
            aws_secret_access_key=DUMMY_SECRET_KEY)
        token = rds.generate_db_auth_token(DBHostname=proxy.host, Port=proxy.port,
                                           DBUsername="app")
        with psycopg.connect(host=proxy.host, port=proxy.port, user="app", dbname="app",
                             password=token, sslmode="disable") as conn:
            assert conn.execute("SELECT count(*) FROM products").fetchone() == (1000,)
