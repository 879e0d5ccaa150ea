"""The emulator's public HTTP/1.1 listener: a small server on ``httptools``.

The API Gateway front, the Invoke API and ``/_connstorm/*`` all answer on one
port. Every warm invocation crosses this listener, and on a 2-core machine the
emulator process is the serial part of each invocation. aiohttp spent about a
third of that process's CPU per invocation on a task, a ``Request``, a
``Response`` and their header multidicts (BENCHMARKS.md, "Warm invocations").
So each connection is a bare ``asyncio.Protocol`` (:mod:`.http_connection`),
like the Runtime API's. A handler answers at once with a :class:`Response`, or
later with a :class:`Later`: a future plus the function that turns its result
into a response (:mod:`.http_messages`). No coroutine or task is made per
request.

What HTTP/1.1 asks of a server, and nothing more:

- keep-alive and pipelining: answers go out in request order, and reading
  pauses while ``MAX_PENDING`` answers are owed on one connection, or while
  the client does not read its answers (the transport's buffer is full); an
  upgrade request is answered, and its connection closed; an HTTP/1.0 client
  that asks for keep-alive gets ``Connection: keep-alive`` and keeps its
  connection;
- a connection idle for ``keepalive_timeout_s`` (no answer owed, nothing
  received) is closed, by one sweep per server every few seconds rather than a
  timer per connection or request;
- bodies with Content-Length or chunked, ``Expect: 100-continue``;
- a body over ``max_body_bytes`` is read and dropped, and the handler gets
  ``Request.oversize`` so that it can answer its own 413. A body that goes on
  past ``MAX_DISCARD_BYTES`` gets that answer at once, and the connection closes;
- request heads (or trailers) over 64 KB get 431; malformed requests get 400,
  and that connection closes: after its last answer the server half-closes and
  drops what still comes, so that a reset does not destroy the answer;
- ``HEAD`` answers carry no body; ``Date`` and ``Content-Length`` are always
  set by the server, except that 1xx, 204 and 304 answers have neither body
  nor Content-Length.

A handler that raises, or whose future fails, yields a 500 and a log line
with the exception; an answer cancelled because the server is stopping yields
one DEBUG line. Nothing a client sends can stop the server.

Example::

    server = HttpServer(lambda request: Response(200, b"hi"), max_body_bytes=6 * 2**20)
    port = await server.start()  # http://127.0.0.1:<port>/
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import logging

from connstorm.local_stack.lambda_.http_connection import (
    FEED_BYTES,
    LINGER_S,
    MAX_DISCARD_BYTES,
    MAX_HEAD_BYTES,
    MAX_PENDING,
    _Connection,
)
from connstorm.local_stack.lambda_.http_messages import Handler, Later, Request, Response

__all__ = ["FEED_BYTES", "KEEPALIVE_TIMEOUT_S", "LINGER_S", "MAX_DISCARD_BYTES",
           "MAX_HEAD_BYTES", "MAX_PENDING", "SWEEP_S", "Handler", "HttpServer", "Later",
           "Request", "Response"]

log = logging.getLogger(__name__)

#: Idle keep-alive connections are closed after this long (nginx's default is
#: 75 s; API Gateway and load balancers use 60-350 s).
KEEPALIVE_TIMEOUT_S = 75.0
#: The idle sweep runs this often at most, more often for a short timeout, so
#: that an idle connection closes between its timeout and about 1.25 times it.
SWEEP_S = 5.0


class HttpServer:
    """Serves ``handler`` on one listening socket; ``start()`` returns the port.

    ``keepalive_timeout_s``: how long a connection may stay idle (no answer
    owed, nothing received) before the server closes it.
    """

    def __init__(self, handler: Handler, *, max_body_bytes: int,
                 keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S) -> None:
        if not keepalive_timeout_s > 0:
            raise ValueError(f"keepalive_timeout_s must be positive, not {keepalive_timeout_s!r}")
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout_s = keepalive_timeout_s
        self.sweep_s = min(SWEEP_S, keepalive_timeout_s / 4)
        self.connections: set[_Connection] = set()
        self.port = 0
        #: Set by ``stop()``: answers cancelled from then on are expected, not failures.
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, *,
                    backlog: int = 1024) -> int:
        """Listen on ``host:port`` (0: a free port); raises OSError if it is taken."""
        loop = asyncio.get_running_loop()
        self.stopping = False
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                backlog=backlog)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._sweep_timer = loop.call_later(self.sweep_s, self._sweep)
        return self.port

    def _sweep(self) -> None:
        """Close connections idle for ``keepalive_timeout_s``; runs every ``sweep_s``.

        One timer per server, instead of one per connection or request, keeps
        the request path free of timers. A connection that owes an answer is
        busy however long its invocation runs: the sweep stamps it, so that once
        answered it gets a whole timeout (less one sweep) to send its next request.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        oldest = now - self.keepalive_timeout_s
        idle = []
        for conn in self.connections:
            if conn.slots:
                conn.last_active = now
            elif conn.last_active <= oldest and not conn.closing:
                idle.append(conn)
        for conn in idle:
            if conn.transport is not None:
                log.debug("http: closing a connection from %s idle for %.0f s",
                          conn.remote, now - conn.last_active)
                conn.closing = True
                conn.transport.close()
        self._sweep_timer = loop.call_later(self.sweep_s, self._sweep)

    async def stop(self) -> None:
        """Stop listening and close every connection (answers still owed are dropped)."""
        self.stopping = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
