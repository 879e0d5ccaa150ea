"""Turn a database error, from any layer, into one kind.

The same classification serves the handlers' error records, the emulator's
invocation records, Locust failures and the collectors, so a "too many clients"
that happened three layers down is counted as the same thing everywhere.

psycopg raises a plain ``OperationalError`` with ``sqlstate=None`` for errors at
connect time (psycopg documentation, "Errors", ``Error.sqlstate``: the code "if
received from the server", and libpq reports a refused login as connection
failure text), so classification works on the message text first and uses
SQLSTATE only as a fallback (PostgreSQL documentation, "Appendix A. PostgreSQL
Error Codes": ``53300 too_many_connections``, ``57P01 admin_shutdown``, ...).
"""

from __future__ import annotations

from typing import Final

TOO_MANY_CONNECTIONS: Final = "too_many_connections"
POOL_MAX_CLIENT_CONN: Final = "pool_max_client_conn"
POOL_QUERY_WAIT_TIMEOUT: Final = "pool_query_wait_timeout"
POOL_SERVER_LOGIN_FAILING: Final = "pool_server_login_failing"
#: RDS Proxy (or its stand-in) found no free database connection within
#: ConnectionBorrowTimeout: the pool is full, usually of pinned sessions.
PROXY_BORROW_TIMEOUT: Final = "proxy_borrow_timeout"
#: RDS Proxy closed a client idle longer than IdleClientTimeout.
PROXY_IDLE_CLIENT_TIMEOUT: Final = "proxy_idle_client_timeout"
#: RDS Proxy refused what the client asked for (startup ``options``, ...).
PROXY_UNSUPPORTED: Final = "proxy_unsupported"
CONNECT_TIMEOUT: Final = "connect_timeout"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_LOST: Final = "connection_lost"
IDLE_SESSION_TIMEOUT: Final = "idle_session_timeout"
IDLE_IN_TRANSACTION_TIMEOUT: Final = "idle_in_transaction_timeout"
ADMIN_SHUTDOWN: Final = "admin_shutdown"
AUTHENTICATION_FAILED: Final = "authentication_failed"
STATEMENT_TIMEOUT: Final = "statement_timeout"
LAMBDA_THROTTLED: Final = "lambda_throttled"
LAMBDA_TIMEOUT: Final = "lambda_timeout"
LAMBDA_CRASH: Final = "lambda_crash"
LAMBDA_INIT_ERROR: Final = "lambda_init_error"
#: Invoke refused while a VPC function is ``Pending`` (409 ResourceConflictException).
LAMBDA_PENDING: Final = "lambda_pending"
#: No address left in the function's subnets (502 SubnetIPAddressLimitReachedException,
#: or the account's ENILimitReachedException).
LAMBDA_VPC_LIMIT: Final = "lambda_vpc_limit"
GATEWAY_TIMEOUT: Final = "gateway_timeout"
#: A prepared statement the client made is not on the server connection it now has
#: (or another client's is): a transaction pooler that does not track them
#: (PgBouncer before 1.21) moved the client between server connections.
PREPARED_STATEMENT: Final = "prepared_statement"
#: Not a request's error: ``connstorm drivers`` read off PostgreSQL's log that a named
#: statement was still prepared when its transaction ended behind a transaction pooler
#: that does not track them, whichever client's transaction the connection serves next
#: (``loadtests/orchestrator/driver_statements.py``). Not in :data:`ALL_KINDS`.
PREPARED_STATEMENT_STRANDED: Final = "prepared_statement_stranded"
HTTP_ERROR: Final = "http_error"
OTHER: Final = "other"

#: Every kind, in the order reports list them.
ALL_KINDS: Final[tuple[str, ...]] = (
    TOO_MANY_CONNECTIONS,
    POOL_MAX_CLIENT_CONN,
    POOL_QUERY_WAIT_TIMEOUT,
    POOL_SERVER_LOGIN_FAILING,
    PROXY_BORROW_TIMEOUT,
    PROXY_IDLE_CLIENT_TIMEOUT,
    PROXY_UNSUPPORTED,
    CONNECT_TIMEOUT,
    CONNECTION_REFUSED,
    CONNECTION_LOST,
    IDLE_SESSION_TIMEOUT,
    IDLE_IN_TRANSACTION_TIMEOUT,
    ADMIN_SHUTDOWN,
    AUTHENTICATION_FAILED,
    STATEMENT_TIMEOUT,
    LAMBDA_THROTTLED,
    LAMBDA_TIMEOUT,
    LAMBDA_CRASH,
    LAMBDA_INIT_ERROR,
    LAMBDA_PENDING,
    LAMBDA_VPC_LIMIT,
    GATEWAY_TIMEOUT,
    PREPARED_STATEMENT,
    HTTP_ERROR,
    OTHER,
)

# Ordered: the first substring found wins. Lower-case; matched against the
# lower-cased message. PostgreSQL 15, 16+ and RDS wordings are all covered by
# the two 53300 substrings.
_SUBSTRINGS: Final[tuple[tuple[str, str], ...]] = (
    ("too many clients already", TOO_MANY_CONNECTIONS),
    ("remaining connection slots are reserved", TOO_MANY_CONNECTIONS),
    ("too many connections for role", TOO_MANY_CONNECTIONS),
    ("too many connections for database", TOO_MANY_CONNECTIONS),
    ("no more connections allowed (max_client_conn)", POOL_MAX_CLIENT_CONN),
    ("the maximum number of client connections to the proxy exceeded", POOL_MAX_CLIENT_CONN),
    ("query_wait_timeout", POOL_QUERY_WAIT_TIMEOUT),
    ("timed-out waiting to acquire database connection", PROXY_BORROW_TIMEOUT),
    ("rate of connection to proxy exceeded", POOL_MAX_CLIENT_CONN),
    ("terminating connection due to idle client timeout", PROXY_IDLE_CLIENT_TIMEOUT),
    ("rds proxy currently doesn't support", PROXY_UNSUPPORTED),
    ("rds proxy stand-in cannot connect to the database", POOL_SERVER_LOGIN_FAILING),
    ("server login has been failing", POOL_SERVER_LOGIN_FAILING),
    ("client_login_timeout (server down)", POOL_SERVER_LOGIN_FAILING),
    ("idle-session timeout", IDLE_SESSION_TIMEOUT),
    ("idle-in-transaction timeout", IDLE_IN_TRANSACTION_TIMEOUT),
    ("terminating connection due to administrator command", ADMIN_SHUTDOWN),
    ("the database system is shutting down", ADMIN_SHUTDOWN),
    ("canceling statement due to statement timeout", STATEMENT_TIMEOUT),
    ("unnamed prepared statement does not exist", PREPARED_STATEMENT),
    ('prepared statement "', PREPARED_STATEMENT),
    ("prepared statement name is already in use", PREPARED_STATEMENT),
    ("password authentication failed", AUTHENTICATION_FAILED),
    ("pam authentication failed", AUTHENTICATION_FAILED),
    ("sasl authentication failed", AUTHENTICATION_FAILED),
    ("connection timeout expired", CONNECT_TIMEOUT),
    ("timeout expired", CONNECT_TIMEOUT),
    ("connection refused", CONNECTION_REFUSED),
    ("the database system is starting up", CONNECTION_REFUSED),
    ("server closed the connection unexpectedly", CONNECTION_LOST),
    ("connection reset by peer", CONNECTION_LOST),
    ("consuming input failed", CONNECTION_LOST),
    ("the connection is closed", CONNECTION_LOST),
    ("connection is lost", CONNECTION_LOST),
    ("broken pipe", CONNECTION_LOST),
    ("sandbox.timedout", LAMBDA_TIMEOUT),
    ("task timed out after", LAMBDA_TIMEOUT),
    ("runtime.exiterror", LAMBDA_CRASH),
    ("runtime exited", LAMBDA_CRASH),
    ("toomanyrequestsexception", LAMBDA_THROTTLED),
    ("rate exceeded", LAMBDA_THROTTLED),
    ("runtime.initerror", LAMBDA_INIT_ERROR),
    ("runtime.importmoduleerror", LAMBDA_INIT_ERROR),
    ("currently in the following state: pending", LAMBDA_PENDING),
    ("subnetipaddresslimitreachedexception", LAMBDA_VPC_LIMIT),
    ("enilimitreachedexception", LAMBDA_VPC_LIMIT),
    ("endpoint request timed out", GATEWAY_TIMEOUT),
)

_SQLSTATES: Final[dict[str, str]] = {
    "53300": TOO_MANY_CONNECTIONS,
    "57P05": IDLE_SESSION_TIMEOUT,
    "25P03": IDLE_IN_TRANSACTION_TIMEOUT,
    "57P01": ADMIN_SHUTDOWN,
    "57014": STATEMENT_TIMEOUT,
    "28P01": AUTHENTICATION_FAILED,
    "08006": CONNECTION_LOST,
}


def classify_message(message: str | None, sqlstate: str | None = None) -> str:
    """Return the kind of an error given its text (and SQLSTATE, if any).

    >>> classify_message('connection failed: ... FATAL:  sorry, too many clients already')
    'too_many_connections'
    """
    text = (message or "").lower()
    for needle, kind in _SUBSTRINGS:
        if needle in text:
            return kind
    if sqlstate and sqlstate in _SQLSTATES:
        return _SQLSTATES[sqlstate]
    return OTHER


def classify_exception(exc: BaseException) -> str:
    """Return the kind of an exception, psycopg's or any other.

    Works without importing psycopg: it reads ``sqlstate`` if the exception has
    one, and psycopg's ``ConnectionTimeout`` by name, since its message varies.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "ConnectionTimeout" in names:
        return CONNECT_TIMEOUT
    kind = classify_message(str(exc), getattr(exc, "sqlstate", None))
    if kind == OTHER and ("ConnectionRefusedError" in names):
        return CONNECTION_REFUSED
    if kind == OTHER and isinstance(exc, TimeoutError):
        return CONNECT_TIMEOUT
    return kind
