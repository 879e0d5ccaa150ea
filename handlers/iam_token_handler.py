"""Pattern ``iam_token``: the password is an RDS IAM auth token, cached until near expiry.

What it is
    With ``DB_IAM_AUTH=true`` the function has no password: at connect time it
    asks boto3 for ``generate_db_auth_token(DB_HOST, DB_PORT, DB_USER)``, a SigV4
    presigned URL signed with the function role's credentials (computed locally,
    no network call), valid 15 minutes, and sends it as the password. The token
    is cached and reused for every connect until 60 s before it expires. The
    connection itself is reused as in ``module_level_resilient``.

When it is right
    No database password to store or rotate; RDS Proxy can enforce IAM auth for
    clients. Requires TLS on AWS (``DB_SSLMODE=require`` or stricter).

How it fails
    A token only matters at connect time, so an expired token breaks reconnects,
    not open connections; regenerating per invocation wastes CPU and (on the
    first call) boto3's start-up time. RDS limits the rate of new IAM-authenticated
    connections, so reconnect storms fail faster than with passwords. Tokens made
    with session credentials exceed PgBouncer 1.18's 2048-byte password limit.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from .workload import app, db, events, routes
from .workload.resilient import ResilientConnection
from .workload.settings import DbSettings, SettingsError

PATTERN = "iam_token"
TOKEN_LIFETIME_S = 900.0
REFRESH_MARGIN_S = 60.0
SETTINGS = DbSettings.from_env()
if not SETTINGS.iam_auth:
    raise SettingsError("DB_IAM_AUTH is not true (pattern iam_token)")
if not SETTINGS.user or not SETTINGS.host:
    raise SettingsError("DB_USER and DB_HOST are required (pattern iam_token)")
_client: Any = None
_token: str | None = None
_token_expires_at = 0.0


def token() -> str:
    """The cached token; a new one when none is cached or it expires within a minute."""
    global _client, _token, _token_expires_at
    now = time.time()
    if _token is None or now >= _token_expires_at - REFRESH_MARGIN_S:
        if _client is None:
            import boto3  # here, not at import: Init stays cheap

            _client = boto3.client("rds", region_name=SETTINGS.region)
        _token = _client.generate_db_auth_token(
            DBHostname=SETTINGS.host, Port=SETTINGS.port, DBUsername=SETTINGS.user,
            Region=SETTINGS.region)
        _token_expires_at = now + TOKEN_LIFETIME_S
        db.COUNTERS.credential_fetches += 1
    assert _token is not None
    return _token


def _connect() -> psycopg.Connection[Any]:
    return db.connect(SETTINGS, password=token())


CONNECTION = ResilientConnection(_connect, SETTINGS.statement_timeout_ms)


def _run(action: routes.Action) -> events.Response:
    return CONNECTION.run(action)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
