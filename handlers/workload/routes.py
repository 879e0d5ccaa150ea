"""The routes of the workload: validation first, then parameterised queries.

:func:`resolve` turns a :class:`~handlers.workload.events.Request` into either a
finished :class:`Response` (404, 405, 400: no database needed) or an
:data:`Action`, a function that needs a connection. Patterns differ only in how
they get that connection, so a bad request never costs a connect, in any pattern.

Routes (the example scenarios route these five paths to the function):

* ``GET /health``: ``SELECT 1`` over the pattern's connection, plus who answered;
* ``GET /items/{id}``: one product, 404 when missing;
* ``GET /items?limit=N&category=C``: products by id, ``limit`` 1..100 (default 20);
* ``POST /orders`` with ``{"account_id": 1, "items": [{"product_id": 2, "quantity": 3}]}``:
  one transaction inserts the order and its lines at current prices; 201 and
  ``Location: /orders/<id>``;
* ``GET /orders/{id}``: the order with its lines, 404 when missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .events import Request, Response, error

if TYPE_CHECKING:
    import psycopg

Action = Callable[["psycopg.Connection[Any]"], Response]
Route = tuple[str, str]

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_ORDER_LINES = 20
MAX_QUANTITY = 1000
MAX_BODY_BYTES = 64 * 1024
_BIGINT_MAX = 2**63 - 1
_CATEGORY = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")

#: (method, template) of every route, and the regex matching its concrete path.
ROUTES: dict[Route, re.Pattern[str]] = {
    ("GET", "/health"): re.compile(r"^/health/?$"),
    ("GET", "/items/{id}"): re.compile(r"^/items/(?P<id>[^/]+)/?$"),
    ("GET", "/items"): re.compile(r"^/items/?$"),
    ("POST", "/orders"): re.compile(r"^/orders/?$"),
    ("GET", "/orders/{id}"): re.compile(r"^/orders/(?P<id>[^/]+)/?$"),
}


def match(request: Request) -> tuple[Route, dict[str, str]] | Response:
    """Find the route: API Gateway's own template when it names one, else the path.

    A path under a stage prefix (``/prod/items/1``) matches too, as REST APIs on
    their default domain send it.
    """
    if request.template:
        key = (request.method, request.template)
        if key in ROUTES:
            return key, dict(request.path_params)
    allowed: list[str] = []
    for path in _candidate_paths(request.path):
        for (method, template), regex in ROUTES.items():
            m = regex.match(path)
            if m is None:
                continue
            if method == request.method:
                return (method, template), {k: v for k, v in m.groupdict().items() if v}
            allowed.append(method)
        if allowed:
            return Response(405, {"error": f"method {request.method} not allowed on {path}"},
                            {"Allow": ", ".join(sorted(set(allowed)))})
    return error(404, f"no route for {request.method} {request.path}")


def resolve(request: Request, *, pattern: str, environment: str,
            connects: Callable[[], int]) -> tuple[str, Response | Action]:
    """The route's name and either its final response or the action to run."""
    found = match(request)
    if isinstance(found, Response):
        return "unmatched", found
    (method, template), params = found
    name = f"{method} {template}"
    if template == "/health":
        return name, _health(pattern, environment, connects)
    if template == "/items/{id}":
        item_id = _positive_id(params.get("id"))
        if item_id is None:
            return name, error(400, "item id must be a positive integer")
        return name, _get_item(item_id)
    if template == "/items":
        return name, _list_items(request)
    if template == "/orders":
        return name, _create_order(request)
    order_id = _positive_id(params.get("id"))
    if order_id is None:
        return name, error(400, "order id must be a positive integer")
    return name, _get_order(order_id)


# ---------------------------------------------------------------- actions


def _health(pattern: str, environment: str, connects: Callable[[], int]) -> Action:
    def run(conn: psycopg.Connection[Any]) -> Response:
        with conn.cursor() as cur:
            cur.execute(SQL_HEALTH)
            cur.fetchone()
        return Response(200, {"status": "ok", "pattern": pattern, "environment": environment,
                              "connects": connects(), "database": "ok"})
    return run


_ITEM_COLUMNS = "id, sku, name, category, price_cents, stock"

# The workload's statements, shared with the driver matrix (handlers/drivers/), whose
# handlers run exactly these through other drivers so their results compare.
# Placeholders are ``%s`` in order; handlers/drivers/workload.py renumbers them.
SQL_HEALTH = "SELECT 1"
SQL_ITEM = f"SELECT {_ITEM_COLUMNS} FROM products WHERE id = %s"
SQL_ITEMS = f"SELECT {_ITEM_COLUMNS} FROM products ORDER BY id LIMIT %s"
SQL_ITEMS_IN_CATEGORY = (f"SELECT {_ITEM_COLUMNS} FROM products WHERE category = %s "
                         "ORDER BY id LIMIT %s")
SQL_ACCOUNT = "SELECT 1 FROM accounts WHERE id = %s"
SQL_PRICES = "SELECT id, price_cents FROM products WHERE id = ANY(%s)"
SQL_INSERT_ORDER = ("INSERT INTO orders (account_id, total_cents) VALUES (%s, %s) "
                    "RETURNING id")
SQL_INSERT_LINE = ("INSERT INTO order_items (order_id, product_id, quantity, price_cents) "
                   "VALUES (%s, %s, %s, %s)")
SQL_ORDER = ("SELECT o.id, o.account_id, o.status, o.total_cents, o.created_at, "
             "coalesce(json_agg(json_build_object('product_id', i.product_id, "
             "'quantity', i.quantity, 'price_cents', i.price_cents) ORDER BY i.product_id) "
             "FILTER (WHERE i.order_id IS NOT NULL), '[]') "
             "FROM orders o LEFT JOIN order_items i ON i.order_id = o.id "
             "WHERE o.id = %s GROUP BY o.id")


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(("id", "sku", "name", "category", "price_cents", "stock"), row, strict=True))


def _get_item(item_id: int) -> Action:
    def run(conn: psycopg.Connection[Any]) -> Response:
        with conn.cursor() as cur:
            cur.execute(SQL_ITEM, (item_id,))
            row = cur.fetchone()
        if row is None:
            return error(404, f"item {item_id} not found")
        return Response(200, {"item": _item(row)})
    return run


def list_params(request: Request) -> tuple[int, str | None] | Response:
    """``GET /items``'s ``limit`` and ``category``, validated; a 400 when wrong."""
    text = request.query.get("limit", "").strip()
    if text:
        if not _DIGITS.match(text) or not 1 <= int(text) <= MAX_LIMIT:
            return error(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got {text[:40]!r}")
        limit = int(text)
    else:
        limit = DEFAULT_LIMIT
    category = request.query.get("category")
    if category is not None and not _CATEGORY.match(category):
        return error(400, "category must be 1 to 40 letters, digits, '-' or '_'")
    return limit, category


def _list_items(request: Request) -> Response | Action:
    params = list_params(request)
    if isinstance(params, Response):
        return params
    limit, category = params

    def run(conn: psycopg.Connection[Any]) -> Response:
        with conn.cursor() as cur:
            if category is None:
                cur.execute(SQL_ITEMS, (limit,))
            else:
                cur.execute(SQL_ITEMS_IN_CATEGORY, (category, limit))
            items = [_item(row) for row in cur.fetchall()]
        return Response(200, {"items": items, "count": len(items)})
    return run


def parse_order(body: str | None) -> dict[str, Any] | str:
    """Validate a ``POST /orders`` body; the parsed order, or what is wrong with it."""
    if body is None or not body.strip():
        return ('body is required: {"account_id": N, '
                '"items": [{"product_id": N, "quantity": N}]}')
    if len(body) > MAX_BODY_BYTES:
        return f"body is larger than {MAX_BODY_BYTES} bytes"
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return f"body is not valid JSON: {exc}"
    if not isinstance(doc, dict):
        return "body must be a JSON object"
    account_id = _positive_id(doc.get("account_id"))
    if account_id is None:
        return "account_id must be a positive integer"
    items = doc.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ORDER_LINES:
        return f"items must be a list of 1 to {MAX_ORDER_LINES} lines"
    lines: dict[int, int] = {}
    for i, line in enumerate(items):
        if not isinstance(line, dict):
            return f"items[{i}] must be an object"
        product_id = _positive_id(line.get("product_id"))
        quantity = line.get("quantity", 1)
        if product_id is None:
            return f"items[{i}].product_id must be a positive integer"
        if (isinstance(quantity, bool) or not isinstance(quantity, int)
                or not 1 <= quantity <= MAX_QUANTITY):
            return f"items[{i}].quantity must be an integer from 1 to {MAX_QUANTITY}"
        if product_id in lines:
            return f"items[{i}]: product {product_id} appears twice"
        lines[product_id] = quantity
    return {"account_id": account_id, "lines": lines}


def _create_order(request: Request) -> Response | Action:
    order = parse_order(request.body)
    if isinstance(order, str):
        return error(400, order)
    account_id: int = order["account_id"]
    lines: dict[int, int] = order["lines"]

    def run(conn: psycopg.Connection[Any]) -> Response:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(SQL_ACCOUNT, (account_id,))
            if cur.fetchone() is None:
                return error(400, f"account {account_id} does not exist")
            cur.execute(SQL_PRICES, (list(lines),))
            prices = dict(cur.fetchall())
            missing = sorted(set(lines) - set(prices))
            if missing:
                return error(400, f"product {missing[0]} does not exist")
            total = sum(prices[p] * q for p, q in lines.items())
            cur.execute(SQL_INSERT_ORDER, (account_id, total))
            row = cur.fetchone()
            assert row is not None
            order_id = int(row[0])
            cur.executemany(SQL_INSERT_LINE,
                            [(order_id, p, q, prices[p]) for p, q in lines.items()])
            found = _fetch_order(cur, order_id)
        return Response(201, {"order": found}, {"Location": f"/orders/{order_id}"})
    return run


def _get_order(order_id: int) -> Action:
    def run(conn: psycopg.Connection[Any]) -> Response:
        with conn.cursor() as cur:
            found = _fetch_order(cur, order_id)
        if found is None:
            return error(404, f"order {order_id} not found")
        return Response(200, {"order": found})
    return run


def _fetch_order(cur: psycopg.Cursor[Any], order_id: int) -> dict[str, Any] | None:
    cur.execute(SQL_ORDER, (order_id,))
    row = cur.fetchone()
    if row is None:
        return None
    keys = ("id", "account_id", "status", "total_cents", "created_at", "items")
    found = dict(zip(keys, row, strict=True))
    found["created_at"] = found["created_at"].isoformat()
    return found


def _candidate_paths(path: str) -> list[str]:
    """The path, then the path without its first segment (a REST API's stage)."""
    candidates = [path]
    parts = path.split("/", 2)
    if len(parts) == 3 and parts[2]:
        candidates.append("/" + parts[2])
    return candidates


def positive_id(value: Any) -> int | None:
    """A positive bigint from a path parameter or JSON value; None when it is not one."""
    return _positive_id(value)


def _positive_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    # ASCII digits only: str.isdigit() accepts "²", which int() then refuses.
    if isinstance(value, str) and _DIGITS.match(value):
        value = int(value)
    if isinstance(value, int) and 1 <= value <= _BIGINT_MAX:
        return value
    return None
