"""How the RDS Proxy stand-in authenticates its clients, before any database connection.

RDS Proxy checks clients itself (the database never sees them): with
``IAMAuth = DISABLED`` against the password in its Secrets Manager secret, with
SCRAM-SHA-256 for PostgreSQL clients; with ``IAMAuth = REQUIRED`` only an IAM
token is accepted, sent as a cleartext password. The SCRAM server side is
:class:`connstorm.local_stack.pg_wire.ScramServer` (``scramp`` refuses libpq's empty SCRAM
user name); tokens are checked by :func:`connstorm.local_stack.iam_auth_proxy.verify_token`,
the same check as the IAM auth stand-in.

Failures answer ``FATAL 28P01`` with PostgreSQL's wording for passwords and
RDS's ("PAM authentication failed") for tokens, and are counted by the caller
as ``ClientConnectionsSetupFailedAuth``. An unknown user fails exactly like a
wrong password, so the proxy does not reveal which roles exist.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from connstorm.local_stack import pg_wire
from connstorm.local_stack.iam_auth_proxy import TokenError, verify_token

MAX_PASSWORD_BYTES = 8192
_MECHANISM = "SCRAM-SHA-256"


class AuthFailed(Exception):
    """The client did not authenticate; :attr:`response` is the ErrorResponse to send."""

    def __init__(self, reason: str, response: bytes) -> None:
        super().__init__(reason)
        self.response = response


@dataclass(frozen=True)
class IamSettings:
    """What a token must match: the proxy's own address, the region, the signing keys."""

    host: str
    port: int
    region: str
    keys: Mapping[str, str]


class ClientAuth:
    """Verifies clients against the users the proxy knows (user -> password)."""

    def __init__(self, passwords: Mapping[str, str], iam: IamSettings | None = None) -> None:
        # Verifiers are computed once: the clear passwords are not kept here.
        self._verifiers = {user: pg_wire.ScramSecret.from_password(pw)
                           for user, pw in passwords.items()}
        self._unknown = pg_wire.ScramSecret.from_password(pg_wire.ScramSecret.__name__)
        self.iam = iam

    async def authenticate(self, user: str, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        """Run the exchange; returns when the client is in, raises :class:`AuthFailed`."""
        if self.iam is not None:
            await self._iam(user, reader, writer)
        else:
            await self._scram(user, reader, writer)

    async def _password_message(self, reader: asyncio.StreamReader) -> bytes:
        kind, payload = await pg_wire.read_message(reader)
        if kind != b"p" or len(payload) > MAX_PASSWORD_BYTES:
            raise pg_wire.ProtocolViolation("expected a password message")
        return payload

    async def _scram(self, user: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        refused = AuthFailed(f"password authentication failed for user {user!r}",
                             pg_wire.error_response(
                                 f'password authentication failed for user "{user}"', "28P01"))
        verifier = self._verifiers.get(user)
        writer.write(pg_wire.auth_request(10, _MECHANISM.encode() + b"\0\0"))
        await writer.drain()
        initial = await self._password_message(reader)
        end = initial.find(b"\0")
        if initial[:end].decode(errors="replace") != _MECHANISM or len(initial) < end + 5:
            raise refused
        size = struct.unpack_from("!i", initial, end + 1)[0]
        client_first = initial[end + 5:end + 5 + size].decode(errors="replace")
        # An unknown user still gets a full exchange, with a secret that never matches.
        server = pg_wire.ScramServer(verifier or self._unknown)
        try:
            first = server.first(client_first)
        except pg_wire.ProtocolViolation:
            raise refused from None
        writer.write(pg_wire.auth_request(11, first.encode()))
        await writer.drain()
        final = server.final((await self._password_message(reader)).decode(errors="replace"))
        if verifier is None or final is None:
            raise refused
        writer.write(pg_wire.auth_request(12, final.encode()))

    async def _iam(self, user: str, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        iam = self.iam
        assert iam is not None
        writer.write(pg_wire.auth_request(3))
        await writer.drain()
        token = (await self._password_message(reader)).rstrip(b"\0").decode(errors="replace")
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: verify_token(token, host=iam.host, port=iam.port, user=user,
                                           region=iam.region, keys=iam.keys))
        except TokenError as exc:
            raise AuthFailed(str(exc), pg_wire.error_response(
                f'PAM authentication failed for user "{user}"', "28P01")) from None
        if user not in self._verifiers:
            raise AuthFailed(f"no secret for user {user!r}", pg_wire.error_response(
                f'PAM authentication failed for user "{user}"', "28P01"))
