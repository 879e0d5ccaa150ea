"""One client connection of the emulator's HTTP server: parse, dispatch, answer in order.

Each connection is a bare ``asyncio.Protocol`` fed by ``httptools``: a request
becomes a :class:`~.http_messages.Request` and a call of the handler, and its
answer takes a :class:`_Slot` in the connection's queue, so that pipelined
answers go out in request order however late each one comes. This is the
path every warm invocation crosses, so it makes no task, coroutine, timer or
syscall per request beyond the write of its answer; idle connections are
closed by the server's one periodic sweep (:class:`~.http_server.HttpServer`),
which reads ``last_active``, stamped once per read.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Protocol
from urllib.parse import unquote

import httptools

from connstorm.local_stack.lambda_.http_messages import (
    CONTINUE,
    SERVER_ERROR,
    Handler,
    Later,
    Request,
    Response,
    error_response,
    serialize,
)

log = logging.getLogger(__name__)

#: Request line plus headers, per request.
MAX_HEAD_BYTES = 64 * 1024
#: Past this many body bytes an oversize request is answered at once and the
#: connection closed, instead of reading the rest to keep the connection.
MAX_DISCARD_BYTES = 64 * 1024 * 1024
#: Answers owed on one connection before reading from it pauses.
MAX_PENDING = 64
#: How long a connection we close still reads, and drops, what its client sends.
LINGER_S = 2.0
#: A bigger read is parsed this much at a time, so that a pause takes effect
#: within it: one read can hold thousands of small pipelined requests.
FEED_BYTES = 16 * 1024

class _Oversize(Exception):
    """The request head is over MAX_HEAD_BYTES."""


class _Slot:
    """One request's place in its connection's answer queue."""

    __slots__ = ("continue_after", "head_only", "http_1_0", "keep_alive", "response")

    def __init__(self, head_only: bool, keep_alive: bool, http_1_0: bool = False) -> None:
        self.response: Response | None = None
        self.head_only = head_only
        self.keep_alive = keep_alive
        self.http_1_0 = http_1_0  # keep-alive must then be said (Connection: keep-alive)
        # A later pipelined request asked for 100 Continue while this answer was
        # owed: the interim answer goes right after this one, never before it.
        self.continue_after = False


class ConnectionHost(Protocol):
    """What a connection needs of its server (:class:`~.http_server.HttpServer`).

    Stated here, below the server, so that this module never imports the one that
    imports it: the server knows its connections, a connection only this much of it.
    """

    handler: Handler
    max_body_bytes: int
    port: int
    stopping: bool
    connections: set[_Connection]


class _Connection(asyncio.Protocol):
    """One client connection: parse, dispatch, answer in order."""

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.handler = server.handler
        self.clock = asyncio.get_running_loop().time
        # When the client last sent anything, or the idle sweep last saw an answer
        # owed: the sweep closes the connection once this is its keep-alive timeout old.
        self.last_active = self.clock()
        self.max_body = server.max_body_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.slots: collections.deque[_Slot] = collections.deque()
        self.closing = False  # no more requests are read (Connection: close, an error)
        self.paused = False  # MAX_PENDING answers owed
        self.write_paused = False  # the transport's buffer is full: the client is not reading
        self.reading = True
        self.backlog = b""  # read, but not parsed because reading paused
        self.remote = "127.0.0.1"
        self.local_port = 0
        # In a request head, or in a chunk's head (the last chunk's is the
        # trailer section); ``sections`` counts those begun on this connection.
        self.in_head = False
        self.sections = 0
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.head_size = 0
        self.head_reads = 0
        self.body_size = 0
        self.content_length = -1
        self.expect_continue = False
        self.oversize = False
        self.answered_early = False

    # ------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.remote = str(peer[0])
        self.local_port = self.server.port

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.clock()
        if len(data) > FEED_BYTES or self.backlog:
            self._feed_pieces(data)
            return
        in_head = self.in_head
        sections = self.sections
        body_size = self.body_size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The upgrade request was dispatched, to be answered with Connection:
            # close (on_message_complete); nothing after its head is HTTP.
            self.closing = True
            return
        except httptools.HttpParserError as exc:
            # Once closing (data after ``Connection: close``), nothing more is answered.
            if not self.closing:
                self._fail(431 if isinstance(exc.__context__, _Oversize) else 400)
            return
        if (in_head and self.in_head and sections == self.sections
                and body_size == self.body_size):
            # This whole read lies inside one request head or trailer section.
            # httptools buffers a header line until it ends, and on_header only
            # counts it then, so an endless line is bounded here (the read the
            # section began in is not counted).
            self.head_reads += len(data)
            if self.head_reads > MAX_HEAD_BYTES:
                self._fail(431)

    def _feed_pieces(self, data: bytes) -> None:
        """Parse a big read (after what was held back) a piece at a time, stopping
        between pieces once reading pauses; the rest waits in ``backlog``."""
        if self.backlog:
            data = self.backlog + data
            self.backlog = b""
        for start in range(0, len(data), FEED_BYTES):
            if self.closing:
                return
            if not self.reading:
                self.backlog = data[start:]
                return
            self.data_received(data[start:start + FEED_BYTES])

    def _drain_backlog(self) -> None:
        if self.backlog and self.reading and self.transport is not None:
            self.data_received(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.backlog = b""
        self.slots.clear()
        self.server.connections.discard(self)

    # ------------------------------------------------------- httptools callbacks

    def on_message_begin(self) -> None:
        self._reset()
        self.in_head = True
        self.sections += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > MAX_HEAD_BYTES:
            raise _Oversize

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_HEAD_BYTES:
            raise _Oversize
        key = name.decode("utf-8", "surrogateescape")
        if len(name) == 14 and key.lower() == "content-length":
            self.content_length = int(value) if value.isdigit() else -1
        elif len(name) == 6 and key.lower() == "expect":
            self.expect_continue = value.lower() == b"100-continue"
        self.headers.append((key, value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if not self.expect_continue or self.transport is None:
            return
        if self.parser.get_http_version() == "1.0":
            return  # an HTTP/1.0 client does not wait for 100 Continue (RFC 9110, 10.1.1)
        if self.content_length > self.max_body:
            # Answer now: the client has not sent the body and will not.
            self.oversize = True
            self.answered_early = True
            self.closing = True
            self._dispatch(keep_alive=False)
        elif self.slots:
            self.slots[-1].continue_after = True
        else:
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.oversize:
            if self.body_size > MAX_DISCARD_BYTES and not self.answered_early:
                self.answered_early = True
                self.closing = True
                self._dispatch(keep_alive=False)
            return
        if self.body_size > self.max_body:
            self.oversize = True
            self.body = []
            return
        self.body.append(body)

    def on_chunk_header(self) -> None:
        self.in_head = True
        self.sections += 1

    def on_chunk_complete(self) -> None:
        self.in_head = False

    def on_message_complete(self) -> None:
        if self.answered_early:
            return
        parser = self.parser
        # We speak only HTTP/1.1: an upgrade request is answered and the connection closed.
        keep_alive = parser.should_keep_alive() and not parser.should_upgrade()
        if not keep_alive:
            self.closing = True
        self._dispatch(keep_alive)

    # ------------------------------------------------------- dispatch and answers

    def _dispatch(self, keep_alive: bool) -> None:
        parser = self.parser
        method = parser.get_method().decode("ascii", "replace")
        raw_path, _, query = self.url.partition(b"?")
        path = raw_path.decode("utf-8", "surrogateescape")
        if "%" in path:
            path = unquote(path, errors="surrogateescape")
        version = parser.get_http_version()
        request = Request(method, path, query.partition(b"#")[0].decode("latin-1"),
                          self.headers, b"".join(self.body), self.remote,
                          version, self.local_port, self.oversize)
        slot = _Slot(method == "HEAD", keep_alive, version == "1.0")
        self.slots.append(slot)
        try:
            answer = self.handler(request)
        except Exception:
            log.exception("http: %s %s failed", method, path)
            answer = SERVER_ERROR
        if isinstance(answer, Response):
            slot.response = answer
            self._flush()
        elif isinstance(answer, Later):
            answer.future.add_done_callback(lambda fut: self._resolve(slot, answer, fut))
        else:
            # Left as it was, the slot would hold every later answer back for good.
            log.error("http: %s %s: the handler returned %r, not a Response or Later",
                      method, path, answer)
            slot.response = SERVER_ERROR
            self._flush()
        if len(self.slots) >= MAX_PENDING and not self.paused:
            self.paused = True
            self._read_or_not()

    def _resolve(self, slot: _Slot, later: Later, future: asyncio.Future[Any]) -> None:
        try:
            response = later.then(future)
            if not isinstance(response, Response):
                raise TypeError(f"then() returned {response!r}, not a Response")
            slot.response = response
        except asyncio.CancelledError:
            # Stopping cancels every invocation still running; a traceback per
            # request would bury the log, and nobody is there to read the answer.
            if self.server.stopping or self.transport is None:
                log.debug("http: an answer was cancelled: the server is stopping "
                          "or its client left")
            else:
                log.error("http: the future of an answer was cancelled")
            slot.response = SERVER_ERROR
        except Exception:
            log.exception("http: answering a request failed")
            slot.response = SERVER_ERROR
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        out: list[bytes] = []
        close = False
        slots = self.slots
        while slots and slots[0].response is not None:
            slot = slots.popleft()
            out.append(serialize(slot.response, slot.head_only,  # type: ignore[arg-type]
                                 slot.keep_alive, slot.http_1_0))
            if slot.continue_after and slot.keep_alive:
                out.append(CONTINUE)
            if not slot.keep_alive:
                close = True
                slots.clear()
                break
        if out:
            transport.write(b"".join(out) if len(out) > 1 else out[0])
        if close:
            self._linger(transport)
        elif self.paused and len(slots) < MAX_PENDING // 2:
            self.paused = False
            self._read_or_not()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close after the last answer without losing it.

        Closing a socket with unread data in it (the rest of a body or a head
        we refused, pipelined requests after ``Connection: close``) makes the
        kernel send a reset, and a reset can destroy the answer before the
        client reads it. So send our end-of-stream after the answer, drop what
        still comes (``closing``), and close when the client does, or after
        LINGER_S.
        """
        self.closing = True
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if not self.reading:
            self.reading = True
            transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def pause_writing(self) -> None:
        # A client that pipelines requests but does not read the answers would
        # otherwise grow the transport's buffer without bound: stop reading its
        # requests until it takes its answers.
        self.write_paused = True
        self._read_or_not()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._read_or_not()

    def _read_or_not(self) -> None:
        """Read requests only while few answers are owed and the client takes them."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        reading = not (self.paused or self.write_paused)
        if reading != self.reading:
            self.reading = reading
            if reading:
                transport.resume_reading()
                if self.backlog:  # parsed before anything read from now on
                    asyncio.get_running_loop().call_soon(self._drain_backlog)
            else:
                transport.pause_reading()

    def _fail(self, status: int) -> None:
        """A request we cannot parse: answer it (after those before it) and close."""
        self.closing = True
        slot = _Slot(False, False)
        slot.response = error_response(status)
        self.slots.append(slot)
        self._flush()
