"""The stand-in's state under RDS Proxy's CloudWatch metric names, and where to read it.

A snapshot is a dict keyed by the names CloudWatch uses for a proxy
(namespace ``AWS/RDS``, dimension ``ProxyName``), so a local run and a live
run chart the same series:

=============================================  ==========================================
``ClientConnections``                          client connections logged in now
``DatabaseConnections``                        database connections open (or opening)
``DatabaseConnectionsCurrentlyBorrowed``       of those, lent to a client now
``DatabaseConnectionsCurrentlyInTransaction``  lent and inside a transaction block
``DatabaseConnectionsCurrentlySessionPinned``  lent for good to a pinned client
``DatabaseConnectionsBorrowLatency``           mean µs to borrow, over the last 5 s
``ClientConnectionsSetupFailedAuth``           failed client logins (cumulative)
``ClientConnectionsSetupSucceeded``            client logins (cumulative)
``QueryRequests``                              queries received (cumulative)
``MaxDatabaseConnectionsAllowed``              the pool's bound
=============================================  ==========================================

plus connstorm's own ``BorrowTimeouts`` and ``IdleClientsClosed`` (cumulative)
and ``pin_reasons`` (reason -> ``{"count", "sample"}``, a sample statement
each). The names are :mod:`connstorm.metric_names`' (AWS RDS User Guide,
"Monitoring RDS Proxy metrics with Amazon CloudWatch"). CloudWatch sums
the cumulative ones per minute; a collector takes differences.

The snapshot is served as JSON at ``GET /metrics`` by a tiny HTTP listener on
127.0.0.1 (:class:`MetricsEndpoint`), so a collector reads it the same way
whether the proxy runs in the stack's process or its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

#: Window of DatabaseConnectionsBorrowLatency.
LATENCY_WINDOW_S = 5.0


class MetricsEndpoint:
    """``GET /metrics`` -> the snapshot as JSON; anything else 404. Loopback only."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``port`` of ``host`` (0: a free one)."""
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if request.startswith(b"GET ") and path.split(b"?")[0] == b"/metrics":
                body = json.dumps(self._snapshot()).encode()
                status = b"200 OK"
            else:
                body, status = b'{"error": "not found"}', b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


def mean_recent(samples: Any, now: float, window_s: float = LATENCY_WINDOW_S) -> float:
    """Mean of the values of ``(time, value)`` pairs newer than ``now - window_s``; 0 if none."""
    recent = [v for t, v in samples if t >= now - window_s]
    return round(sum(recent) / len(recent), 1) if recent else 0.0
