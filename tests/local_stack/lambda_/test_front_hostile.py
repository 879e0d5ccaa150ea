"""Hostile input to the API Gateway front: nothing crashes it, every answer is AWS's.

Property-based (hypothesis, bounded by :data:`hostile.FUZZ`) over the REAL
emulator: requests a route matches reach the function intact (method, body
bytes, query, headers) and come back 200; requests no route matches get API
Gateway's 404 ``{"message":"Not Found"}``; malformed HTTP gets a JSON 4xx;
requests sent a byte at a time or cut short leave the server answering. After
each fuzzer the emulator's log holds no traceback, and when it stops no process
it started is left (see :func:`hostile.emulator_under_attack`).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.local_stack.lambda_.hostile import (
    FUZZ,
    Answer,
    Target,
    alive_health,
    emulator_under_attack,
    exchange,
    parse,
    request_bytes,
)

pytestmark = pytest.mark.slow

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Path segments: any character but the separators, percent-encoded on the wire.
segment = st.text(st.characters(codec="utf-8", exclude_characters="/?#%\x00"),
                  min_size=1, max_size=12)
header_name = st.from_regex(r"\AX-Fuzz-[A-Za-z0-9]{1,10}\Z")
header_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
bodies = st.one_of(st.binary(max_size=2048), st.text(max_size=512).map(str.encode),
                   st.binary(min_size=60_000, max_size=70_000))
query = st.lists(st.tuples(st.text("abcxyz_", min_size=1, max_size=5),
                           st.text("abc0123-._~", max_size=6)), max_size=4)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with emulator_under_attack(tmp_path_factory.mktemp("front-hostile")) as emulator:
        yield emulator
        assert alive_health(emulator)
        assert emulator.tracebacks() == []


def _sent_body(event: dict[str, object]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    assert isinstance(body, str)
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def _answer(target: Target, data: bytes, **kw: object) -> Answer:
    raw = exchange(target.port, data, **kw)  # type: ignore[arg-type]
    answer = parse(raw)
    assert answer is not None, f"no answer to {data[:200]!r}: got {raw[:200]!r}"
    return answer


@FUZZ
@given(method=st.sampled_from(METHODS), segments=st.lists(segment, min_size=1, max_size=4),
       params=query, headers=st.dictionaries(header_name, header_value, max_size=4),
       body=bodies, chunked=st.booleans())
def test_front_http_api_route_passes_any_request_through(
        target: Target, method: str, segments: list[str], params: list[tuple[str, str]],
        headers: dict[str, str], body: bytes, chunked: bool) -> None:
    path = "/http/" + "/".join(quote(s, safe="") for s in segments)
    raw_query = "&".join(f"{k}={v}" for k, v in params)
    wire_target = path + (f"?{raw_query}" if raw_query else "")
    request = request_bytes(method.encode(), wire_target.encode(),
                            [(k.encode(), v.encode()) for k, v in headers.items()], body,
                            chunked=chunked)
    answer = _answer(target, request)
    assert answer.status == 200, answer
    event = answer.json()["event"]
    assert event["requestContext"]["http"]["method"] == method
    assert event["rawPath"] == "/http/" + "/".join(segments)
    assert event["pathParameters"] == {"proxy": "/".join(segments)}
    assert event["rawQueryString"] == raw_query
    assert _sent_body(event) == body
    for name, value in headers.items():
        assert event["headers"][name.lower()] == value


@FUZZ
@given(method=st.sampled_from((*METHODS, "HEAD", "TRACE", "CONNECT", "PROPFIND")),
       segments=st.lists(segment, max_size=3), body=st.binary(max_size=512))
def test_front_unrouted_request_is_api_gateways_404(target: Target, method: str,
                                                    segments: list[str], body: bytes) -> None:
    path = "/nowhere/" + "/".join(quote(s, safe="") for s in segments)
    if method == "CONNECT":
        path = "127.0.0.1:1"
    answer = _answer(target, request_bytes(method.encode(), path.encode(), [], body))
    assert answer.status == 404, answer
    if method != "HEAD":
        assert answer.json() == {"message": "Not Found"}


@FUZZ
@given(method=st.binary(min_size=1, max_size=10), target_bytes=st.binary(max_size=80),
       headers=st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)),
                        max_size=4),
       body=st.binary(max_size=256))
def test_front_malformed_http_gets_an_answer_or_a_close(
        target: Target, method: bytes, target_bytes: bytes,
        headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    data = request_bytes(method, b"/" + target_bytes, headers, body)
    raw = exchange(target.port, data, half_close=True)
    answer = parse(raw)
    # A request httptools cannot parse is answered 400 (or the connection just
    # closed when not even a request line came); a parsed one gets a route's answer.
    if answer is None:
        assert raw == b"", raw[:200]
        return
    assert answer.status in (200, 400, 404, 413, 431, 502), answer
    if answer.status >= 400 and method != b"HEAD" and answer.body:
        assert set(answer.json()) >= {"message"}


@FUZZ
@given(body=st.binary(min_size=1, max_size=4096), cut=st.floats(0.0, 0.99),
       pieces=st.integers(1, 6))
def test_front_truncated_and_slow_requests_leave_it_answering(
        target: Target, body: bytes, cut: float, pieces: int) -> None:
    full = request_bytes(b"POST", b"/upload", [(b"Content-Type", b"application/json")], body)
    cut_short = exchange(target.port, full[:int(len(full) * cut)], pieces=pieces, pause_s=0.01,
                         half_close=True, timeout_s=5)
    # Cut short, a request gets no answer, or a 400 when what came is not HTTP.
    answer = parse(cut_short)
    assert answer is None or answer.status == 400, cut_short[:200]
    # The whole request, dribbled in pieces, still goes through intact.
    answer = _answer(target, full, pieces=pieces, pause_s=0.01)
    assert answer.status == 200, answer
    assert _sent_body(answer.json()["event"]) == body


def test_front_rest_route_keeps_bytes_and_answers_aws_shapes(target: Target) -> None:
    body = bytes(range(256))
    answer = _answer(target, request_bytes(b"GET", b"/rest/a%20b/%E2%82%AC", [], body))
    assert answer.status == 200
    event = answer.json()["event"]
    assert event["path"] == "/rest/a b/€"
    assert event["isBase64Encoded"] is True
    assert _sent_body(event) == body
    # POST is not routed on the REST resource: API Gateway's 404
    answer = _answer(target, request_bytes(b"POST", b"/rest/x", [], b"{}"))
    assert (answer.status, answer.json()) == (404, {"message": "Not Found"})


def test_front_oversize_body_is_413(target: Target, tmp_path: Path) -> None:
    body = b"x" * (6 * 1024 * 1024 + 1)
    answer = _answer(target, request_bytes(b"POST", b"/upload", [], body))
    assert answer.status == 413
    assert answer.json() == {"message": "Request Entity Too Large"}
    assert alive_health(target)


_HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"


@pytest.mark.parametrize("data", [
    _HEAD + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    _HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    _HEAD + b"Content-Length: -1\r\n\r\n",
    _HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    _HEAD + b"Transfer-Encoding: gzip\r\n\r\nabc",
    _HEAD + b"X-A: a\r\n  folded\r\nContent-Length: 0\r\n\r\n",
], ids=["cl-and-te", "two-cl", "negative-cl", "bad-chunk", "te-gzip", "obs-fold"])
def test_front_ambiguous_framing_is_400_never_passed_on(target: Target, data: bytes) -> None:
    # Framing two servers could read differently (request smuggling) is refused.
    answer = _answer(target, data)
    assert (answer.status, answer.json()) == (400, {"message": "Bad Request"})
    assert alive_health(target)


def test_front_many_stalled_requests_do_not_block_others(target: Target) -> None:
    # GIVEN 100 connections each stalled in the middle of a request (slowloris),
    # half of them in the head, half in the body
    stalled = []
    try:
        for n in range(100):
            sock = socket.create_connection(("127.0.0.1", target.port), timeout=10)
            part = (b"GET /http/stall HTTP/1.1\r\nHost: x\r\nX-Slow: "
                    if n % 2 else _HEAD + b"Content-Length: 1000\r\n\r\n{\"a\":")
            sock.sendall(part)
            stalled.append(sock)
        # THEN others are still answered, routes and Invoke API alike
        assert alive_health(target)
        answer = _answer(target, request_bytes(b"POST", b"/upload", [], b"{}"))
        assert answer.status == 200
        answer = _answer(target, request_bytes(
            b"POST", b"/2015-03-31/functions/proxy/invocations", [], b"{}"))
        assert answer.status == 200
    finally:
        for sock in stalled:
            sock.close()
    assert alive_health(target)
