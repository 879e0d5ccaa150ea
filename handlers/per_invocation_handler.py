"""Pattern ``per_invocation``: connect inside the handler, close at the end.

What it is
    Every invocation opens its own connection and closes it before returning.

When it is right
    Low, spiky traffic behind a pooler (RDS Proxy, PgBouncer in transaction
    mode), where a connect is cheap and nothing must stay open while the
    environment is frozen. An environment never holds more than one connection,
    and holds none between invocations.

How it fails
    Every invocation pays the full connect (TCP, TLS, SCRAM: milliseconds to
    tens of milliseconds on RDS), and under load the connect rate itself becomes
    the bottleneck: a direct connection per invocation still means one backend
    per *concurrent* invocation, so a burst past ``max_connections`` fails with
    ``sorry, too many clients already`` just like the reused patterns.
"""

from __future__ import annotations

from typing import Any

from .workload import app, db, events, routes
from .workload.settings import DbSettings

PATTERN = "per_invocation"
SETTINGS = DbSettings.from_env()


def _run(action: routes.Action) -> events.Response:
    # The with-block closes the connection on success and on error alike.
    with db.connect(SETTINGS) as conn, db.bounded(conn, SETTINGS.statement_timeout_ms):
        return action(conn)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return app.handle(event, context, pattern=PATTERN, run=_run)
