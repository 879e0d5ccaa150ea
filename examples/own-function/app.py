"""A function of your own: one module-level connection, set up the way ORMs do it.

Deployed as is (handler ``app.handler``, psycopg 3 in the package), it reads
its database from the ``DB_*`` variables connstorm sets (``DB_HOST``,
``DB_PORT``, ``DB_NAME``, ``DB_USER``, ``DB_PASSWORD``).

It keeps one connection per execution environment, as Lambda's own guidance
recommends, and runs ``SET search_path`` on it once. Straight to PostgreSQL
that costs nothing. Behind RDS Proxy the ``SET`` pins the session to its
database connection for good (AWS RDS User Guide, "Avoiding pinning an RDS
Proxy": "SQL changed session settings that the proxy doesn't track"), and a
frozen environment keeps its pin: once the environments outnumber the proxy's
pool, new ones wait for a connection until the borrow timeout. The fix: put
the setting in the role (``ALTER ROLE app SET search_path = public``) or the
proxy's ``InitQuery``, and drop the ``SET``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg

_conn: psycopg.Connection[Any] | None = None


def _connection() -> psycopg.Connection[Any]:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(
            host=os.environ["DB_HOST"], port=int(os.environ.get("DB_PORT", "5432")),
            dbname=os.environ.get("DB_NAME", "app"), user=os.environ["DB_USER"],
            password=os.environ.get("DB_PASSWORD", ""), autocommit=True,
            connect_timeout=int(float(os.environ.get("DB_CONNECT_TIMEOUT_S", "5"))),
            application_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "mine"))
        _conn.execute("SET search_path TO public")  # what pins behind RDS Proxy
    return _conn


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``GET /health`` and ``GET /items/{id}`` (API Gateway HTTP API, payload 2.0)."""
    params = event.get("pathParameters") or {}
    conn = _connection()
    if "id" in params:
        row = conn.execute("SELECT %s::int AS id, now() AS at", (int(params["id"]),)).fetchone()
        body: dict[str, Any] = {"id": row[0] if row else None}
    else:
        conn.execute("SELECT 1")
        body = {"ok": True}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body)}
