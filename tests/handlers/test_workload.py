"""The workload's routes, validation, schema and settings against a real PostgreSQL.

These call a handler in this process: they check the workload logic. Each
pattern's connection footprint is shown under the emulator (test_patterns.py).
"""

from __future__ import annotations

import importlib
import json
import time
import types
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connstorm import error_kinds
from connstorm.handlers.workload import db, schema
from connstorm.handlers.workload.settings import (
    DbSettings,
    SettingsError,
    application_name,
    work_seconds,
)
from tests.handlers import apigw_events
from tests.handlers.conftest import PRODUCTS, Pg

Call = Callable[..., tuple[int, dict[str, Any], dict[str, str]]]


@pytest.fixture
def handler(db_env: dict[str, str]) -> types.ModuleType:
    """The per_invocation handler, imported afresh with this test's environment."""
    module = importlib.import_module("connstorm.handlers.per_invocation_handler")
    return importlib.reload(module)


@pytest.fixture(params=["1.0", "2.0"])
def call(request: pytest.FixtureRequest, handler: types.ModuleType) -> Call:
    """Invoke the handler with an event of each payload version."""
    make = apigw_events.v1 if request.param == "1.0" else apigw_events.v2

    def invoke(method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        out = handler.lambda_handler(make(method, path, **kw), None)
        assert set(out) == {"statusCode", "headers", "body", "isBase64Encoded"}
        assert out["headers"]["Content-Type"] == "application/json"
        return out["statusCode"], json.loads(out["body"]), out["headers"]
    return invoke


def test_routes_health_answers_from_the_database(call: Call) -> None:
    status, body, _ = call("GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["pattern"] == "per_invocation"
    assert len(body["environment"]) == 12


def test_routes_item_found_missing_and_malformed(call: Call) -> None:
    status, body, _ = call("GET", "/items/7")
    assert status == 200
    assert body["item"]["id"] == 7
    assert body["item"]["sku"] == "SKU-00000007"
    assert call("GET", f"/items/{PRODUCTS + 1}")[0] == 404
    status, body, _ = call("GET", "/items/abc")
    assert status == 400
    assert "positive integer" in body["error"]
    assert call("GET", "/items/0")[0] == 400
    for weird in ("²", "١٢", "99999999999999999999", "1.5", "-3", "%20"):
        assert call("GET", f"/items/{weird}")[0] == 400, weird


def test_routes_list_filters_and_limits(call: Call) -> None:
    status, body, _ = call("GET", "/items", query={"limit": "5", "category": "books"})
    assert status == 200
    assert body["count"] == 5
    assert {i["category"] for i in body["items"]} == {"books"}
    status, body, _ = call("GET", "/items")
    assert status == 200
    assert body["count"] == 20
    assert [i["id"] for i in body["items"]] == list(range(1, 21))
    assert call("GET", "/items", query={"category": "nothing-here"})[1]["count"] == 0


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1e3", "²", "5; DROP TABLE products"])
def test_routes_list_bad_limit_is_400(call: Call, limit: str) -> None:
    status, body, _ = call("GET", "/items", query={"limit": limit})
    assert status == 400
    assert "limit must be" in body["error"]


def test_routes_order_is_written_and_visible_to_the_next_read(call: Call) -> None:
    order = {"account_id": 3, "items": [{"product_id": 1, "quantity": 2},
                                        {"product_id": 5, "quantity": 1}]}
    status, body, headers = call("POST", "/orders", body=json.dumps(order))
    assert status == 201
    created = body["order"]
    assert headers["Location"] == f"/orders/{created['id']}"
    assert created["account_id"] == 3
    assert [(i["product_id"], i["quantity"]) for i in created["items"]] == [(1, 2), (5, 1)]
    assert created["total_cents"] == sum(i["price_cents"] * i["quantity"]
                                         for i in created["items"])
    status, body, _ = call("GET", f"/orders/{created['id']}")
    assert status == 200
    assert body["order"] == created


def test_routes_order_base64_body_is_decoded(call: Call) -> None:
    order = {"account_id": 1, "items": [{"product_id": 2, "quantity": 1}]}
    assert call("POST", "/orders", body=json.dumps(order), b64=True)[0] == 201


@pytest.mark.parametrize(("body", "needle"), [
    (None, "body is required"),
    ("", "body is required"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"items": [{"product_id": 1}]}', "account_id"),
    ('{"account_id": true, "items": [{"product_id": 1}]}', "account_id"),
    ('{"account_id": 1}', "items must be a list"),
    ('{"account_id": 1, "items": []}', "items must be a list"),
    ('{"account_id": 1, "items": [5]}', "items[0] must be an object"),
    ('{"account_id": 1, "items": [{"product_id": "x"}]}', "product_id"),
    ('{"account_id": 1, "items": [{"product_id": 1, "quantity": 0}]}', "quantity"),
    ('{"account_id": 1, "items": [{"product_id": 1, "quantity": 1.5}]}', "quantity"),
    ('{"account_id": 1, "items": [{"product_id": 1}, {"product_id": 1}]}', "appears twice"),
    ('{"account_id": 999999, "items": [{"product_id": 1}]}', "account 999999 does not exist"),
    ('{"account_id": 1, "items": [{"product_id": 999999}]}', "product 999999 does not exist"),
])
def test_routes_bad_order_is_400_and_writes_nothing(call: Call, pg: Pg, body: str | None,
                                                    needle: str) -> None:
    with psycopg.connect(pg.app_dsn) as conn:
        before = conn.execute("SELECT count(*) FROM orders").fetchone()
    status, answer, _ = call("POST", "/orders", body=body)
    assert status == 400
    assert needle in answer["error"]
    with psycopg.connect(pg.app_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == before


def test_routes_unknown_path_404_and_wrong_method_405(call: Call) -> None:
    status, body, _ = call("GET", "/nowhere")
    assert status == 404
    assert "no route" in body["error"]
    status, body, headers = call("DELETE", "/items/1")
    assert status == 405
    assert headers["Allow"] == "GET"
    assert call("GET", "/orders/999999999")[0] == 404


def test_routes_stage_prefixed_path_is_matched(handler: types.ModuleType) -> None:
    event = apigw_events.v1("GET", "/prod/items/3")
    out = handler.lambda_handler(event, None)
    assert out["statusCode"] == 200
    assert json.loads(out["body"])["item"]["id"] == 3


@pytest.mark.parametrize("event", [None, [], "GET /health", {"foo": 1},
                                   {"httpMethod": "GET", "path": "/health", "body": 5}])
def test_routes_non_proxy_event_is_400_not_a_crash(handler: types.ModuleType,
                                                   event: Any) -> None:
    out = handler.lambda_handler(event, None)
    assert out["statusCode"] == 400
    assert "error" in json.loads(out["body"])


def test_routes_database_down_is_503_with_kind(db_env: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a port where nothing listens
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("DB_PORT", str(s.getsockname()[1]))
    module = importlib.reload(importlib.import_module("connstorm.handlers.per_invocation_handler"))
    out = module.lambda_handler(apigw_events.v2("GET", "/health"), None)
    assert out["statusCode"] == 503
    body = json.loads(out["body"])
    assert body["kind"] == "connection_refused"
    assert body["error"].startswith("database error: ")


def test_routes_log_one_json_line_per_invocation(handler: types.ModuleType,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    context = types.SimpleNamespace(aws_request_id="req-1")
    handler.lambda_handler(apigw_events.v2("GET", "/items/1"), context)
    handler.lambda_handler(apigw_events.v2("GET", "/items", query={"limit": "x"}), context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    assert lines[0]["route"] == "GET /items/{id}"
    assert lines[0]["status"] == 200
    assert lines[0]["pattern"] == "per_invocation"
    assert lines[0]["request_id"] == "req-1"
    assert lines[1]["status"] == 400
    assert lines[1]["connects"] == lines[0]["connects"]  # a bad request costs no connect
    assert isinstance(lines[0]["duration_ms"], float)


@pytest.mark.parametrize("pattern", ["per_invocation", "module_level"])
def test_app_work_ms_keeps_the_environment_busy_with_no_transaction_open(
        db_env: dict[str, str], pg: Pg, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], pattern: str) -> None:
    # GIVEN a function told that each request spends 400 ms besides its queries
    import threading

    from connstorm.handlers.workload import app

    monkeypatch.setenv("APP_WORK_MS", "400")
    monkeypatch.setenv("DB_APPLICATION_NAME", f"work-{pattern}")
    importlib.reload(app)
    try:
        module = importlib.reload(
            importlib.import_module(f"connstorm.handlers.{pattern}_handler"))
        capsys.readouterr()
        # WHEN a request runs, the database is looked at while it "works"
        answer: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: answer.update(
            module.lambda_handler(apigw_events.v2("GET", "/items/1"), None)))
        worker.start()
        time.sleep(0.2)
        with psycopg.connect(pg.admin_dsn) as conn:
            states = [row[0] for row in conn.execute(
                "SELECT state FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"work-{pattern}:%",))]
        worker.join()
        # THEN it answered, took the time, and held no transaction (nor, per
        # invocation, any connection) meanwhile
        assert answer["statusCode"] == 200
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["duration_ms"] >= 400
        assert states == ([] if pattern == "per_invocation" else ["idle"])
        # and a request answered without the database does not wait
        slept: list[float] = []
        monkeypatch.setattr(app.time, "sleep", slept.append)
        out = module.lambda_handler(apigw_events.v2("GET", "/nowhere"), None)
        assert out["statusCode"] == 404
        assert slept == []
        module.lambda_handler(apigw_events.v2("GET", "/items/2"), None)
        assert slept == [0.4]
    finally:
        monkeypatch.delenv("APP_WORK_MS")
        importlib.reload(app)


def test_app_work_ms_is_read_in_milliseconds_and_checked() -> None:
    assert work_seconds({}) == 0
    assert work_seconds({"APP_WORK_MS": "250"}) == 0.25
    for bad in ("-1", "soon", "1.5"):
        with pytest.raises(SettingsError, match="APP_WORK_MS"):
            work_seconds({"APP_WORK_MS": bad})


def test_schema_install_is_idempotent_and_seeds(pg: Pg) -> None:
    schema.install(pg.app_dsn, PRODUCTS)
    schema.install(pg.app_dsn, PRODUCTS)
    with psycopg.connect(pg.app_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (PRODUCTS,)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (
            schema.accounts_for(PRODUCTS),)
        cats = conn.execute("SELECT count(DISTINCT category) FROM products").fetchone()
        assert cats == (len(schema.CATEGORIES),)
    with pytest.raises(ValueError, match="products"):
        schema.install(pg.app_dsn, -1)


def test_settings_application_name_carries_function_and_environment() -> None:
    env = {"AWS_LAMBDA_FUNCTION_NAME": "api",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/26/[$LATEST]0123456789abcdef0123456789abcdef"}
    assert application_name(env) == "api:0123456789ab"
    assert application_name({**env, "DB_APPLICATION_NAME": "orders"}) == "orders:0123456789ab"
    long = application_name({**env, "DB_APPLICATION_NAME": "x" * 100})
    assert len(long) == 63
    assert long.endswith(":0123456789ab")
    assert application_name({}).startswith("lambda:pid")


@pytest.mark.parametrize(("env", "needle"), [
    ({}, "DB_HOST"),
    ({"DB_HOST": "h", "DB_PORT": "x"}, "DB_PORT"),
    ({"DB_HOST": "h", "DB_PORT": "70000"}, "DB_PORT"),
    ({"DB_HOST": "h", "DB_CONNECT_TIMEOUT_S": "soon"}, "DB_CONNECT_TIMEOUT_S"),
    ({"DB_HOST": "h", "DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
])
def test_settings_bad_variable_is_named(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        DbSettings.from_env(env)


def test_settings_defaults() -> None:
    s = DbSettings.from_env({"DB_HOST": "h", "DB_IAM_AUTH": "true"})
    assert (s.port, s.dbname, s.connect_timeout_s, s.pool_size, s.iam_auth) == (
        5432, "app", 5.0, 2, True)
    assert s.statement_timeout_ms is None


@pytest.mark.parametrize("message", [
    'connection failed: connection to server at "127.0.0.1", port 5 failed: '
    "FATAL:  sorry, too many clients already",
    "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
    "FATAL:  no more connections allowed (max_client_conn)",
    "FATAL:  query_wait_timeout",
    "Timed-out waiting to acquire database connection.",
    "FATAL:  terminating connection due to idle client timeout",
    "FATAL:  terminating connection due to administrator command",
    "FATAL:  password authentication failed for user \"app\"",
    "connection timeout expired",
    "connection failed: Connection refused",
    "server closed the connection unexpectedly",
    "consuming input failed: server closed the connection unexpectedly",
    "FATAL:  terminating connection due to idle-session timeout",
    "ERROR:  canceling statement due to statement timeout",
    'ERROR:  prepared statement "_pg3_0" does not exist',
    "ERROR:  unnamed prepared statement does not exist",
    "something else entirely",
])
def test_classify_agrees_with_connstorm(message: str) -> None:
    assert db.classify(message) == error_kinds.classify_message(message)


def test_routes_never_crash_on_random_events(handler: types.ModuleType) -> None:
    # GIVEN events assembled at random from valid and invalid parts (fixed seed)
    import random

    rng = random.Random(4)
    methods = ["GET", "POST", "DELETE", "get", "", None, 7]
    paths = ["/health", "/items", "/items/1", "/items/x", "/orders", "/orders/1", "/", "",
             "/items/1/2", "//", "/prod/orders", None, ["/health"], "/items/" + "9" * 40]
    bodies = [None, "", "{}", "null", "[]", '{"account_id": 1, "items": [{"product_id": 1}]}',
              '{"account_id": "1", "items": "x"}', "\x00\xff", "e30=", "%%%", 5, {"a": 1}]
    queries = [None, {}, {"limit": "3"}, {"limit": None}, {"category": "toys", "limit": "0"},
               "limit=3", {"limit": ["1"]}]
    statuses = set()
    for _ in range(300):
        v2 = rng.random() < 0.5
        method, path = rng.choice(methods), rng.choice(paths)
        event: dict[str, Any] = {"body": rng.choice(bodies),
                                 "isBase64Encoded": rng.random() < 0.2,
                                 "queryStringParameters": rng.choice(queries),
                                 "pathParameters": rng.choice([None, {"id": "1"}, {"id": "z"}]),
                                 "headers": rng.choice([None, {}, {"X": "y"}, "h"])}
        if v2:
            event.update(version="2.0", rawPath=path,
                         routeKey=rng.choice([f"{method} {path}", None, 3, "$default"]),
                         requestContext=rng.choice([{"http": {"method": method}}, None, "rc",
                                                    {"http": "x"}]))
        else:
            event.update(httpMethod=method, path=path,
                         resource=rng.choice(["/items/{id}", None, path, 5]),
                         requestContext=rng.choice([{}, None, []]))
        # WHEN the handler gets it THEN it answers with a proxy response, never raises
        out = handler.lambda_handler(event, None)
        assert isinstance(json.loads(out["body"]), dict)
        statuses.add(out["statusCode"])
    assert statuses <= {200, 201, 400, 404, 405}
    assert {200, 400, 404} <= statuses
