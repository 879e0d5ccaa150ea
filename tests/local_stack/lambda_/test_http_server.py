"""The emulator's HTTP/1.1 listener (``http_server.py``) over real sockets on 127.0.0.1.

Each test runs the real :class:`HttpServer` on its own event loop in a thread,
on plain asyncio and on uvloop (what the emulator process runs), with a small
handler written in the test, and talks to it with ``http.client`` or a raw
socket, so that what goes over the wire (pipelined answers, ``100 Continue``,
connection closes) is what is asserted. Waits are bounded; nothing is timed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO, TypeVar

import pytest
import uvloop

from connstorm.local_stack.lambda_ import http_connection
from connstorm.local_stack.lambda_.http_server import (
    FEED_BYTES,
    KEEPALIVE_TIMEOUT_S,
    MAX_HEAD_BYTES,
    MAX_PENDING,
    Handler,
    HttpServer,
    Later,
    Request,
    Response,
)

T = TypeVar("T")

#: Small, so that oversize bodies are cheap to send.
MAX_BODY = 1024
#: Every socket read and every wait for the server's thread is bounded by this.
WAIT_S = 5.0


class _Served:
    """An HttpServer on its own loop in a thread; ``call`` runs code on that loop."""

    def __init__(self, handler: Handler, loop_kind: str, max_body_bytes: int,
                 keepalive_timeout_s: float) -> None:
        self.loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
        self.server = HttpServer(handler, max_body_bytes=max_body_bytes,
                                 keepalive_timeout_s=keepalive_timeout_s)
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-http-server",
                                       daemon=True)
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        self.port = self.run(self.server.start())

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT_S)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (where handlers and futures live)."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def go() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)
        self.loop.call_soon_threadsafe(go)
        return done.result(WAIT_S)

    def stop(self) -> None:
        if self.loop.is_running():
            self.run(self.server.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT_S)
        self.loop.close()

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_S)

    def client(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S)

    def connection_count(self) -> int:
        return self.call(lambda: len(self.server.connections))

    def wait(self, check: Callable[[], object], what: str) -> None:
        """Poll ``check`` on the server's loop until true; fail after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while not self.call(check):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")
            time.sleep(0.005)


Serve = Callable[..., _Served]


@pytest.fixture(params=["asyncio", "uvloop"])
def serve(request: pytest.FixtureRequest) -> Iterator[Serve]:
    """Start servers for ``handler``; all of them are stopped after the test."""
    started: list[_Served] = []

    def make(handler: Handler, max_body_bytes: int = MAX_BODY,
             keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S) -> _Served:
        served = _Served(handler, request.param, max_body_bytes, keepalive_timeout_s)
        started.append(served)
        served.start()
        return served
    yield make
    for served in started:
        served.stop()


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _read_answer(stream: BinaryIO, head_only: bool = False) -> _Answer:
    """One answer off a connection: status line, headers, Content-Length bytes of body."""
    line = stream.readline()
    if not line:
        raise EOFError("the server closed the connection instead of answering")
    version, status, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    assert version == "HTTP/1.1"
    headers = []
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("utf-8", "surrogateescape").partition(":")
        headers.append((name, value.strip()))
    answer = _Answer(int(status), headers)
    if answer.status in (204, 304):
        # No content, ever: a Content-Length would be wrong (RFC 9110, 8.6).
        assert answer.headers_named("Content-Length") == [], headers
        assert len(answer.headers_named("Date")) == 1, headers
    elif answer.status >= 200:
        # The server promises both on every other final answer.
        assert len(answer.headers_named("Content-Length")) == 1, headers
        assert len(answer.headers_named("Date")) == 1, headers
        if not head_only:
            answer.body = stream.read(int(answer.header("Content-Length") or 0))
    return answer


def _closed(stream: BinaryIO) -> bool:
    """True when the server closed the connection (EOF); a socket timeout fails the test."""
    try:
        return stream.read(1) == b""
    except ConnectionResetError:
        return True


def _request(method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes = b"", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _readable(sock: socket.socket) -> bool:
    """Whether the server has answered (or closed) yet, without waiting."""
    return bool(select.select([sock], [], [], 0)[0])


def _echo(request: Request) -> Response:
    """Answers with what it got: method, path and body."""
    return Response(200, f"{request.method} {request.path} ".encode("utf-8", "surrogateescape")
                    + request.body,
                    (("Content-Type", "text/plain"),))


def _slow_or_echo(pending: list[asyncio.Future[bytes]]) -> Handler:
    """``/slow`` answers Later, with what its future (kept in ``pending``) is given;
    anything else is echoed at once."""
    def handler(request: Request) -> Response | Later:
        if request.path == "/slow":
            future = asyncio.get_running_loop().create_future()
            pending.append(future)
            return Later(future, lambda fut: Response(200, fut.result()))
        return _echo(request)
    return handler


@dataclass
class _Recorder:
    """A handler that records every request and answers like ``_echo``."""

    requests: list[Request] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        if request.oversize:
            return Response(413, b"too big")
        return _echo(request)


# ---------------------------------------------------------------- keep-alive


def test_http_server_keep_alive_serves_several_requests_on_one_connection(serve: Serve) -> None:
    served = serve(_echo)
    conn = served.client()
    try:
        conn.request("GET", "/one")
        assert conn.getresponse().read() == b"GET /one "
        sock = conn.sock
        for n in range(3):
            conn.request("POST", f"/n{n}", body=b"x" * n)
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, f"POST /n{n} ".encode() + b"x" * n)
            assert resp.getheader("Connection") is None
            assert conn.sock is sock  # http.client reconnects if the server closed
    finally:
        conn.close()


def test_http_server_http_1_0_without_keep_alive_closes(serve: Serve) -> None:
    served = serve(_echo)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/old", version="1.0"))
        answer = _read_answer(stream)
        assert (answer.status, answer.body) == (200, b"GET /old ")
        assert answer.header("Connection") == "close"
        assert _closed(stream)


def test_http_server_http_1_0_with_keep_alive_stays_open(serve: Serve) -> None:
    # GIVEN an HTTP/1.0 client that asks for keep-alive (ab -k): it closes unless told
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        for path in ("/a", "/b"):
            sock.sendall(_request("GET", path, {"Connection": "keep-alive"}, version="1.0"))
            # THEN each answer says keep-alive, and the same connection serves the next
            answer = _read_answer(stream)
            assert (answer.body, answer.header("Connection")) == (
                f"GET {path} ".encode(), "keep-alive")
        sock.sendall(_request("HEAD", "/c", {"Connection": "Keep-Alive"}, version="1.0")
                     + _request("GET", "/last", version="1.0"))
        assert _read_answer(stream, head_only=True).header("Connection") == "keep-alive"
        # and a request that does not ask for it is the last
        assert _read_answer(stream).header("Connection") == "close"
        assert _closed(stream)
    assert [(r.path, r.version) for r in recorder.requests] == [
        ("/a", "1.0"), ("/b", "1.0"), ("/c", "1.0"), ("/last", "1.0")]


def test_http_server_idle_keep_alive_connection_closed_after_timeout(serve: Serve) -> None:
    # GIVEN a server with a tiny keep-alive timeout, and a client that goes quiet
    served = serve(_echo, keepalive_timeout_s=0.5)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/"))
        answer = _read_answer(stream)
        assert (answer.status, answer.header("Connection")) == (200, None)
        # THEN the server closes the connection without a word (bounded by WAIT_S)
        assert stream.read() == b""
    served.wait(lambda: not served.server.connections, "the idle connection gone")


def test_http_server_connection_owing_an_answer_is_not_idle(serve: Serve) -> None:
    # GIVEN an answer owed for several keep-alive timeouts (a long invocation)
    # Long enough that the client's next request comes well within it on a busy machine.
    timeout_s = 0.5
    pending: list[asyncio.Future[bytes]] = []
    handler = _slow_or_echo(pending)
    served = serve(handler, keepalive_timeout_s=timeout_s)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/slow"))
        served.wait(lambda: pending, "the request handled")
        start = served.call(served.loop.time)
        served.wait(lambda: served.loop.time() > start + 3 * timeout_s,
                    "three keep-alive timeouts")
        # THEN the connection is still there, gets its answer, and serves the next
        assert served.connection_count() == 1
        served.call(lambda: pending[0].set_result(b"at last"))
        assert _read_answer(stream).body == b"at last"
        # and what the client sends stamps it active (nothing is owed here, so
        # the sweep cannot have stamped it)
        before = served.call(served.loop.time)
        sock.sendall(_request("GET", "/next"))
        assert _read_answer(stream).body == b"GET /next "
        assert served.call(lambda: [c.last_active >= before for c in served.server.connections]
                           ) == [True]


def test_http_server_keepalive_timeout_must_be_positive() -> None:
    assert HttpServer(_echo, max_body_bytes=MAX_BODY).keepalive_timeout_s == 75.0
    with pytest.raises(ValueError, match="keepalive_timeout_s"):
        HttpServer(_echo, max_body_bytes=MAX_BODY, keepalive_timeout_s=0)


def test_http_server_connection_close_closes_after_the_answer(serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        # A request pipelined after the closing one is neither handled nor answered.
        sock.sendall(_request("GET", "/last", {"Connection": "close"})
                     + _request("GET", "/after"))
        answer = _read_answer(stream)
        assert (answer.status, answer.body) == (200, b"GET /last ")
        assert answer.header("Connection") == "close"
        assert _closed(stream)
    assert [r.path for r in recorder.requests] == ["/last"]


@pytest.mark.parametrize("closing", [
    _request("GET", "/last", {"Connection": "close"}),
    b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
], ids=["connection-close", "malformed"])
def test_http_server_answer_survives_data_after_it(serve: Serve, closing: bytes) -> None:
    # GIVEN a client that sends more after a request that ends the connection
    served = serve(_echo)
    with served.connect() as sock:
        sock.sendall(closing + b"x" * 200_000)
        sock.shutdown(socket.SHUT_WR)
        # THEN its answer is not lost to a reset: the whole answer, then the end
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 ")
    assert received.endswith(b"GET /last " if b"close" in closing else b'"Bad Request"}')


# ---------------------------------------------------------------- pipelining


def test_http_server_pipelined_answers_keep_request_order(serve: Serve) -> None:
    # GIVEN /slow answers Later, resolved only once /fast has answered at once
    pending: list[asyncio.Future[bytes]] = []

    def handler(request: Request) -> Response | Later:
        if request.path == "/slow":
            future = asyncio.get_running_loop().create_future()
            pending.append(future)
            return Later(future, lambda fut: Response(200, b"slow:" + fut.result()))
        if pending:
            asyncio.get_running_loop().call_soon(pending.pop().set_result, b"done")
        return _echo(request)
    served = serve(handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        # WHEN three requests go in one write
        sock.sendall(_request("GET", "/slow") + _request("GET", "/fast")
                     + _request("POST", "/third", body=b"3"))
        # THEN the answers come in request order
        assert [_read_answer(stream).body for _ in range(3)] == [
            b"slow:done", b"GET /fast ", b"POST /third 3"]


def test_http_server_more_than_max_pending_pipelined_all_answered(serve: Serve) -> None:
    # GIVEN a handler that holds its answers until MAX_PENDING are owed (so reading
    # must pause) and then releases them together
    count = 4 * MAX_PENDING
    held: list[asyncio.Future[None]] = []
    paused_when_full: list[bool] = []
    served: _Served

    def release(batch: list[asyncio.Future[None]]) -> None:
        paused_when_full.append(all(c.paused for c in served.server.connections))
        for future in batch:
            future.set_result(None)

    def handler(request: Request) -> Response | Later:
        if request.path == "/more":
            return _echo(request)
        future = asyncio.get_running_loop().create_future()
        held.append(future)
        if len(held) == MAX_PENDING:
            asyncio.get_running_loop().call_soon(release, held[:])
            held.clear()
        return Later(future, lambda _: _echo(request))
    served = serve(handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        # WHEN many more than MAX_PENDING requests go in one write
        sock.sendall(b"".join(_request("GET", f"/{n}") for n in range(count)))
        # THEN every one is answered, in order; reading paused and resumed
        bodies = [_read_answer(stream).body for _ in range(count)]
        assert bodies == [f"GET /{n} ".encode() for n in range(count)]
        assert paused_when_full == [True] * 4
        assert served.call(lambda: [c.paused for c in served.server.connections]) == [False]
        sock.sendall(_request("GET", "/more"))
        assert _read_answer(stream).body == b"GET /more "


def test_http_server_pause_takes_effect_within_one_big_read(serve: Serve) -> None:
    # GIVEN answers held back, and thousands of small requests sent in one write
    hold = [True]
    held: list[asyncio.Future[None]] = []

    def handler(request: Request) -> Response | Later:
        if not hold[0]:
            return _echo(request)
        future = asyncio.get_running_loop().create_future()
        held.append(future)
        return Later(future, lambda _: _echo(request))
    served = serve(handler)
    requests = [_request("GET", f"/{n}") for n in range(3000)]
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"".join(requests))
        served.wait(lambda: len(held) >= MAX_PENDING, "MAX_PENDING requests handled")
        # THEN the handler saw about MAX_PENDING requests, not all in the read
        seen = served.call(lambda: len(held))
        assert MAX_PENDING <= seen <= MAX_PENDING + FEED_BYTES // len(requests[0]) + 1
        assert served.call(lambda: [c.reading for c in served.server.connections]) == [False]

        def release() -> None:
            hold[0] = False
            for future in held:
                future.set_result(None)
        served.call(release)
        # and once answered, the rest is read: every request answered, in order
        bodies = [_read_answer(stream).body for _ in requests]
        assert bodies == [f"GET /{n} ".encode() for n in range(len(requests))]


def test_http_server_stops_reading_from_a_client_that_does_not_read(serve: Serve) -> None:
    # GIVEN big answers, and a client that pipelines requests without reading any
    answer_bytes = 16 * 1024
    handled: list[str] = []

    def handler(request: Request) -> Response:
        handled.append(request.path)
        return Response(200, b"r" * answer_bytes)
    served = serve(handler)
    request = _request("GET", "/")
    batch = 16
    limit = 2000  # without flow control, the server would buffer 32 MB by then

    def state() -> tuple[bool, int]:
        """Whether the server reads from this client, and the bytes it has buffered."""
        if not served.server.connections:
            return True, 0  # not accepted yet
        conn, = served.server.connections
        assert conn.transport is not None
        return conn.transport.is_reading(), conn.transport.get_write_buffer_size()

    def batch_done(sent: int) -> bool:
        return not state()[0] or len(handled) == sent
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", served.port))
    with sock, sock.makefile("rb") as stream:
        sent = 0
        reading, buffered = True, 0
        while reading and sent < limit:
            sock.sendall(request * batch)
            sent += batch
            # One batch per read: wait until it is handled, or reading stopped.
            served.wait(partial(batch_done, sent), "the batch handled, or reading stopped")
            reading, buffered = served.call(state)
        # THEN the server stopped reading, its buffer holding little more than a batch
        assert not reading, f"still reading after {sent} requests, {buffered} bytes buffered"
        assert buffered < 2 * batch * answer_bytes + 64 * 1024
        # and once the client reads, every answer comes and reading resumes
        for _ in range(sent):
            assert _read_answer(stream).body == b"r" * answer_bytes
        sock.sendall(_request("GET", "/last"))
        assert _read_answer(stream).status == 200
        assert served.call(state)[0]


# ---------------------------------------------------------------- bodies


def test_http_server_content_length_and_chunked_bodies(serve: Serve) -> None:
    served = serve(_echo, max_body_bytes=1024 * 1024)
    conn = served.client()
    try:
        conn.request("POST", "/len", body=b"a" * 1000)
        assert conn.getresponse().read() == b"POST /len " + b"a" * 1000
        conn.request("POST", "/chunked", body=iter([b"ab", b"", b"cd" * 200]),
                     encode_chunked=True)
        assert conn.getresponse().read() == b"POST /chunked " + b"ab" + b"cd" * 200
        # Bodies far larger than a head, in many reads, are no head (no 431).
        big = bytes(range(256)) * 3000
        conn.request("POST", "/big", body=big)
        assert conn.getresponse().read() == b"POST /big " + big
        conn.request("POST", "/big-chunked", body=iter([big[:100], big[100:]]),
                     encode_chunked=True)
        assert conn.getresponse().read() == b"POST /big-chunked " + big
    finally:
        conn.close()
    with served.connect() as sock, sock.makefile("rb") as stream:
        # Trailers end the last chunk; one byte per write puts every part in its own read.
        request = (b"POST /trailers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\nhi\r\n1;ext=1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n")
        for n in range(len(request)):
            sock.sendall(request[n:n + 1])
        assert _read_answer(stream).body == b"POST /trailers hi!"


def test_http_server_expect_100_continue_then_answer(serve: Serve) -> None:
    served = serve(_echo)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("POST", "/up", {"Expect": "100-continue",
                                              "Content-Length": "5"}))
        assert _read_answer(stream).status == 100
        sock.sendall(b"hello")
        answer = _read_answer(stream)
        assert (answer.status, answer.body) == (200, b"POST /up hello")
        assert answer.header("Connection") is None


def test_http_server_expect_100_continue_ignored_for_http_1_0(serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        # An HTTP/1.0 client knows no 100 Continue: it sends its body at once.
        sock.sendall(_request("POST", "/old", {"Expect": "100-continue"}, b"hello", "1.0"))
        answer = _read_answer(stream)
        assert (answer.status, answer.body) == (200, b"POST /old hello")
        assert _closed(stream)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("POST", "/big", {"Expect": "100-continue"}, b"x" * (MAX_BODY + 1),
                              "1.0"))
        assert _read_answer(stream).status == 413
    assert [(r.path, r.oversize) for r in recorder.requests] == [
        ("/old", False), ("/big", True)]


def test_http_server_expect_100_continue_keeps_pipelined_order(serve: Serve) -> None:
    # GIVEN a first request whose answer is still owed when the second asks to continue
    pending: list[asyncio.Future[None]] = []

    def handler(request: Request) -> Response | Later:
        if request.path == "/slow":
            future = asyncio.get_running_loop().create_future()
            pending.append(future)
            return Later(future, lambda _: Response(200, b"slow"))
        return _echo(request)
    served = serve(handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/slow") + _request(
            "POST", "/up", {"Expect": "100-continue", "Content-Length": "2"}))

        def expecting() -> bool:
            return any(c.expect_continue for c in served.server.connections)
        served.wait(expecting, "the second request's head")
        served.call(lambda: pending[0].set_result(None))
        # THEN the first answer comes before the second's 100 Continue
        assert _read_answer(stream).body == b"slow"
        assert _read_answer(stream).status == 100
        sock.sendall(b"ok")
        assert _read_answer(stream).body == b"POST /up ok"


def test_http_server_expect_over_limit_answered_at_once_and_closed(serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("PUT", "/big", {"Expect": "100-continue",
                                              "Content-Length": str(MAX_BODY + 1)}))
        answer = _read_answer(stream)
        assert (answer.status, answer.body) == (413, b"too big")
        assert answer.header("Connection") == "close"
        assert _closed(stream)
    assert [(r.path, r.oversize, r.body) for r in recorder.requests] == [("/big", True, b"")]


def test_http_server_body_over_limit_reaches_handler_and_connection_stays(
        serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    conn = served.client()
    try:
        conn.request("POST", "/big", body=b"x" * (MAX_BODY + 1))
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (413, b"too big")
        sock = conn.sock
        conn.request("POST", "/chunked-big", body=iter([b"y" * 600, b"y" * 600]),
                     encode_chunked=True)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (413, b"too big")
        conn.request("POST", "/small", body=b"x" * MAX_BODY)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"POST /small " + b"x" * MAX_BODY)
        assert conn.sock is sock
    finally:
        conn.close()
    assert [(r.oversize, len(r.body)) for r in recorder.requests] == [
        (True, 0), (True, 0), (False, MAX_BODY)]


def test_http_server_body_past_discard_limit_answered_at_once_and_closed(
        serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a body that would go on far past what the server reads to keep a connection
    monkeypatch.setattr(http_connection, "MAX_DISCARD_BYTES", 256 * 1024)
    recorder = _Recorder()
    served = serve(recorder)
    declared = 64 * 1024 * 1024
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("POST", "/huge", {"Content-Length": str(declared)}))
        sent = 0
        try:
            while sent < declared and not _readable(sock):
                sock.sendall(b"z" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        # THEN the handler's answer comes before the body ends, and the connection closes
        assert sent < declared
        answer = _read_answer(stream)
        assert (answer.status, answer.header("Connection")) == (413, "close")
        assert _closed(stream)
    assert [(r.path, r.oversize, r.body) for r in recorder.requests] == [("/huge", True, b"")]


# ---------------------------------------------------------------- answers


def test_http_server_head_has_length_of_body_but_no_body(serve: Serve) -> None:
    served = serve(_echo)
    with served.connect() as sock, sock.makefile("rb") as stream:
        # A body sent after the HEAD answer would be read as the next answer's head.
        sock.sendall(_request("HEAD", "/page") + _request("GET", "/page"))
        head = _read_answer(stream, head_only=True)
        assert (head.status, head.header("Content-Length")) == (200, str(len(b"HEAD /page ")))
        assert head.header("Content-Type") == "text/plain"
        assert _read_answer(stream).body == b"GET /page "


def test_http_server_replaces_hop_by_hop_headers_of_the_handler(serve: Serve) -> None:
    def handler(request: Request) -> Response:
        return Response(201, b"body", (
            ("Content-Length", "999"), ("connection", "close"),
            ("Transfer-Encoding", "chunked"), ("Date", "yesterday"), ("X-Kept", "yes")))
    served = serve(handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        for _ in range(2):  # the connection stays open despite the handler's "close"
            sock.sendall(_request("GET", "/"))
            answer = _read_answer(stream)
            assert (answer.status, answer.body) == (201, b"body")
            assert answer.header("Content-Length") == "4"
            assert answer.header("Connection") is None
            assert answer.header("Transfer-Encoding") is None
            assert answer.header("Date") != "yesterday"
            assert answer.header("X-Kept") == "yes"


@pytest.mark.parametrize("status", [204, 304])
def test_http_server_no_content_answers_drop_the_body(serve: Serve, status: int) -> None:
    # A Lambda may return statusCode 204 with a body: sent, it would be read as
    # the start of the next answer on the connection.
    def handler(request: Request) -> Response:
        if request.path == "/none":
            return Response(status, b"dropped", (("ETag", '"1"'),))
        return _echo(request)
    served = serve(handler)
    conn = served.client()
    try:
        conn.request("GET", "/none")
        resp = conn.getresponse()
        assert (resp.status, resp.read(), resp.getheader("ETag")) == (status, b"", '"1"')
        conn.request("GET", "/next")
        assert conn.getresponse().read() == b"GET /next "
    finally:
        conn.close()
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/none") + _request("GET", "/next"))
        assert _read_answer(stream).status == status
        assert _read_answer(stream).body == b"GET /next "


# ---------------------------------------------------------------- bad requests


def test_http_server_head_over_64kb_is_431_and_closes(serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/", {"X-Big": "a" * MAX_HEAD_BYTES}))
        assert _read_answer(stream).status == 431
        assert _closed(stream)
    assert recorder.requests == []


def test_http_server_long_url_is_431(serve: Serve) -> None:
    served = serve(_echo)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/" + "u" * MAX_HEAD_BYTES))
        assert _read_answer(stream).status == 431
        assert _closed(stream)


@pytest.mark.parametrize("start", [
    b"GET / HTTP/1.1\r\nX-Endless: ",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: ",
], ids=["header", "trailer"])
def test_http_server_head_that_never_ends_is_431(serve: Serve, start: bytes) -> None:
    # GIVEN a header or trailer line that goes on and on (httptools buffers a
    # header until it ends)
    served = serve(_echo)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sent = 0
        piece = start + b"e" * 16384
        try:
            while sent < 64 * MAX_HEAD_BYTES:
                sock.sendall(piece)
                sent += len(piece)
                piece = b"e" * 16384
                if _readable(sock):
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        # THEN the server answers 431 long before and closes
        assert sent < 64 * MAX_HEAD_BYTES
        assert _read_answer(stream).status == 431


@pytest.mark.parametrize("data", [
    b"THIS IS NOT HTTP\r\n\r\n",
    # The ways to smuggle a request past a proxy are refused, not guessed at.
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
], ids=["not-http", "length-and-chunked", "two-lengths", "bad-length", "chunked-not-last",
        "bad-chunk-size", "space-before-colon", "nul-in-value", "bad-version"])
def test_http_server_malformed_request_is_400_and_closes(serve: Serve, data: bytes) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        answer = _read_answer(stream)
        assert (answer.status, answer.header("Connection")) == (400, "close")
        assert _closed(stream)
    assert recorder.requests == []


def test_http_server_good_request_before_garbage_answered_first(serve: Serve) -> None:
    def handler(request: Request) -> Later:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, b"late")
        return Later(future, lambda fut: Response(200, fut.result()))
    served = serve(handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/good") + b"\x00\x01 garbage\r\n\r\n")
        assert _read_answer(stream).body == b"late"
        assert _read_answer(stream).status == 400
        assert _closed(stream)


def test_http_server_upgrade_request_answered_and_closed(serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        # We speak nothing but HTTP/1.1: the handler answers, and the connection ends.
        sock.sendall(_request("GET", "/ws", {"Connection": "Upgrade", "Upgrade": "websocket"})
                     + b"\x81\x05hello")
        answer = _read_answer(stream)
        assert (answer.status, answer.body) == (200, b"GET /ws ")
        assert answer.header("Connection") == "close"
        assert _closed(stream)
    assert [r.path for r in recorder.requests] == ["/ws"]


# ---------------------------------------------------------------- failing handlers


def _failing_handler(request: Request) -> Response | Later:
    loop = asyncio.get_running_loop()
    if request.path == "/raise":
        raise RuntimeError("handler bug")
    if request.path == "/returns-none":
        return None  # type: ignore[return-value]
    future: asyncio.Future[bytes] = loop.create_future()
    if request.path == "/future-fails":
        loop.call_soon(future.set_exception, RuntimeError("invocation failed"))
    elif request.path == "/future-cancelled":
        loop.call_soon(future.cancel)
    else:
        loop.call_soon(future.set_result, b"fine")
    if request.path == "/then-raises":
        def then(fut: asyncio.Future[bytes]) -> Response:
            raise ValueError("cannot make a response")
        return Later(future, then)
    if request.path == "/then-returns-bytes":
        return Later(future, lambda fut: fut.result())  # type: ignore[arg-type,return-value]
    return Later(future, lambda fut: Response(200, fut.result()))


@pytest.mark.parametrize("path", ["/raise", "/returns-none", "/future-fails",
                                  "/future-cancelled", "/then-raises", "/then-returns-bytes"])
def test_http_server_failing_handler_is_500_and_server_keeps_serving(
        serve: Serve, path: str, caplog: pytest.LogCaptureFixture) -> None:
    served = serve(_failing_handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", path) + _request("GET", "/ok"))
        answer = _read_answer(stream)
        assert (answer.status, answer.header("Content-Type")) == (500, "application/json")
        assert answer.body == b'{"message":"Internal Server Error"}'
        # The same connection and a new one are both still served.
        assert _read_answer(stream).body == b"fine"
    conn = served.client()
    try:
        conn.request("GET", "/ok")
        assert conn.getresponse().read() == b"fine"
    finally:
        conn.close()
    errors = [r for r in caplog.records
              if r.name == "connstorm.local_stack.lambda_.http_connection"
              and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    # A failure carries its exception; a cancelled future or a junk answer has none to show.
    assert (errors[0].exc_info is not None) == (
        path in ("/raise", "/future-fails", "/then-raises", "/then-returns-bytes"))


def test_http_server_answers_cancelled_by_stop_log_one_line_each(
        serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN three answers owed (invocations running) when the server stops
    caplog.set_level(logging.DEBUG, logger="connstorm.local_stack.lambda_.http_connection")
    pending: list[asyncio.Future[bytes]] = []

    def handler(request: Request) -> Later:
        future = asyncio.get_running_loop().create_future()
        pending.append(future)
        return Later(future, lambda fut: Response(200, fut.result()))
    served = serve(handler)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"".join(_request("GET", f"/{n}") for n in range(3)))
        served.wait(lambda: len(pending) == 3, "three requests handled")
        # WHEN the server stops and then the invocations are cancelled
        served.run(served.server.stop())
        assert _closed(stream)

    def cancel() -> None:
        for future in pending:
            future.cancel()
    served.call(cancel)
    served.call(lambda: None)  # the futures' done callbacks ran before this
    # THEN one DEBUG line per answer, no traceback, nothing louder
    records = [r for r in caplog.records if r.name.startswith("connstorm.local_stack.lambda_.http")]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.DEBUG, None)] * 3
    assert all("cancelled" in r.getMessage() for r in records)


def test_http_server_client_gone_while_later_pending(
        serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a request whose answer is owed when its client disconnects
    pending: list[asyncio.Future[bytes]] = []
    handler = _slow_or_echo(pending)
    served = serve(handler)
    with served.connect() as sock:
        sock.sendall(_request("GET", "/slow"))
        served.wait(lambda: pending, "the request handled")
    served.wait(lambda: not served.server.connections, "the connection gone")
    # WHEN the answer comes after all
    served.call(lambda: pending[0].set_result(b"too late"))
    # THEN nothing fails and others are still served
    conn = served.client()
    try:
        conn.request("GET", "/next")
        assert conn.getresponse().read() == b"GET /next "
    finally:
        conn.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# ---------------------------------------------------------------- what a handler sees


def test_http_server_request_fields(serve: Serve) -> None:
    recorder = _Recorder()
    served = serve(recorder)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET /a%20b/%E2%82%AC/%ff?x=%20y&z=%E2#frag HTTP/1.1\r\nHost: t\r\n"
                     b"X-Bin: caf\xe9\r\nx-bin: second\r\n\r\n")
        assert _read_answer(stream).status == 200
        local = sock.getsockname()
    request, = recorder.requests
    assert (request.method, request.version) == ("GET", "1.1")
    assert request.path == "/a b/\u20ac/\udcff"
    assert request.query_string == "x=%20y&z=%E2"
    assert request.headers == [("Host", "t"), ("X-Bin", "caf\udce9"), ("x-bin", "second")]
    assert request.header("X-BIN") == "caf\udce9"
    assert (request.header("X-Bin") or "").encode("utf-8", "surrogateescape") == b"caf\xe9"
    assert request.header("missing", "d") == "d"
    assert (request.remote, request.local_port) == (local[0], served.port)
    assert (request.body, request.oversize) == (b"", False)


# ---------------------------------------------------------------- start and stop


def test_http_server_stop_closes_open_connections(serve: Serve) -> None:
    served = serve(_echo)
    with served.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(_request("GET", "/"))
        assert _read_answer(stream).status == 200
        served.run(served.server.stop())
        assert _closed(stream)
    assert served.connection_count() == 0
    assert served.call(lambda: served.server._sweep_timer) is None  # the idle sweep ends too
    with pytest.raises(ConnectionRefusedError):
        served.connect().close()


def test_http_server_start_on_a_port_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HttpServer(_echo, max_body_bytes=MAX_BODY)
        with pytest.raises(OSError, match="in use"):
            asyncio.run(server.start(port=taken.getsockname()[1]))
