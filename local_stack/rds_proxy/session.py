"""One client of the RDS Proxy stand-in: login, then transactions over borrowed connections.

Multiplexing is read off the protocol, as RDS Proxy does. Every Query, Sync and
FunctionCall the client sends gets exactly one ReadyForQuery back; the session
counts those in flight (``pending``) and watches the status byte of each
ReadyForQuery. When nothing is in flight, no extended-protocol message waits
for its Sync and the status is ``I`` (idle, no transaction), the database
connection goes back to the pool, unless the session is pinned. The next
request borrows one again (maybe another).

Only message headers are parsed on the hot path: client messages are cut at
Query/Sync boundaries and forwarded as they came; server bytes are forwarded
unchanged while their headers are walked to find ReadyForQuery. The bodies of
Query and Parse messages are looked at only by a regular expression
(:mod:`local_stack.rds_proxy.pinning`).

What clients see on failure:

* borrow timeout: ``ERROR: Timed-out waiting to acquire database connection.``
  with SQLSTATE ``08006`` (connection_failure: psycopg raises
  ``OperationalError``; RDS Proxy's own code is not documented), then
  ReadyForQuery: the client connection stays usable, its request failed;
* the database cannot be reached or refuses the proxy: the same, with the
  server's error or ``08006``;
* idle longer than ``idle_client_timeout_s``: ``FATAL 57P05 terminating
  connection due to idle client timeout`` and the connection is closed
  (PostgreSQL's idle-session wording; RDS Proxy just closes the socket);
* the server connection dies under it: the server's own last message (e.g.
  ``57P01 terminating connection due to administrator command``) is passed
  on, then the client connection is closed.

A client that leaves mid-transaction, pinned, or with requests in flight has
its database connection closed, never reused (see :mod:`.pool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from typing import TYPE_CHECKING

from local_stack import pg_wire
from local_stack.rds_proxy import pinning
from local_stack.rds_proxy.auth import AuthFailed
from local_stack.rds_proxy.pool import BorrowTimeout, Pool, ServerConnection

if TYPE_CHECKING:
    from local_stack.rds_proxy.proxy import ProxyCore

_log = logging.getLogger("local_stack.rds_proxy")

BORROW_TIMEOUT_MESSAGE = "Timed-out waiting to acquire database connection."
BORROW_TIMEOUT_SQLSTATE = "08006"
OPTIONS_MESSAGE = "Feature not supported: RDS Proxy currently doesn't support command-line options."
IDLE_TIMEOUT_MESSAGE = "terminating connection due to idle client timeout"
LOGIN_TIMEOUT_S = 30.0
_SYNCS = frozenset(b"QSF")
_HIGH_WATER = 1 << 18


class ClientSession:
    """The state of one client connection; :meth:`run` serves it to the end."""

    def __init__(self, core: ProxyCore, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.core = core
        self.reader, self.writer = reader, writer
        self.pool: Pool | None = None
        self.server: ServerConnection | None = None
        self.pinned: str | None = None
        self.pending = 0
        self.open_batch = False
        self.status = b"I"
        self.ready = False
        self.last_active = asyncio.get_running_loop().time()
        self.backend_key = (secrets.randbits(31), secrets.token_bytes(4))
        self._pump: asyncio.Task[None] | None = None
        self._discard_error: bytes | None = None
        self.task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Log the client in, then serve its requests until it leaves."""
        try:
            if await asyncio.wait_for(self._login(), LOGIN_TIMEOUT_S):
                self.ready = True
                self.core.session_ready(self)
                await self._serve()
        except pg_wire.ProtocolViolation as exc:
            _log.info("RDS Proxy stand-in: protocol violation from a client: %s", exc)
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.write(pg_wire.error_response(str(exc), "08P01"))
        except (ConnectionError, asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
            _log.debug("RDS Proxy stand-in: client session ended: %s", exc)
        finally:
            self.end()

    def end(self) -> None:
        """Give back or close the database connection, close the client; idempotent."""
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        conn, self.server = self.server, None
        if conn is not None and self.pool is not None:
            if self.pinned or self.pending or self.open_batch or self.status != b"I":
                self.pool.discard(conn)
            else:
                self.pool.release(conn)
        self.core.session_ended(self)
        self.writer.close()

    def close_idle(self) -> None:
        """The idle client timeout fired: tell the client why, then end."""
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.write(pg_wire.error_response(IDLE_TIMEOUT_MESSAGE, "57P05"))
        if self.task is not None:
            self.task.cancel()

    # ------------------------------------------------------------ login

    async def _login(self) -> bool:
        w = self.writer
        startup = await pg_wire.read_startup(self.reader, w)
        if startup.cancel is not None:
            await self.core.cancel(startup.cancel)
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
            await self.core.auth.authenticate(user, self.reader, w)
        except AuthFailed as exc:
            self.core.auth_failed(user, str(exc))
            w.write(exc.response)
            return False
        self.pool = pool = self.core.pool(user, database)
        if pool.server_params is None:  # first client: learn the server's parameters
            error = await self._acquire()
            if error is not None:
                w.write(error.replace(b"SERROR\0VERROR", b"SFATAL\0VFATAL", 1))
                return False
            self._release()
        key_pid, key = self.backend_key
        w.write(pg_wire.auth_request(0) + b"".join(pool.server_params or [])
                + pg_wire.message(b"K", struct.pack("!i", key_pid) + key)
                + pg_wire.ready_for_query())
        await w.drain()
        return True

    # ------------------------------------------------------------ requests

    async def _serve(self) -> None:
        buf = bytearray()
        loop = asyncio.get_running_loop()
        while data := await self.reader.read(65536):
            self.last_active = loop.time()
            buf += data
            pos = start = 0
            n = len(buf)
            pin: tuple[str, str] | None = None
            while n - pos >= 5:
                kind = buf[pos]
                length = int.from_bytes(buf[pos + 1:pos + 5], "big")
                if not 4 <= length <= pg_wire.MAX_MESSAGE_BYTES:
                    raise pg_wire.ProtocolViolation(f"invalid message length {length}")
                end = pos + 1 + length
                if end > n:
                    break
                if kind == 88:  # X: Terminate; the database connection stays with the pool
                    await self._send(bytes(buf[start:pos]), False, pin)
                    return
                if kind in (81, 69):  # Q, E
                    self.core.queries += 1
                if kind in (81, 80) and self.pinned is None and pin is None:  # Q, P
                    reason, sql = pinning.message_reason(bytes((kind,)),
                                                         memoryview(buf)[pos + 5:end])
                    if reason is not None:
                        pin = (reason, sql)
                pos = end
                if kind in _SYNCS:
                    await self._send(bytes(buf[start:pos]), True, pin)
                    start, pin = pos, None
            if start < pos:
                await self._send(bytes(buf[start:pos]), False, pin)
            del buf[:pos]

    async def _send(self, data: bytes, synced: bool, pin: tuple[str, str] | None) -> None:
        if not data:
            return
        if self._discard_error is not None:  # a failed borrow: skip to the Sync
            if synced:
                self.writer.write(self._discard_error + pg_wire.ready_for_query())
                self._discard_error = None
            return
        if self.server is None:
            error = await self._acquire()
            if error is not None:
                if synced:
                    self.writer.write(error + pg_wire.ready_for_query())
                else:
                    self._discard_error = error
                return
        server = self.server
        assert server is not None
        if pin is not None and self.pinned is None:
            self.pinned = pin[0]
            self.core.pinned(self, server, *pin)
        if synced:
            self.pending += 1
            self.open_batch = False
        else:
            self.open_batch = True
        server.writer.write(data)
        if server.writer.transport.get_write_buffer_size() > _HIGH_WATER:
            await server.writer.drain()

    async def _acquire(self) -> bytes | None:
        """Borrow a database connection; an ErrorResponse (severity ERROR) if none."""
        assert self.pool is not None
        try:
            conn = await self.pool.borrow()
        except BorrowTimeout:
            self.core.borrow_timeouts += 1
            return pg_wire.error_response(BORROW_TIMEOUT_MESSAGE, BORROW_TIMEOUT_SQLSTATE,
                                          "ERROR")
        except pg_wire.UpstreamRefused as exc:
            fields = pg_wire.error_fields(exc.payload)
            return pg_wire.error_response(fields.get("M", str(exc)), fields.get("C", "08006"),
                                          "ERROR")
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            return pg_wire.error_response(
                f"RDS Proxy stand-in cannot connect to the database: {exc or type(exc).__name__}",
                "08006", "ERROR")
        self.server = conn
        self.status = b"I"
        self._pump = asyncio.get_running_loop().create_task(self._forward_replies(conn))
        return None

    def _release(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        conn, self.server = self.server, None
        if conn is not None and self.pool is not None:
            self.pool.release(conn)

    async def _forward_replies(self, conn: ServerConnection) -> None:
        """Server to client, until the transaction ends (or forever, once pinned)."""
        reader, client = conn.reader, self.writer
        loop = asyncio.get_running_loop()
        skip = 0
        carry = b""
        try:
            while data := await reader.read(65536):
                client.write(data)
                # Walk the headers to find each ReadyForQuery and its status.
                if skip >= len(data):
                    skip -= len(data)
                    continue
                if carry:
                    data, carry = carry + data[skip:], b""
                    i = 0
                else:
                    i = skip
                skip = 0
                n = len(data)
                while i < n:
                    if n - i < 5:
                        carry = data[i:]
                        break
                    end = i + 1 + int.from_bytes(data[i + 1:i + 5], "big")
                    if data[i] == 90:  # Z
                        if end > n:
                            carry = data[i:]
                            break
                        self.pending -= 1
                        self.status = data[i + 5:i + 6]
                    elif end > n:
                        skip = end - n
                        break
                    i = end
                self.last_active = loop.time()
                if (self.pending <= 0 and self.status == b"I" and not self.open_batch
                        and self.pinned is None and not carry and not skip):
                    self._pump = None
                    self._release()
                    return
                if client.transport.get_write_buffer_size() > _HIGH_WATER:
                    await client.drain()
        except (ConnectionError, OSError) as exc:
            _log.debug("RDS Proxy stand-in: database connection lost: %s", exc)
        # The server closed the connection: nothing of this session can go on.
        _log.info("RDS Proxy stand-in: database connection [dbConnection=%d] closed by the "
                  "server; closing its client", conn.id)
        self._pump = None
        if self.task is not None:
            self.task.cancel()
