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
(:mod:`connstorm.local_stack.rds_proxy.pinning`). The login uses streams; after it, both
sockets are driven by protocol callbacks (``data_received``), with no task,
stream or await per message: a task only when a borrow has to wait.

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
from typing import Any, Protocol

from connstorm.local_stack import pg_wire
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.rds_proxy.auth import ClientAuth
from connstorm.local_stack.rds_proxy.login import client_login
from connstorm.local_stack.rds_proxy.pool import BorrowTimeout, Pool, ServerConnection
from connstorm.local_stack.rds_proxy.statements import (
    ServerStatements,
    StatementMux,
    StatementRegistry,
)

_log = logging.getLogger("connstorm.local_stack.rds_proxy")

BORROW_TIMEOUT_MESSAGE = "Timed-out waiting to acquire database connection."
BORROW_TIMEOUT_SQLSTATE = "08006"
IDLE_TIMEOUT_MESSAGE = "terminating connection due to idle client timeout"
LOGIN_TIMEOUT_S = 30.0
_SYNCS = frozenset(b"QSF")
#: Extended-protocol messages that wait for a Sync (COPY data does not: its Query does;
#: nor does a Flush, which psycopg's pipelines also send after their last Sync).
_EXTENDED = frozenset(b"PBDEC")
_length = struct.Struct("!i").unpack_from


class SessionHost(Protocol):
    """What a session needs of its proxy (:class:`.proxy.ProxyCore`), stated here so the
    session never imports the module that imports it."""

    auth: ClientAuth
    statements: StatementRegistry
    queries: int
    borrow_timeouts: int
    def pool(self, user: str, database: str) -> Pool: ...
    def session_ready(self, session: ClientSession) -> None: ...
    def session_ended(self, session: ClientSession) -> None: ...
    def auth_failed(self, user: str, why: str) -> None: ...
    def pinned(self, session: ClientSession, conn: Any, reason: str, sql: str) -> None: ...
    def cancel(self, packet: bytes) -> None: ...


class ClientSession:
    """The state of one client connection; :meth:`run` serves it to the end."""

    def __init__(self, core: SessionHost, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.core = core
        self.reader, self.writer = reader, writer
        self.transport: asyncio.Transport = writer.transport  # type: ignore[assignment]
        self.pool: Pool | None = None
        self.server: ServerConnection | None = None
        self.pinned: str | None = None
        self.pending = 0
        self.open_batch = False
        self.status = b"I"
        self.ready = False
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.backend_key = (secrets.randbits(31), secrets.token_bytes(4))
        self.task: asyncio.Task[None] | None = None
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already counted and inspected
        self._batch_pin: tuple[str, str] | None = None
        self._borrowing: asyncio.Task[None] | None = None
        self._borrow_failure: bytes | None = None
        self._discard_error: bytes | None = None
        self._skip = 0
        self._held = b""  # the start of a server message not passed on yet
        self._watch = pinning.SessionWatch()
        self._mux = StatementMux(core.statements)
        self._ended = False
        self._done: asyncio.Future[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Log the client in, then serve its requests until it leaves."""
        try:
            if await asyncio.wait_for(client_login(self), LOGIN_TIMEOUT_S):
                self.ready = True
                self.core.session_ready(self)
                self._done = self.loop.create_future()
                leftover = bytes(getattr(self.reader, "_buffer", b""))
                at_eof = self.reader.at_eof()
                self.transport.set_protocol(_ClientProtocol(self))
                if leftover:
                    self.client_data(leftover)
                if at_eof:
                    self.end()
                await self._done
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
        if self._ended:
            return
        self._ended = True
        if self._borrowing is not None:
            self._borrowing.cancel()
        conn, self.server = self.server, None
        if conn is not None and self.pool is not None:
            conn.session = None
            if self.pinned or self.pending or self.open_batch or self.status != b"I":
                self.pool.discard(conn)
            else:
                self.pool.release(conn)
        self._mux.close()
        self.core.session_ended(self)
        self.transport.close()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def idle(self) -> bool:
        """Logged in, nothing in flight, not waiting for a connection: the idle clock runs."""
        return self.ready and self.pending <= 0 and self._borrowing is None

    def close_idle(self) -> None:
        """The idle client timeout fired: tell the client why, then end."""
        with contextlib.suppress(OSError, RuntimeError):
            self.transport.write(pg_wire.error_response(IDLE_TIMEOUT_MESSAGE, "57P05"))
        if self._done is not None:
            self.end()
        elif self.task is not None:
            self.task.cancel()

    # ------------------------------------------------------------ login

    # ------------------------------------------------------------ client to server

    def client_data(self, data: bytes) -> None:
        """Bytes from the client: cut them at Query/Sync and forward each batch."""
        self.last_active = self.loop.time()
        self._buf += data
        if self._borrowing is None:
            self._process()

    def _process(self) -> None:
        buf = self._buf
        n = len(buf)
        pos = start = 0
        pin = self._batch_pin
        extended = special = False
        unnamed = -1  # where the batch's last unnamed Parse starts
        has_names = bool(self._mux.names)
        watch = self._watch
        parses = closes = 0
        while n - pos >= 5:
            kind = buf[pos]
            length = _length(buf, pos + 1)[0]
            if not 4 <= length <= pg_wire.MAX_MESSAGE_BYTES:
                _log.info("RDS Proxy stand-in: invalid message length %d from a client", length)
                self.transport.write(pg_wire.error_response(
                    f"invalid message length {length}", "08P01"))
                self.end()
                return
            end = pos + 1 + length
            if end > n:
                break
            if kind == 88:  # X: Terminate; the database connection stays with the pool
                self._buf.clear()
                self.end()
                return
            if end > self._scanned:  # not yet counted (a batch resumed after a borrow is)
                if kind in (81, 69):  # Q, E
                    self.core.queries += 1
                if kind == 81 or kind == 80:  # Q, P
                    found = self._watch.message(kind, memoryview(buf)[pos + 5:end],
                                                self.pinned is None and pin is None)
                    pin = pin or found
                elif kind == 66 and watch.deferred and self.pinned is None and pin is None:
                    pin = watch.bind(memoryview(buf)[pos + 5:end])  # B of a set_config
                self._scanned = end
            # Named statements (Parse; Bind, Describe, Close of one) need translating, and
            # so does a use of the unnamed statement without its Parse in the batch.
            if kind == 80:
                parses += 1
                if length > 5 and buf[pos + 5]:
                    special = True
                else:
                    unnamed = pos
            elif kind == 67:
                closes += 1
                if length > 5 and buf[pos + 5] == 83 and (buf[pos + 6] == 0 or has_names):
                    special = True
            elif kind == 66 and length > 5:
                if buf[pos + 5] or (buf[pos + 6] == 0 and unnamed < 0) or (
                        has_names and buf[pos + 6]):
                    special = True
            elif kind == 68 and length > 5 and buf[pos + 5] == 83 and (
                    (buf[pos + 6] == 0 and unnamed < 0) or (has_names and buf[pos + 6])):
                special = True
            pos = end
            if kind in _SYNCS:
                if not self._send(buf, start, pos, False, pin, True, special, parses, closes,
                                  unnamed):
                    self._suspend(start, pin)
                    return
                if kind == 81:  # Q: PostgreSQL drops the unnamed statement there
                    self._mux.simple_query(self.server.statements if self.server else None)
                start, pin, extended, special, parses, closes = pos, None, False, False, 0, 0
                unnamed = -1
            elif kind in _EXTENDED:
                extended = True
        if start < pos and not self._send(buf, start, pos, extended, pin, False, special,
                                          parses, closes, unnamed):
            self._suspend(start, pin)
            return
        self._batch_pin = None
        del buf[:pos]
        self._scanned = max(0, self._scanned - pos)

    def _suspend(self, start: int, pin: tuple[str, str] | None) -> None:
        """A borrow must wait: keep the batch from ``start`` for when it is done."""
        del self._buf[:start]
        self._scanned = max(0, self._scanned - start)
        self._batch_pin = pin

    def _send(self, buf: bytearray, start: int, end: int, extended: bool,
              pin: tuple[str, str] | None, synced: bool, special: bool, parses: int,
              closes: int, unnamed: int) -> bool:
        """Forward ``buf[start:end]``; False when a borrow has to wait first.

        ``synced``: the batch ends with a Query/Sync/FunctionCall (one
        ReadyForQuery will answer it); ``extended``: it holds extended-protocol
        messages still waiting for their Sync (the connection must stay);
        ``special``: it names prepared statements (translated by
        :class:`.statements.StatementMux`), else it has ``parses`` Parse and
        ``closes`` Close messages, counted so that injected ones can be told apart,
        and its last unnamed Parse at ``unnamed`` (-1: none).
        """
        if self._discard_error is not None:  # a failed borrow: skip to the Sync
            if synced:
                self.transport.write(self._discard_error + pg_wire.ready_for_query())
                self._discard_error = None
            self._watch.clears = False
            return True
        server = self.server
        if server is None and not (synced or extended):
            return True  # a lone Flush with nothing in flight: nothing to borrow for
        if server is None:
            failure, self._borrow_failure = self._borrow_failure, None
            if failure is None:
                assert self.pool is not None
                conn = self.pool.try_borrow()
                if conn is None:
                    self._borrowing = self.loop.create_task(self._borrow())
                    self.transport.pause_reading()
                    return False
                server = self._attach(conn)
            else:
                self._watch.clears = False
                if synced:
                    self.transport.write(failure + pg_wire.ready_for_query())
                else:
                    self._discard_error = failure
                return True
        if pin is not None and self.pinned is None:
            self.pinned = pin[0]
            self.core.pinned(self, server, *pin)
        mux, cache = self._mux, server.statements
        assert cache is not None
        data: bytes | bytearray
        if special:
            data = mux.translate(buf, start, end, cache)
        else:
            # One copy (a slice of a bytearray, then bytes of it, would be two).
            data = bytes(buf) if start == 0 and end == len(buf) else bytes(buf[start:end])
            if not synced:  # a synced batch's counts end with it
                mux.open_parses += parses
                mux.open_closes += closes
            if unnamed >= 0:
                mux.parsed_unnamed(data, unnamed - start, cache)
        if synced:
            self.pending += 1
            self.open_batch = False
            mux.syncs_sent += 1
            if mux.open_parses or mux.open_closes:
                mux.open_parses = mux.open_closes = 0
        elif extended:
            self.open_batch = True
        server.transport.write(data)
        if self._watch.clears:
            self._watch.clears = False
            mux.forget_all(cache)
        return True

    async def _borrow(self) -> None:
        assert self.pool is not None
        try:
            self._attach(await self.pool.borrow())
        except Exception as exc:
            self._borrow_failure = self.borrow_error(exc)
        self._borrowing = None
        if self._ended:
            return
        self.transport.resume_reading()
        self._process()

    def borrow_error(self, exc: BaseException) -> bytes:
        """The ErrorResponse (severity ERROR) a client gets when no connection comes."""
        if isinstance(exc, BorrowTimeout):
            self.core.borrow_timeouts += 1
            return pg_wire.error_response(BORROW_TIMEOUT_MESSAGE, BORROW_TIMEOUT_SQLSTATE,
                                          "ERROR")
        if isinstance(exc, pg_wire.UpstreamRefused):
            fields = pg_wire.error_fields(exc.payload)
            return pg_wire.error_response(fields.get("M", str(exc)), fields.get("C", "08006"),
                                          "ERROR")
        return pg_wire.error_response(
            f"RDS Proxy stand-in cannot connect to the database: {exc or type(exc).__name__}",
            "08006", "ERROR")

    def _attach(self, conn: ServerConnection) -> ServerConnection:
        self.server = conn
        conn.session = self
        if conn.statements is None:
            conn.statements = ServerStatements(self.core.statements)
        # (The statement bookkeeping needs no reset: a connection is given back only
        # when every batch sent on it was answered, and its counters agree then.)
        self.status = b"I"
        self._skip, self._held = 0, b""
        return conn

    # ------------------------------------------------------------ server to client

    def server_data(self, data: bytes) -> None:
        """Server bytes to the client (a few dropped or rewritten); release at the end.

        Message headers are walked to find each ReadyForQuery and its status,
        and the ParseComplete/CloseComplete/ErrorResponse messages the
        statement bookkeeping (:class:`.statements.StatementMux`) answers for.
        Bytes go on unchanged unless one of those must be dropped or
        rewritten; a message start too short to judge is held back until the
        rest arrives.
        """
        skip = self._skip
        n = len(data)
        if skip >= n:  # inside a message already being passed on
            self._skip = skip - n
            self.transport.write(data)
            return
        if self._held:
            data = self._held + data
            n = len(data)
            self._held = b""
        self._skip = 0
        mux = self._mux
        errors = bool(mux.synthetic or mux.names)
        pieces: list[bytes] | None = None
        sent = 0  # data[sent:i] goes out as it came
        i = skip
        while i < n:  # walk the headers
            if n - i < 5:
                break
            end = i + 1 + _length(data, i + 1)[0]
            kind = data[i]
            if kind == 90:  # Z
                if end > n:
                    break
                self.pending -= 1
                self.status = data[i + 5:i + 6]
                mux.ready()
            elif kind == 49 or kind == 51:  # ParseComplete, CloseComplete: 5 bytes
                if not (mux.parse_acts or mux.close_acts):  # nothing to drop: count it
                    if kind == 49:
                        mux.parses_seen += 1
                    else:
                        mux.closes_seen += 1
                elif mux.parse_complete() if kind == 49 else mux.close_complete():
                    pieces = pieces if pieces is not None else []
                    pieces.append(data[sent:i])
                    sent = end
            elif kind == 69 and errors:  # E
                if end > n:
                    break
                replacement = mux.error(data[i + 5:end])
                if replacement is not None:
                    pieces = pieces if pieces is not None else []
                    pieces += (data[sent:i], replacement)
                    sent = end
            elif end > n:
                self._skip = end - n
                i = n
                break
            i = end
        if i < n:
            self._held = data[i:]
        if pieces is None:
            self.transport.write(data if i == n else data[:i])
        else:
            pieces.append(data[sent:i])
            self.transport.write(b"".join(pieces))
        self.last_active = self.loop.time()
        if (self.pending <= 0 and self.status == b"I" and not self.open_batch
                and self.pinned is None and not self._held and not self._skip):
            conn, self.server = self.server, None
            if conn is not None and self.pool is not None:
                conn.session = None
                self.pool.release(conn)

    def server_lost(self) -> None:
        """The server closed the connection: nothing of this session can go on."""
        conn = self.server
        _log.info("RDS Proxy stand-in: database connection [dbConnection=%d] closed by the "
                  "server; closing its client", conn.id if conn else 0)
        self.end()

    def server_paused(self, paused: bool) -> None:
        """The server reads slower than the client writes: stop reading the client."""
        if paused:
            self.transport.pause_reading()
        elif self._borrowing is None:
            self.transport.resume_reading()


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, session: ClientSession) -> None:
        self.session = session
        # The session's method itself, not a method calling it: one Python call less
        # per read (the event loop looks ``data_received`` up on the instance).
        self.data_received = session.client_data  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        self.session.client_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.end()

    def pause_writing(self) -> None:  # the client reads slower than the server answers
        server = self.session.server
        if server is not None:
            server.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        server = self.session.server
        if server is not None:
            server.transport.resume_reading()  # type: ignore[attr-defined]
