"""The database roles the workload logs in as on AWS, made by the schema function.

``deploy/template.yaml`` keeps the master user to itself (only the schema
function reads its secret) and gives the functions and RDS Proxy two roles of
their own, each allowed exactly what the workload does (read and write its
tables, use their sequences) and nothing else: no DDL, no role management, no
superuser-reserved slots (AWS, "Master user account privileges": the master
user is a member of ``rds_superuser``).

- the **application role** (``connstorm_app``), password from its own Secrets
  Manager secret: what RDS Proxy logs in to the instance as, what clients name
  when they log in to the proxy (with that password, or an IAM token when the
  proxy's ``IAMAuth`` is ``REQUIRED``: "set up your database users to
  authenticate with regular user names and passwords ... The connection from
  RDS Proxy to the underlying database doesn't go through IAM", AWS,
  "Connecting to a database through RDS Proxy"), and what the password
  patterns use straight to the instance;
- the **IAM role** (``connstorm_iam``), granted ``rds_iam``: pattern
  ``iam_token`` straight to the instance. A role granted ``rds_iam`` can only
  log in with IAM tokens (AWS, "Creating a database account using IAM
  authentication"), so it cannot be the proxy's role, which logs in with a
  password.

Both are made idempotently: a second run finds the role and only sets its
password again (so the role follows a rotated secret) and re-grants (tables a
newer schema added). The password reaches the server only as a SCRAM-SHA-256
verifier computed here, never as text a ``log_statement`` setting could write
to the server log (PostgreSQL, "CREATE ROLE", Notes: the password "will be
transmitted to the server in cleartext, and it might also be logged"). A
server whose ``pg_hba.conf`` says ``md5`` or ``scram-sha-256`` authenticates
the role with SCRAM (PostgreSQL, "Password Authentication").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

import psycopg
from psycopg import sql

#: The role RDS grants to users that log in with IAM tokens (exists on RDS only).
RDS_IAM_ROLE = "rds_iam"
#: PostgreSQL's default ``scram_iterations``.
SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, *, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$...`` verifier PostgreSQL stores for ``password`` (RFC 5803).

    A copy of ``connstorm.local_stack.credentials.scram_verifier`` (the handlers
    deploy without connstorm; a test checks the two agree). Secrets Manager's
    generated passwords are ASCII, which SASLprep leaves unchanged.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                        (role,)).fetchone() is not None


def grant_workload(conn: psycopg.Connection[Any], role: str) -> None:
    """Grant ``role`` what the workload's statements need in the current database, only that.

    The handlers read and write the workload's tables and take order ids from
    their sequences; ``CONNECT`` on the database and ``USAGE`` on schema
    ``public`` are granted explicitly because a hardened database may have
    revoked them from ``PUBLIC``.
    """
    name = sql.Identifier(role)
    dbname = conn.execute("SELECT current_database()").fetchone()
    assert dbname is not None
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        sql.Identifier(dbname[0]), name))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                         "TO {}").format(name))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}")
                 .format(name))


def install_app_user(conn: psycopg.Connection[Any], user: str, password: str) -> bool:
    """Create the application role ``user`` with ``password`` if missing, else reset it.

    Returns whether the role was created by this call. Either way the role can
    log in with ``password`` afterwards and holds the workload's privileges.
    """
    name = sql.Identifier(user)
    verifier = sql.Literal(scram_verifier(password))
    created = not _exists(conn, user)
    if created:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(name, verifier))
    else:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(name, verifier))
    grant_workload(conn, user)
    return created


def install_iam_user(conn: psycopg.Connection[Any], user: str) -> bool:
    """Create ``user`` (LOGIN, no password) if missing and grant it the workload's tables.

    Returns whether ``rds_iam`` was granted: on RDS always; on a plain PostgreSQL
    (tests) the role does not exist and the user is left without it.
    """
    name = sql.Identifier(user)
    if not _exists(conn, user):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
    has_rds_iam = _exists(conn, RDS_IAM_ROLE)
    if has_rds_iam:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(RDS_IAM_ROLE), name))
    grant_workload(conn, user)
    return has_rds_iam
