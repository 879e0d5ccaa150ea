"""Pattern ``secrets_cached``: credentials from Secrets Manager, fetched once and cached.

What it is
    At the first connect the environment calls ``GetSecretValue`` on
    ``DB_SECRET_ARN`` (boto3, client created once) and caches the secret
    (``{"username", "password", "host", "port", "dbname"}``, the shape RDS
    writes). Later connects reuse the cache; when the server refuses the cached
    password (it was rotated), the secret is fetched again once and the connect
    retried. The connection itself is reused as in ``module_level_resilient``.
    ``DB_HOST``/``DB_PORT``/``DB_NAME``, when set, win over the secret's (point
    them at RDS Proxy); ``DB_USER``/``DB_PASSWORD`` are ignored.

When it is right
    Whenever credentials live in Secrets Manager (rotation on): one API call per
    environment, not one per invocation, and rotation handled.

How it fails
    Fetching per invocation instead (the mistake this avoids) adds latency and
    Secrets Manager throttling under load. A rotation while the connection is
    open is invisible until the next connect; a secret that cannot be read
    (permissions, endpoint unreachable from the VPC) fails the invocation with
    a function error. It still holds one connection per environment.

Locally, ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` points boto3 at the stack's moto
server; on AWS the variable is absent and the same code calls the real service.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import psycopg

from .workload import app, db, events, routes
from .workload.resilient import ResilientConnection
from .workload.settings import DbSettings, SettingsError

PATTERN = "secrets_cached"
SETTINGS = DbSettings.from_env()
if SETTINGS.secret_arn is None:
    raise SettingsError("DB_SECRET_ARN is not set (pattern secrets_cached)")
_client: Any = None
_secret: dict[str, Any] | None = None


def secret(refresh: bool = False) -> dict[str, Any]:
    """The cached secret; fetched on first use and when ``refresh`` is asked."""
    global _client, _secret
    if _secret is None or refresh:
        if _client is None:
            import boto3  # here, not at import: Init stays cheap when the DB is down

            _client = boto3.client("secretsmanager", region_name=SETTINGS.region)
        answer = _client.get_secret_value(SecretId=SETTINGS.secret_arn)
        db.COUNTERS.credential_fetches += 1
        _secret = json.loads(answer["SecretString"])
    return _secret


def _settings_from(doc: dict[str, Any]) -> DbSettings:
    return dataclasses.replace(
        SETTINGS,
        host=SETTINGS.host or str(doc.get("host", "")),
        port=SETTINGS.port if SETTINGS.host else int(doc.get("port", SETTINGS.port)),
        dbname=SETTINGS.dbname if SETTINGS.host else str(doc.get("dbname", SETTINGS.dbname)),
        user=str(doc["username"]),
        password=str(doc["password"]),
    )


def _connect() -> psycopg.Connection[Any]:
    try:
        return db.connect(_settings_from(secret()))
    except psycopg.OperationalError as exc:
        if not db.is_auth_failure(exc):
            raise
        # The password was rotated since we cached it: read it again, once.
        return db.connect(_settings_from(secret(refresh=True)))


CONNECTION = ResilientConnection(_connect, SETTINGS.statement_timeout_ms)


def _run(action: routes.Action) -> events.Response:
    return CONNECTION.run(action)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
