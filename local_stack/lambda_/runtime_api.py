"""The Lambda Runtime API, one listener per execution environment.

awslambdaric reads ``AWS_LAMBDA_RUNTIME_API=host:port`` and its Python init-error
path builds ``http.client.HTTPConnection(address)``, so no path prefix can tell
environments apart: each environment gets its own listening socket on
127.0.0.1, port 0, and the listener *is* the environment's identity. Nothing an
environment sends can name, or touch, another environment's invocation.

This is the hot path (two requests per invocation), so it is a bare
``asyncio.Protocol`` over ``httptools`` rather than aiohttp, and every answer is
written with ONE ``transport.write`` (headers and body together): written in two
parts, Nagle plus delayed ACK made a warm round trip 88 ms instead of 0.45 ms
(guide, measured). Malformed HTTP closes that connection and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Mapping
from http import HTTPStatus
from typing import Protocol

import httptools

log = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime"
_INVOCATION = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
_ERROR_TYPE_BYTES = ERROR_TYPE_HEADER.encode()


class RuntimeApiHandler(Protocol):
    """What the Runtime API asks of the emulator, per environment."""

    def on_next(self, conn: RuntimeConnection) -> None:
        """The runtime waits for its next event on ``conn`` (answer with ``send_event``)."""

    def on_response(self, conn: RuntimeConnection, request_id: str, body: bytes) -> int:
        """The handler's result; returns the HTTP status to answer (202 or 4xx)."""

    def on_error(self, conn: RuntimeConnection, request_id: str, body: bytes,
                 error_type: str | None) -> int:
        """The handler raised; returns the HTTP status to answer."""

    def on_init_error(self, conn: RuntimeConnection, body: bytes,
                      error_type: str | None) -> int:
        """Init failed (the runtime exits next); returns the HTTP status to answer."""

    def on_connection_lost(self, conn: RuntimeConnection) -> None:
        """A connection closed (while it may have had a pending ``/next``)."""


_ERROR_BODIES = {
    400: b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}',
    403: b'{"errorMessage":"State transition is not allowed","errorType":"InvalidStateTransition"}',
    404: b'{"errorMessage":"Not Found","errorType":"NotFound"}',
    405: b'{"errorMessage":"Method Not Allowed","errorType":"MethodNotAllowed"}',
}


def _status_answer(status: int) -> bytes:
    body = b'{"status":"OK"}' if status < 300 else _ERROR_BODIES.get(status, b"{}")
    return b"".join((f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode(),
                     b"Content-Type: application/json\r\nContent-Length: ",
                     str(len(body)).encode(), b"\r\n\r\n", body))


#: Every answer to a POST, made once: the 202 goes out on every warm invocation.
_STATUS_ANSWERS = {status: _status_answer(status) for status in (202, *_ERROR_BODIES)}


class RuntimeConnection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection from an environment's runtime."""

    def __init__(self, handler: RuntimeApiHandler, env: object) -> None:
        self.handler = handler
        #: The environment this listener belongs to (opaque here).
        self.env = env
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.waiting_next = False

    # ------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            log.warning("malformed Runtime API request; closing that connection")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.handler.on_connection_lost(self)
        self.waiting_next = False

    # ------------------------------------------------------- httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # libcurl sends ~8 headers per request; only one matters here.
        if len(name) == len(_ERROR_TYPE_BYTES) and name.lower() == _ERROR_TYPE_BYTES:
            self._headers[ERROR_TYPE_HEADER] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self._url.split(b"?", 1)[0].decode("latin-1")
        body = b"".join(self._body)
        try:
            self._route(method, path, body)
        except Exception:
            log.exception("Runtime API handler failed on %s %s", method, path)
            self.close()

    # ------------------------------------------------------- routing

    def _route(self, method: bytes, path: str, body: bytes) -> None:
        if path == f"{PREFIX}/invocation/next":
            if method != b"GET":
                self.send_status(405)
                return
            self.waiting_next = True
            self.handler.on_next(self)
            return
        if method != b"POST":
            self.send_status(405 if path.startswith(PREFIX) else 404)
            return
        error_type = self._headers.get(ERROR_TYPE_HEADER)
        if path == f"{PREFIX}/init/error":
            self.send_status(self.handler.on_init_error(self, body, error_type))
            return
        m = _INVOCATION.match(path)
        if m is None:
            self.send_status(404)
            return
        request_id, what = m.group(1), m.group(2)
        if what == "response":
            status = self.handler.on_response(self, request_id, body)
        else:
            status = self.handler.on_error(self, request_id, body, error_type)
        self.send_status(status)

    # ------------------------------------------------------- answers

    def send_event(self, request_id: str, payload: bytes, headers: Mapping[str, str]) -> bool:
        """Answer the pending ``/next`` with an event, in one write; False if it cannot."""
        if self.transport is None or self.transport.is_closing() or not self.waiting_next:
            return False
        self.waiting_next = False
        head = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                b"Lambda-Runtime-Aws-Request-Id: ", request_id.encode(), b"\r\n"]
        for name, value in headers.items():
            head += [name.encode(), b": ", value.encode("latin-1", "replace"), b"\r\n"]
        head += [b"Content-Length: ", str(len(payload)).encode(), b"\r\n\r\n", payload]
        self.transport.write(b"".join(head))
        return True

    def send_status(self, status: int) -> None:
        """Answer a POST with a status and a small JSON body, in one write."""
        if self.transport is None or self.transport.is_closing():
            return
        answer = _STATUS_ANSWERS.get(status)
        self.transport.write(answer if answer is not None else _status_answer(status))
        if not self.parser.should_keep_alive():
            self.transport.close()

    def close(self) -> None:
        """Drop this connection only."""
        if self.transport is not None:
            self.transport.close()


def bind(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a free port for one environment (synchronous, ~30 µs).

    Bound before the environment is forked so its port goes into the spawn
    request at once; a connection that arrives before :func:`serve` attaches
    waits in the backlog.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(8)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(handler: RuntimeApiHandler, env: object, sock: socket.socket) -> asyncio.Server:
    """Serve the Runtime API for ``env`` on a socket from :func:`bind`."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: RuntimeConnection(handler, env), sock=sock)
