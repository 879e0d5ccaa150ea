"""The workload's routes for any driver: the same statements, a driver-neutral ``Db``.

Every configuration of the driver matrix answers the same API Gateway events
with the same SQL (``handlers/workload/routes.py``'s ``SQL_*`` statements, in
the same order, with the same parameters), so what differs between them is only
what each driver puts on the wire around those statements: prepared statements,
transaction blocks, reset queries. A configuration supplies a :data:`Runner`:
how it gets a connection and runs a :class:`Work` on it, in the way its driver's
documentation shows (a read, or a write in one transaction).

Standard library only: each configuration's folder imports its own driver, and
this module must load in every one of them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..workload import events, routes
from ..workload.events import Response, error
from ..workload.kinds import classify
from ..workload.settings import ENV_ID_CHARS, environment_id

_PLACEHOLDER = re.compile(r"%s")


class Db(Protocol):
    """One statement at a time on the connection a :class:`Work` was given."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run ``sql`` (``%s`` placeholders); its rows, or [] when it returns none."""

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per parameter set, as the driver's ``executemany`` does."""


@dataclass(frozen=True)
class Work:
    """What one request does with a connection; ``write``: in one transaction."""

    write: bool
    run: Callable[[Db], Response]


Runner = Callable[[Work], Response]

__all__ = ["Db", "Response", "Runner", "Work", "handle", "named", "numbered", "resolve"]


def numbered(sql: str, style: str) -> str:
    """``%s`` placeholders renumbered: ``$1`` (``style="$"``) or ``:p1`` (``":"``)."""
    count = 0

    def next_name(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}" if style == "$" else f":p{count}"

    return _PLACEHOLDER.sub(next_name, sql)


def named(params: Sequence[Any]) -> dict[str, Any]:
    """``{"p1": ..., "p2": ...}`` for statements renumbered with ``style=":"``."""
    return {f"p{i}": value for i, value in enumerate(params, start=1)}


# ---------------------------------------------------------------- the routes


def resolve(request: events.Request) -> tuple[str, Response | Work]:
    """The route's name and its final response (no database needed) or its work."""
    found = routes.match(request)
    if isinstance(found, Response):
        return "unmatched", found
    (method, template), params = found
    name = f"{method} {template}"
    if template == "/health":
        return name, Work(False, _health)
    if template in ("/items/{id}", "/orders/{id}"):
        item = routes.positive_id(params.get("id"))
        if item is None:
            return name, error(400, f"{template.split('/')[1][:-1]} id must be a positive integer")
        return name, Work(False, _item(item) if template == "/items/{id}" else _order(item))
    if template == "/items":
        listed = routes.list_params(request)
        return name, listed if isinstance(listed, Response) else Work(False, _items(*listed))
    order = routes.parse_order(request.body)
    return name, error(400, order) if isinstance(order, str) else Work(True, _create(order))


def _health(db: Db) -> Response:
    db.rows(routes.SQL_HEALTH)
    return Response(200, {"status": "ok", "database": "ok"})


_ITEM_KEYS = ("id", "sku", "name", "category", "price_cents", "stock")


def _item(item_id: int) -> Callable[[Db], Response]:
    def run(db: Db) -> Response:
        found = db.rows(routes.SQL_ITEM, (item_id,))
        if not found:
            return error(404, f"item {item_id} not found")
        return Response(200, {"item": dict(zip(_ITEM_KEYS, found[0], strict=True))})
    return run


def _items(limit: int, category: str | None) -> Callable[[Db], Response]:
    def run(db: Db) -> Response:
        found = (db.rows(routes.SQL_ITEMS, (limit,)) if category is None
                 else db.rows(routes.SQL_ITEMS_IN_CATEGORY, (category, limit)))
        items = [dict(zip(_ITEM_KEYS, row, strict=True)) for row in found]
        return Response(200, {"items": items, "count": len(items)})
    return run


def _create(order: dict[str, Any]) -> Callable[[Db], Response]:
    account_id: int = order["account_id"]
    lines: dict[int, int] = order["lines"]

    def run(db: Db) -> Response:
        if not db.rows(routes.SQL_ACCOUNT, (account_id,)):
            return error(400, f"account {account_id} does not exist")
        prices = {int(p): int(c) for p, c in db.rows(routes.SQL_PRICES, (list(lines),))}
        missing = sorted(set(lines) - set(prices))
        if missing:
            return error(400, f"product {missing[0]} does not exist")
        total = sum(prices[p] * q for p, q in lines.items())
        order_id = int(db.rows(routes.SQL_INSERT_ORDER, (account_id, total))[0][0])
        db.many(routes.SQL_INSERT_LINE,
                [(order_id, p, q, prices[p]) for p, q in lines.items()])
        found = _fetch_order(db, order_id)
        return Response(201, {"order": found}, {"Location": f"/orders/{order_id}"})
    return run


def _order(order_id: int) -> Callable[[Db], Response]:
    def run(db: Db) -> Response:
        found = _fetch_order(db, order_id)
        if found is None:
            return error(404, f"order {order_id} not found")
        return Response(200, {"order": found})
    return run


def _fetch_order(db: Db, order_id: int) -> dict[str, Any] | None:
    found = db.rows(routes.SQL_ORDER, (order_id,))
    if not found:
        return None
    keys = ("id", "account_id", "status", "total_cents", "created_at", "items")
    order = dict(zip(keys, found[0], strict=True))
    order["created_at"] = order["created_at"].isoformat()
    if isinstance(order["items"], str):  # asyncpg hands json back as text
        order["items"] = json.loads(order["items"])
    return order


# ---------------------------------------------------------------- one invocation

_log = logging.getLogger("handlers.drivers.invocations")
if not _log.handlers:
    _out = logging.StreamHandler(sys.stdout)
    _out.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(_out)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def first_line(exc: BaseException) -> str:
    """The error's first line (drivers put SQL and hints on the next ones).

    pg8000 raises with the server's ErrorResponse fields as a dict (``{"S":
    "ERROR", "C": "26000", "M": "..."}``): its severity and message are used.
    """
    fields = exc.args[0] if exc.args else None
    if isinstance(fields, dict) and "M" in fields:
        return f"{fields.get('S', 'ERROR')}:  {fields['M']}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def handle(event: Any, context: Any, *, config: str, run: Runner,
           errors: tuple[type[BaseException], ...]) -> dict[str, Any]:
    """Answer one API Gateway event; a database error is a 503 with its kind.

    ``errors`` are the driver's exception classes (and ``OSError`` for a refused
    connect): those become ``503 {"error", "kind"}`` as in ``handlers/workload/app.py``;
    anything else is a bug and propagates (Lambda reports a function error).
    Logs one JSON line per invocation (``config``, ``route``, ``status``,
    ``duration_ms``, ``environment``, and ``error_kind``/``error`` on failure).
    """
    started = time.perf_counter()
    route, kind, message = "unparsed", None, None
    try:
        request = events.parse_event(event)
    except events.BadEventError as exc:
        response = events.error(400, str(exc))
    else:
        route, found = resolve(request)
        if isinstance(found, Response):
            response = found
        else:
            try:
                response = run(found)
            except errors as exc:
                message = first_line(exc)
                kind = classify(message)
                response = events.error(503, f"database error: {message}", kind)
    record: dict[str, Any] = {
        "config": config, "route": route, "status": response.status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "environment": environment_id()[:ENV_ID_CHARS],
        "request_id": getattr(context, "aws_request_id", None)}
    if kind is not None:
        record.update(error_kind=kind, error=message)
    _log.info(json.dumps(record, separators=(",", ":")))
    return response.to_proxy()
