"""Error classification: every wording connstorm must recognise, and real exceptions."""

from __future__ import annotations

import socket

import psycopg
import pytest

from connstorm import error_kinds as k

MESSAGES = [
    # A transaction pooler without prepared-statement tracking (PgBouncer < 1.21)
    ('ERROR:  prepared statement "_pg3_0" does not exist', k.PREPARED_STATEMENT),
    ('prepared statement "__asyncpg_stmt_1__" already exists', k.PREPARED_STATEMENT),
    ("ERROR:  unnamed prepared statement does not exist", k.PREPARED_STATEMENT),
    # Lambda's Invoke API for a VPC function (local_stack/lambda_/vpc.py)
    ("ResourceConflictException: The operation cannot be performed at this time. The function "
     "is currently in the following state: Pending", k.LAMBDA_PENDING),
    ("SubnetIPAddressLimitReachedException: Lambda couldn't set up VPC access",
     k.LAMBDA_VPC_LIMIT),
    ("ENILimitReachedException: Lambda couldn't create an elastic network interface",
     k.LAMBDA_VPC_LIMIT),
    # PostgreSQL 15, at connect (psycopg's wording, no SQLSTATE)
    ('connection failed: connection to server at "127.0.0.1", port 5 failed: FATAL:  sorry, '
     "too many clients already", k.TOO_MANY_CONNECTIONS),
    ("FATAL:  remaining connection slots are reserved for non-replication superuser "
     "connections", k.TOO_MANY_CONNECTIONS),
    # PostgreSQL 16+
    ('FATAL:  remaining connection slots are reserved for roles with privileges of the '
     '"pg_use_reserved_connections" role', k.TOO_MANY_CONNECTIONS),
    ("FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
     k.TOO_MANY_CONNECTIONS),
    # RDS
    ("FATAL: remaining connection slots are reserved for non-replication superuser, "
     "rds_reserved, and rds_superuser connections", k.TOO_MANY_CONNECTIONS),
    ('FATAL: remaining connection slots are reserved for roles with privileges of the '
     '"rds_reserved" role', k.TOO_MANY_CONNECTIONS),
    ('FATAL:  too many connections for role "app"', k.TOO_MANY_CONNECTIONS),
    # PgBouncer 1.18
    ("FATAL:  no more connections allowed (max_client_conn)", k.POOL_MAX_CLIENT_CONN),
    ("FATAL:  query_wait_timeout", k.POOL_QUERY_WAIT_TIMEOUT),
    ("FATAL:  server login has been failing, try again later (server_login_retry)",
     k.POOL_SERVER_LOGIN_FAILING),
    ("FATAL:  client_login_timeout (server down)", k.POOL_SERVER_LOGIN_FAILING),
    # RDS Proxy
    ("Timed-out waiting to acquire database connection.", k.PROXY_BORROW_TIMEOUT),
    ("The maximum number of client connections to the proxy exceeded", k.POOL_MAX_CLIENT_CONN),
    ("Rate of connection to proxy exceeded", k.POOL_MAX_CLIENT_CONN),
    # the RDS Proxy stand-in (local_stack/rds_proxy/session.py)
    ("FATAL:  terminating connection due to idle client timeout", k.PROXY_IDLE_CLIENT_TIMEOUT),
    ("FATAL:  Feature not supported: RDS Proxy currently doesn't support command-line options.",
     k.PROXY_UNSUPPORTED),
    ("ERROR:  RDS Proxy stand-in cannot connect to the database: [Errno 111] refused",
     k.POOL_SERVER_LOGIN_FAILING),
    # timeouts, shutdowns, refusals
    ("connection timeout expired", k.CONNECT_TIMEOUT),
    ('connection failed: connection to server at "127.0.0.1", port 1 failed: Connection '
     "refused", k.CONNECTION_REFUSED),
    ("FATAL:  terminating connection due to idle-session timeout", k.IDLE_SESSION_TIMEOUT),
    ("FATAL:  terminating connection due to administrator command", k.ADMIN_SHUTDOWN),
    ("FATAL:  the database system is shutting down", k.ADMIN_SHUTDOWN),
    ("something else entirely", k.OTHER),
    ("", k.OTHER),
]


@pytest.mark.parametrize(("message", "kind"), MESSAGES)
def test_classify_message_recognises_each_wording(message: str, kind: str) -> None:
    assert k.classify_message(message) == kind


def test_classify_message_falls_back_to_sqlstate() -> None:
    assert k.classify_message("unfamiliar text", "53300") == k.TOO_MANY_CONNECTIONS
    assert k.classify_message("unfamiliar text", "57P05") == k.IDLE_SESSION_TIMEOUT
    assert k.classify_message("unfamiliar text", "99999") == k.OTHER
    assert k.classify_message(None) == k.OTHER


def test_classify_exception_handles_connection_timeout_by_type() -> None:
    exc = psycopg.errors.ConnectionTimeout("any wording at all")
    assert k.classify_exception(exc) == k.CONNECT_TIMEOUT


def test_classify_exception_of_a_real_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(psycopg.OperationalError) as err:
            psycopg.connect(host="127.0.0.1", port=port, user="x", connect_timeout=5)
    assert err.value.sqlstate is None
    assert k.classify_exception(err.value) == k.CONNECTION_REFUSED


def test_classify_exception_of_plain_python_errors() -> None:
    assert k.classify_exception(ConnectionRefusedError(111, "refused")) == k.CONNECTION_REFUSED
    assert k.classify_exception(TimeoutError()) == k.CONNECT_TIMEOUT
    assert k.classify_exception(ValueError("x")) == k.OTHER


def test_every_kind_is_listed_once() -> None:
    assert len(set(k.ALL_KINDS)) == len(k.ALL_KINDS)
    assert {kind for _, kind in MESSAGES} <= set(k.ALL_KINDS)
