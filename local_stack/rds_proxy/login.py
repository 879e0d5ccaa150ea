"""A client's login to the RDS Proxy stand-in: startup packet, refusals, authentication.

Answers as RDS Proxy does where AWS documents its wording ("Troubleshooting for
RDS Proxy", errors for PostgreSQL: "Feature not supported: RDS Proxy currently
doesn't support command-line options.", ...), as PostgreSQL does otherwise. A
CancelRequest arriving instead of a login is handed to the core, which ignores
it as RDS Proxy does (:meth:`.proxy.ProxyCore.cancel`). The first client of a
pool borrows a connection once to learn the server's ParameterStatus messages,
which every client then gets at its login.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol

from connstorm.local_stack import pg_wire
from connstorm.local_stack.rds_proxy.auth import AuthFailed, ClientAuth
from connstorm.local_stack.rds_proxy.pool import Pool

OPTIONS_MESSAGE = "Feature not supported: RDS Proxy currently doesn't support command-line options."


class LoginHost(Protocol):
    """What a login needs of the proxy (its core)."""

    @property
    def auth(self) -> ClientAuth: ...
    def cancel(self, packet: bytes) -> None: ...
    def auth_failed(self, user: str, why: str) -> None: ...
    def pool(self, user: str, database: str) -> Pool: ...


class LoggingIn(Protocol):
    """What a login needs of the client session (:class:`.session.ClientSession`)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    backend_key: tuple[int, bytes]
    pool: Pool | None

    @property
    def core(self) -> LoginHost: ...
    def borrow_error(self, exc: BaseException) -> bytes: ...


async def client_login(session: LoggingIn) -> bool:
    """Log ``session``'s client in; False when it was refused (and told why) or cancelled."""
    w, core = session.writer, session.core
    startup = await pg_wire.read_startup(session.reader, w)
    if startup.cancel is not None:
        core.cancel(startup.cancel)
        return False
    if startup.protocol != pg_wire.PROTOCOL_3:
        w.write(pg_wire.error_response(
            f"unsupported frontend protocol {startup.protocol >> 16}."
            f"{startup.protocol & 0xFFFF}", "0A000"))
        return False
    params = startup.params
    user = params.get("user", "")
    database = params.get("database") or user
    if not user:
        w.write(pg_wire.error_response("no PostgreSQL user name specified in startup packet",
                                       "28000"))
        return False
    if params.get("options"):
        w.write(pg_wire.error_response(OPTIONS_MESSAGE, "0A000"))
        return False
    try:
        await core.auth.authenticate(user, session.reader, w)
    except AuthFailed as exc:
        core.auth_failed(user, str(exc))
        w.write(exc.response)
        return False
    session.pool = pool = core.pool(user, database)
    if pool.server_params is None:  # first client: learn the server's parameters
        try:
            pool.release(await pool.borrow())
        except Exception as exc:
            w.write(session.borrow_error(exc).replace(b"SERROR\0VERROR", b"SFATAL\0VFATAL", 1))
            return False
    key_pid, key = session.backend_key
    w.write(pg_wire.auth_request(0) + b"".join(pool.server_params or [])
            + pg_wire.message(b"K", struct.pack("!i", key_pid) + key)
            + pg_wire.ready_for_query())
    await w.drain()
    return True
