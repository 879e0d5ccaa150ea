"""What the emulator's HTTP server exchanges with handlers, and its wire form.

A handler gets a :class:`Request` and answers at once with a :class:`Response`,
or later with a :class:`Later`: a future plus the function that turns its
result into a response, so that no coroutine or task is made per request.
:func:`serialize` writes a response's head the way the server promises it:
the handler's hop-by-hop headers are replaced by the server's own
(``Content-Length``, ``Date``, ``Connection``), and 1xx, 204 and 304 answers
carry neither body nor Content-Length.

These types and the wire form live apart from the connection protocol
(:mod:`.http_server`), which re-exports the types: they are what handlers see,
while the protocol is what clients see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

#: The interim answer to ``Expect: 100-continue``.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "date",
                         "keep-alive"})


@dataclass(slots=True)
class Request:
    """One HTTP request, as a handler sees it.

    ``path`` is percent-decoded; ``query_string`` is as sent (without ``?``).
    ``headers`` holds every header line in order, names as sent (decoded as
    UTF-8, with undecodable bytes kept as surrogates). ``oversize`` means that
    the body went over the server's limit and was dropped (``body`` is empty).
    """

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    remote: str = "127.0.0.1"
    version: str = "1.1"
    local_port: int = 0
    oversize: bool = False

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header, matched case-insensitively."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default


@dataclass(slots=True)
class Response:
    """An answer: status, headers (Content-Length and Date are the server's), body."""

    status: int
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()


@dataclass(slots=True)
class Later:
    """An answer still to come: ``then(future)`` makes the response once ``future`` is done."""

    future: asyncio.Future[Any]
    then: Callable[[asyncio.Future[Any]], Response]


Handler = Callable[[Request], "Response | Later"]

#: What a handler that fails (raises, returns junk, or whose future fails) answers.
SERVER_ERROR = Response(500, b'{"message":"Internal Server Error"}',
                        (("Content-Type", "application/json"),))


def phrase(status: int) -> str:
    """The reason phrase of ``status`` ("Unknown" for a status HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_response(status: int) -> Response:
    """A JSON error answer the server makes itself (400, 431), API Gateway style."""
    return Response(status, f'{{"message":"{phrase(status)}"}}'.encode(),
                    (("Content-Type", "application/json"),))


#: status -> (status line, whether answers with it carry content), made once per status.
_status_lines: dict[int, tuple[str, bool]] = {}


def _status_line(status: int) -> tuple[str, bool]:
    # 1xx, 204 and 304 answers end at their head: a body sent with one would be
    # read as the next answer, and a Content-Length on them is wrong (RFC 9110, 8.6).
    line = (f"HTTP/1.1 {status} {phrase(status)}\r\n",
            not (status < 200 or status == 204 or status == 304))
    _status_lines[status] = line
    return line


# The Date header changes once a second: formatted once per second, not per answer.
_date = ["", -1]


def _http_date() -> str:
    now = int(time.time())
    if _date[1] != now:
        _date[0], _date[1] = formatdate(now, usegmt=True), now
    return str(_date[0])


def serialize(response: Response, head_only: bool, keep_alive: bool,
              http_1_0: bool = False) -> bytes:
    """The bytes of one answer.

    ``head_only`` (a HEAD request) leaves the body out but keeps its length;
    ``keep_alive`` false adds ``Connection: close``. An HTTP/1.0 client keeps a
    connection only when told so, hence ``Connection: keep-alive`` for
    ``http_1_0`` answers that keep it (HTTP/1.1 keeps by default).
    """
    status = response.status
    body = response.body
    start, content = _status_lines.get(status) or _status_line(status)
    lines = [start]
    for name, value in response.headers:
        if name.lower() not in _HOP_BY_HOP:
            lines.append(f"{name}: {value}\r\n")
    if content:
        lines.append(f"Content-Length: {len(body)}\r\nDate: {_http_date()}\r\n")
    else:
        lines.append(f"Date: {_http_date()}\r\n")
        body = b""
    if not keep_alive:
        lines.append("Connection: close\r\n")
    elif http_1_0:
        lines.append("Connection: keep-alive\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("utf-8", "surrogateescape")
    return head if head_only or not body else head + body
