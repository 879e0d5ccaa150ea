"""The proxy's database connections: opened on demand, borrowed per transaction, bounded.

One :class:`Pool` per (user, database), as RDS Proxy keeps one per secret. Its
size is ``max_connections_percent`` of what the role may open (see
:func:`pool_limit`); a borrower that finds every connection in use waits up to
the borrow timeout in FIFO order, then gets :class:`BorrowTimeout`.

A connection whose session may hold state (pinned, or given up mid-transaction)
is closed, never returned: RDS Proxy's promise is that no client sees another
client's session, and closing is the one reset that cannot miss anything.
Unpinned connections go back as they are: the proxy released them only at
ReadyForQuery ``I`` with no state-changing statement seen, so there is nothing
to reset (RDS Proxy does not run DISCARD ALL between transactions either).
A pooled connection counts as idle only after :data:`IDLE_AFTER_S` (five
minutes) without a borrower (AWS, "RDS Proxy connection considerations",
section "MaxIdleConnectionsPercent"); :meth:`Pool.trim`, which the proxy calls
every second, closes the idle ones beyond ``max_idle_connections_percent``,
the longest idle first. A burst's connections therefore stay open for five
minutes after it, as on AWS. Tests shorten the threshold (``idle_after_s``);
it is AWS's fixed value, not a setting of the proxy.

The pool's bound is a share of ``max_connections`` itself, as RDS computes it
(:func:`pool_limit`), so it can be more than the proxy's role may open. Then
the database refuses the proxy's own logins (``53300``, "remaining connection
slots are reserved" or "too many clients"): each refusal counts in
``DatabaseConnectionsSetupFailed`` (AWS, "Monitoring RDS Proxy metrics with
Amazon CloudWatch": "The number of database connection requests that
failed"), and the client waits, as for a full pool, for a connection to come
back within its borrow timeout. Only when the pool has no connection at all to
wait for does the client get the database's error at once.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from connstorm.capacity import proxy_pool_size
from connstorm.local_stack import pg_wire

if TYPE_CHECKING:
    from connstorm.local_stack.rds_proxy.statements import ServerStatements

_log = logging.getLogger(__name__)

#: Seconds without a borrower after which a pooled connection counts as idle (AWS's five minutes).
IDLE_AFTER_S = 300.0
#: ``application_name`` of the proxy's database connections in pg_stat_activity.
APPLICATION_NAME = "connstorm-rds-proxy"
_ids = itertools.count(1)


class BorrowTimeout(Exception):
    """No database connection became free within the borrow timeout."""


def pool_limit(max_connections: int, percent: int) -> int:
    """Connections the proxy may open: its MaxConnectionsPercent of max_connections (at least 1).

    The formula is :func:`connstorm.capacity.proxy_pool_size` (which says why),
    shared with ``connstorm capacity`` and a run's connection budget, so the
    planner, the verdict and the stand-in never disagree about the pool.
    """
    return proxy_pool_size(max_connections, percent)


class Borrower(Protocol):
    """What a connection's current borrower (a client session) is told."""

    def server_data(self, data: bytes) -> None: ...
    def server_lost(self) -> None: ...
    def server_paused(self, paused: bool) -> None: ...


@dataclass(eq=False)
class ServerConnection:
    """One logged-in database connection and what the server told us at login.

    After login its transport is handed to a :class:`_ServerProtocol`: the
    server's bytes go straight to :attr:`session`, the borrower, with no task
    or stream in between (the hot path). With no borrower, anything the server
    says (a FATAL before it closes, say) marks the connection dead.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    params: list[bytes] = field(default_factory=list)
    backend_pid: int = 0
    backend_key: bytes = b""
    id: int = field(default_factory=lambda: 3_000_000_000 + next(_ids))
    idle_since: float = 0.0
    session: Borrower | None = None
    dead: bool = False
    #: The named statements prepared on it (made by the first borrower).
    statements: ServerStatements | None = None

    #: The writer's transport, read once: every forwarded batch writes to it, and the
    #: stream's property costs a Python call each time (the hot path's profile).
    transport: asyncio.WriteTransport = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.transport = self.writer.transport  # type: ignore[assignment]

    def adopt(self) -> None:
        """Take the transport over from the login streams."""
        self.writer.transport.set_protocol(_ServerProtocol(self))

    def alive(self) -> bool:
        """False when the server closed it or spoke while it sat idle."""
        return not (self.dead or self.transport.is_closing())

    def close(self) -> None:
        """Terminate and close (no reuse)."""
        self.dead = True
        if self.statements is not None:
            self.statements.release_all()
        transport = self.writer.transport
        if not transport.is_closing():
            transport.write(pg_wire.message(b"X", b""))
            transport.close()


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        session = self.conn.session
        if session is not None:
            session.server_data(data)
        else:  # an idle connection has nothing to say unless it is going away
            self.conn.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.dead = True
        session = self.conn.session
        if session is not None:
            session.server_lost()

    def pause_writing(self) -> None:
        if self.conn.session is not None:
            self.conn.session.server_paused(True)

    def resume_writing(self) -> None:
        if self.conn.session is not None:
            self.conn.session.server_paused(False)


class Pool:
    """Database connections of one (user, database), bounded to ``limit``."""

    def __init__(self, *, host: str, port: int, user: str, database: str, password: str,
                 limit: int, idle_limit: int, borrow_timeout_s: float,
                 init_query: str | None = None, connect_timeout_s: float = 10.0,
                 idle_after_s: float = IDLE_AFTER_S) -> None:
        self.host, self.port = host, port
        self.user, self.database = user, database
        self._password = password
        self.limit = limit
        self.idle_limit = idle_limit
        self.idle_after_s = idle_after_s
        self.borrow_timeout_s = borrow_timeout_s
        self.init_query = init_query
        self.connect_timeout_s = connect_timeout_s
        self.idle: list[ServerConnection] = []
        self.opened = 0  # open or being opened
        self.borrowed = 0
        self._waiters: collections.deque[asyncio.Future[ServerConnection]] = collections.deque()
        #: The server's ParameterStatus messages, replayed to each new client.
        self.server_params: list[bytes] | None = None
        self.borrow_latencies: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=4096)
        #: CloudWatch's DatabaseConnectionRequests, ...SetupSucceeded, ...SetupFailed.
        self.setup_requests = self.setup_succeeded = self.setup_failed = 0

    # ------------------------------------------------------------ borrowing

    def try_borrow(self) -> ServerConnection | None:
        """An idle connection now, or None: then the caller awaits :meth:`borrow`."""
        if self._waiters and any(not w.done() for w in self._waiters):
            return None  # others wait already: no jumping the queue
        while self.idle:
            conn = self.idle.pop()
            if conn.alive():
                self.borrowed += 1
                self.borrow_latencies.append((time.monotonic(), 0.0))
                return conn
            self._forget(conn)
        return None

    async def borrow(self) -> ServerConnection:
        """A connection for one transaction; waits up to the borrow timeout."""
        started = time.monotonic()
        conn = await self._borrow()
        self.borrowed += 1
        now = time.monotonic()
        self.borrow_latencies.append((now, (now - started) * 1e6))
        return conn

    async def _borrow(self) -> ServerConnection:
        while self.idle:
            conn = self.idle.pop()
            if conn.alive():
                return conn
            self._forget(conn)
        if self.opened < self.limit:
            try:
                return await self._open()
            except pg_wire.UpstreamRefused as exc:
                if not self.opened or pg_wire.error_fields(exc.payload).get("C") != "53300":
                    raise
                # Out of slots for the proxy's role: wait for one of its connections.
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self.borrow_timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection in the same instant: give it to the next one.
                self.borrowed += 1
                self.release(waiter.result())
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise BorrowTimeout() from None
            raise

    def release(self, conn: ServerConnection) -> None:
        """Give back a clean connection: to the longest waiter, else to the idle list."""
        self.borrowed -= 1
        if not conn.alive():
            self._forget(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)  # its borrow() counts it borrowed again
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def discard(self, conn: ServerConnection, *, borrowed: bool = True) -> None:
        """Close a connection that may hold state; a waiter gets a fresh one."""
        if borrowed:
            self.borrowed -= 1
        conn.close()
        self._forget(conn)

    def _forget(self, conn: ServerConnection) -> None:
        conn.close()
        self.opened -= 1
        live = [w for w in self._waiters if not w.done()]
        if live and self.opened < self.limit:
            asyncio.get_running_loop().create_task(self._open_for_waiter())

    async def _open_for_waiter(self) -> None:
        try:
            conn = await self._open()
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            return
        self.borrowed += 1  # release() below takes it back off
        self.release(conn)

    # ------------------------------------------------------------ opening

    async def _open(self) -> ServerConnection:
        self.opened += 1
        self.setup_requests += 1
        try:
            conn = await self._login()
        except BaseException as exc:
            self.opened -= 1
            self.setup_failed += 1
            _log.warning("RDS Proxy stand-in: the database refused a connection of the proxy "
                         "(%s) with %d open; DatabaseConnectionsSetupFailed %d", exc or
                         type(exc).__name__, self.opened, self.setup_failed)
            raise
        self.setup_succeeded += 1
        return conn

    async def _login(self) -> ServerConnection:
        params = {"user": self.user, "database": self.database,
                  "application_name": APPLICATION_NAME}
        reader, writer, _ = await pg_wire.login_upstream(
            self.host, self.port, params, self._password, self.connect_timeout_s)
        conn = ServerConnection(reader, writer)
        try:
            while True:
                kind, payload = await asyncio.wait_for(pg_wire.read_message(reader),
                                                       self.connect_timeout_s)
                if kind == b"S":
                    conn.params.append(pg_wire.message(kind, payload))
                elif kind == b"K":
                    conn.backend_pid = pg_wire.length_of(payload)
                    conn.backend_key = payload[4:]
                elif kind == b"E":
                    raise pg_wire.UpstreamRefused(payload)
                elif kind == b"Z":
                    break
            if self.init_query:
                await self._run(conn, self.init_query)
        except BaseException:
            writer.close()
            raise
        conn.adopt()
        self.server_params = conn.params
        return conn

    async def _run(self, conn: ServerConnection, sql: str) -> None:
        conn.writer.write(pg_wire.message(b"Q", sql.encode() + b"\0"))
        error: bytes | None = None
        while True:
            kind, payload = await asyncio.wait_for(pg_wire.read_message(conn.reader),
                                                   self.connect_timeout_s)
            if kind == b"E":
                error = payload
            elif kind == b"Z":
                break
        if error is not None:
            raise pg_wire.UpstreamRefused(error)

    # ------------------------------------------------------------ housekeeping

    def trim(self, now: float | None = None) -> int:
        """Forget dead idle connections; close the idle ones beyond the idle limit.

        Idle means unborrowed for at least ``idle_after_s``; the longest idle go first.
        """
        for conn in [c for c in self.idle if not c.alive()]:
            self.idle.remove(conn)
            self._forget(conn)
        now = time.monotonic() if now is None else now
        idle = [c for c in self.idle if now - c.idle_since >= self.idle_after_s]
        excess = len(idle) - self.idle_limit
        if excess <= 0:
            return 0
        idle.sort(key=lambda c: c.idle_since)
        for conn in idle[:excess]:
            self.idle.remove(conn)
            self._forget(conn)
        return excess

    def close_all(self) -> None:
        """Close every idle connection (the proxy is stopping)."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()
