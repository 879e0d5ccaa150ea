"""A loopback TCP proxy that adds latency or stalls: the network between handlers and database.

The stack puts one in front of the database the handlers use (PostgreSQL, or
PgBouncer when they go through it) when the scenario's ``[[timeline]]`` has a
``network_latency`` action, and hands the handlers its port instead of the
server's. Outside a fault it forwards bytes as they come.

:meth:`TcpProxy.impair` starts a window of ``seconds`` during which every chunk
read, in either direction, is held ``ms`` milliseconds before it is written on
(one-way delay; a query's round trip gets twice that). When ``ms`` reaches the
window's length the window is a **full stall**: nothing moves until it ends,
then everything held is delivered in order, as after a network partition that
heals before TCP gives up. Order is kept per direction: a chunk never overtakes
one read before it.

It runs an asyncio loop in a thread of its own, so the synchronous stack (and
the timeline runner) can own it like any server. It binds 127.0.0.1 only and
connects only to the upstream it was given.

>>> with TcpProxy("127.0.0.1", pg.port) as proxy:
...     proxy.impair(ms=200, seconds=5)   # the next 5 s: +200 ms each way
...     psycopg.connect(host=proxy.host, port=proxy.port, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable
from typing import TypeVar

from connstorm.local_stack.ports import HOST
from connstorm.local_stack.resource import Resource

log = logging.getLogger(__name__)

T = TypeVar("T")
_CHUNK = 64 * 1024
#: How often held data checks whether the fault was cleared early.
_RECHECK_S = 0.05


class TcpProxy(Resource):
    """Forwards ``HOST:port`` to ``upstream_host:upstream_port``; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        #: (window start, window end, delay s) in time.monotonic(); None outside a fault.
        self._window: tuple[float, float, float] | None = None
        #: Connections accepted so far, and open now.
        self.accepted = 0
        self.open_connections = 0

    @property
    def host(self) -> str:
        """Always 127.0.0.1."""
        return HOST

    @property
    def port(self) -> int:
        """The port clients connect to."""
        if self._port is None:
            raise RuntimeError("TcpProxy not started")
        return self._port

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the loop thread and listen; returns once the port is bound."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, HOST,
                                                       self._requested_port))
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("tcp proxy %s:%d -> %s:%d", HOST, self._port, self.upstream_host,
                 self.upstream_port)

    def stop(self) -> None:
        """Close the listener and every proxied connection, end the thread. Idempotent."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if not loop.is_running():
            loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _call(self, coro: Awaitable[T]) -> T:
        assert self._loop is not None

        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # ------------------------------------------------------------ faults

    def impair(self, *, ms: float, seconds: float) -> None:
        """For ``seconds`` from now: hold each chunk ``ms`` ms (a stall when ms >= the window)."""
        start = time.monotonic()
        self._window = (start, start + seconds, ms / 1000.0)

    def clear(self) -> None:
        """End any latency or stall now; what is held is delivered at once, in order."""
        self._window = None

    def _due(self, now: float) -> float:
        """When a chunk read ``now`` may be written on."""
        window = self._window
        if window is None or now >= window[1]:
            return now
        start, end, delay = window
        if delay >= end - start:
            return end  # a stall: everything waits for the end of the window
        return now + delay

    # ------------------------------------------------------------ forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host,
                                                                 self.upstream_port)
        except OSError as exc:
            log.debug("tcp proxy: upstream refused: %s", exc)
            writer.close()
            return
        self.open_connections += 1
        tasks = [asyncio.ensure_future(self._pump(reader, up_writer)),
                 asyncio.ensure_future(self._pump(up_reader, writer))]
        self._pumps.update(tasks)
        try:
            # One side closing ends both: a half-open database connection helps no one.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pumps.difference_update(tasks)
            for w in (writer, up_writer):
                w.close()
            self.open_connections -= 1

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; each chunk leaves at its due time, never before an earlier one."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, writer))
        try:
            last_due = 0.0
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                last_due = max(last_due, self._due(time.monotonic()))
                queue.put_nowait((last_due, data))
            queue.put_nowait((last_due, b""))
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]],
                    writer: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            # Short naps, not one long sleep: clear() must release held data at once.
            while self._window is not None and (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(min(wait, _RECHECK_S))
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
