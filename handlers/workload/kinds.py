"""Error kinds as ``connstorm.error_kinds`` names them, with the standard library only.

The handlers deploy to AWS without connstorm, and the driver matrix's handlers
(``handlers/drivers/``) must not import psycopg just to name an error, so the
few rules they need are copied here; ``tests/handlers`` checks they agree.
"""

from __future__ import annotations

_KINDS: tuple[tuple[str, str], ...] = (
    ("too many clients already", "too_many_connections"),
    ("remaining connection slots are reserved", "too_many_connections"),
    ("too many connections for", "too_many_connections"),
    ("no more connections allowed (max_client_conn)", "pool_max_client_conn"),
    ("query_wait_timeout", "pool_query_wait_timeout"),
    ("timed-out waiting to acquire database connection", "proxy_borrow_timeout"),
    ("rate of connection to proxy exceeded", "pool_max_client_conn"),
    ("terminating connection due to idle client timeout", "proxy_idle_client_timeout"),
    ("rds proxy currently doesn't support", "proxy_unsupported"),
    ("rds proxy stand-in cannot connect to the database", "pool_server_login_failing"),
    ("server login has been failing", "pool_server_login_failing"),
    ("client_login_timeout (server down)", "pool_server_login_failing"),
    ("idle-session timeout", "idle_session_timeout"),
    ("idle-in-transaction timeout", "idle_in_transaction_timeout"),
    ("terminating connection due to administrator command", "admin_shutdown"),
    ("the database system is shutting down", "admin_shutdown"),
    ("canceling statement due to statement timeout", "statement_timeout"),
    ("unnamed prepared statement does not exist", "prepared_statement"),
    ('prepared statement "', "prepared_statement"),
    ("prepared statement name is already in use", "prepared_statement"),
    ("password authentication failed", "authentication_failed"),
    ("pam authentication failed", "authentication_failed"),
    ("sasl authentication failed", "authentication_failed"),
    ("timeout expired", "connect_timeout"),
    ("connection refused", "connection_refused"),
    ("the database system is starting up", "connection_refused"),
    ("server closed the connection unexpectedly", "connection_lost"),
    ("connection reset by peer", "connection_lost"),
    ("consuming input failed", "connection_lost"),
    ("the connection is closed", "connection_lost"),
    ("connection is lost", "connection_lost"),
    ("broken pipe", "connection_lost"),
)


def classify(message: str) -> str:
    """The error's kind, named as ``connstorm.error_kinds`` names it; ``other`` if unknown."""
    text = message.lower()
    for needle, kind in _KINDS:
        if needle in text:
            return kind
    return "other"
