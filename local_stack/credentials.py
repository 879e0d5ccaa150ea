"""Passwords, SCRAM verifiers and connection URLs of a stack.

Passwords are generated per stack and never logged: anything shown to a person
goes through :func:`mask_dsn`. Roles get their passwords as SCRAM-SHA-256
verifiers computed here, so the clear text never reaches a server log even when
a scenario turns on ``log_statement = 'all'``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from urllib.parse import quote

SCRAM_ITERATIONS = 4096

_DSN_PASSWORD = re.compile(r"^(?P<head>[a-z]+://[^:/@]*:)(?P<password>[^@]*)(?P<tail>@.*)$")


def new_password() -> str:
    """A fresh random password, URL-safe so it needs no quoting anywhere."""
    return secrets.token_urlsafe(24)


def scram_verifier(password: str, *, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$...`` verifier PostgreSQL stores for ``password``.

    Same format as ``pg_authid.rolpassword`` (RFC 5803); PostgreSQL accepts it in
    ``ALTER ROLE ... PASSWORD`` and PgBouncer in its auth file. Passwords from
    :func:`new_password` are ASCII, so SASLprep leaves them unchanged.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def make_dsn(user: str, password: str | None, host: str, port: int, dbname: str) -> str:
    """``postgresql://user:password@host:port/dbname`` with every part quoted."""
    auth = quote(user, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}"


def mask_dsn(dsn: str | None) -> str | None:
    """The URL with its password replaced by ``***``, for people and logs."""
    if dsn is None:
        return None
    match = _DSN_PASSWORD.match(dsn)
    if match is None:
        return re.sub(r"password=\S+", "password=***", dsn)
    return f"{match['head']}***{match['tail']}"
