"""The driver matrix's handlers: every configuration answers the workload's routes alike.

Each handler is imported as Lambda would (the DB_* variables set, the module
loaded fresh) and called with API Gateway events against a real PostgreSQL:
the same requests give the same answers whatever the driver, so the matrix
compares what the drivers put on the wire, not what the handlers do.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from connstorm.handlers.drivers import CONFIGS, DriverConfig
from connstorm.handlers.drivers.workload import first_line, named, numbered

from .apigw_events import v1, v2
from .conftest import Pg, admin

APP_NAME = "drivers-test"


@pytest.fixture(autouse=True)
def _own_connections(db_env: dict[str, str], pg: Pg,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Name this test's connections, and end them after it (the cluster is shared)."""
    monkeypatch.setenv("DB_APPLICATION_NAME", APP_NAME)
    yield
    with admin(pg) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name LIKE %s", (APP_NAME + ":%",))


def _fresh(config: DriverConfig) -> types.ModuleType:
    name = f"connstorm.handlers.drivers.{config.name}.handler"
    for loaded in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[loaded]
    return importlib.import_module(name)


def _call(handler: types.ModuleType, event: dict[str, Any]) -> tuple[int, Any]:
    answer = handler.lambda_handler(event, None)
    return answer["statusCode"], json.loads(answer["body"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_every_configuration_answers_the_workload_routes(config: DriverConfig) -> None:
    handler = _fresh(config)
    assert config.name == handler.CONFIG
    assert _call(handler, v2("GET", "/health")) == (200, {"status": "ok", "database": "ok"})
    status, body = _call(handler, v1("GET", "/items/7"))
    assert status == 200
    assert body["item"]["id"] == 7
    assert body["item"]["sku"] == "SKU-00000007"
    status, body = _call(handler, v2("GET", "/items", {"limit": "5", "category": "books"}))
    assert status == 200
    assert body["count"] == 5
    assert {i["category"] for i in body["items"]} == {"books"}
    order = {"account_id": 3, "items": [{"product_id": 2, "quantity": 2},
                                        {"product_id": 9, "quantity": 1}]}
    status, body = _call(handler, v2("POST", "/orders", body=json.dumps(order)))
    assert status == 201, body
    created = body["order"]
    assert [(i["product_id"], i["quantity"]) for i in created["items"]] == [(2, 2), (9, 1)]
    status, body = _call(handler, v2("GET", f"/orders/{created['id']}"))
    assert (status, body["order"]) == (200, created)
    assert _call(handler, v2("GET", "/orders/999999999"))[0] == 404
    assert _call(handler, v2("GET", "/items/abc"))[0] == 400
    # the same request a few times more: enough for psycopg to prepare it
    for _ in range(6):
        assert _call(handler, v1("GET", "/items/7"))[0] == 200


def test_a_database_error_is_a_503_with_its_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a handler whose database refuses the connection
    monkeypatch.setenv("DB_PORT", "1")
    handler = _fresh(next(c for c in CONFIGS if c.name == "psycopg2_default"))
    # THEN the request is a 503 naming the kind, as the workload's own handlers answer
    status, body = _call(handler, v2("GET", "/health"))
    assert status == 503
    assert body["kind"] == "connection_refused"


def test_placeholders_are_renumbered_in_order_for_each_driver_style() -> None:
    sql = "SELECT a FROM t WHERE b = %s AND c = ANY(%s) LIMIT %s"
    assert numbered(sql, "$") == "SELECT a FROM t WHERE b = $1 AND c = ANY($2) LIMIT $3"
    assert numbered(sql, ":") == "SELECT a FROM t WHERE b = :p1 AND c = ANY(:p2) LIMIT :p3"
    assert named((1, [2], 3)) == {"p1": 1, "p2": [2], "p3": 3}


def test_first_line_reads_pg8000s_error_fields() -> None:
    error = Exception({"S": "ERROR", "C": "26000",
                       "M": "unnamed prepared statement does not exist"})
    assert first_line(error) == "ERROR:  unnamed prepared statement does not exist"
    assert first_line(ValueError("one\ntwo")) == "one"
