"""The API Gateway front over real HTTP: routing, events, response and error mapping.

The outcomes (throttle, timeout, malformed answer ...) come from a scripted
Invoker here, so each mapping is shown exactly; the same paths through the real
emulator and real awslambdaric environments are in ``test_front_emulator.py``.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from local_stack.lambda_.front import MAX_PAYLOAD_BYTES, add_front_routes
from local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from local_stack.lambda_.invoke_api import add_invoke_routes
from local_stack.lambda_.routes import SimpleRoute
from tests.local_stack.lambda_.http_harness import ScriptedInvoker, returns, served


async def _echo(request: InvocationRequest) -> InvocationResult:
    # A proxy response whose body is the event the function received.
    body = json.dumps({"statusCode": 200, "headers": {"Content-Type": "application/json"},
                       "body": request.payload.decode()})
    return InvocationResult(request_id=str(uuid.uuid4()), outcome="success",
                            payload=body.encode())


async def _hang(request: InvocationRequest) -> InvocationResult:
    await asyncio.sleep(30)
    raise AssertionError("not reached: the integration timeout ends the wait")


async def _boom(request: InvocationRequest) -> InvocationResult:
    raise RuntimeError("the core failed")


FUNCTIONS = {
    "echo": _echo,
    "throttled": returns(b"", outcome="throttled",
                         throttle_reason="ReservedFunctionConcurrentInvocationLimitExceeded"),
    "fails": returns(b'{"errorMessage": "x", "errorType": "ValueError"}',
                     outcome="function_error", error_type="ValueError"),
    "times_out": returns(b"", outcome="timeout", error_type="Sandbox.Timedout"),
    "crashes": returns(b"", outcome="crash", error_type="Runtime.ExitError"),
    "malformed": returns(b'{"statusCode": 200, "unexpected": true}'),
    "plain": returns(b'{"hello": "world"}'),
    "cookies": returns(json.dumps({"statusCode": 200, "cookies": ["a=1", "b=2"],
                                   "body": "ok"})),
    "binary": returns(json.dumps({"statusCode": 200, "isBase64Encoded": True,
                                  "headers": {"Content-Type": "image/png"},
                                  "body": base64.b64encode(b"\x89PNG\x00\xff").decode()})),
    "hangs": _hang,
    "boom": _boom,
}

ROUTES = [
    SimpleRoute("GET", "/rest/items/{id}", "echo", "1.0"),
    SimpleRoute("ANY", "/http/{proxy+}", "echo", "2.0"),
    SimpleRoute("POST", "/upload", "echo", "2.0"),
    *(SimpleRoute("GET", f"/rest/{name}", name, "1.0") for name in FUNCTIONS),
    *(SimpleRoute("GET", f"/http/x/{name}", name, "2.0") for name in FUNCTIONS),
    SimpleRoute("GET", "/rest/slow", "hangs", "1.0", integration_timeout_s=0.2),
    SimpleRoute("GET", "/http/slow", "hangs", "2.0", integration_timeout_s=0.2),
    SimpleRoute("GET", "/ghost", "no-such-function", "1.0"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ScriptedInvoker]]:
    invoker = ScriptedInvoker(dict(FUNCTIONS))
    app = web.Application()

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"stats": True})

    app.router.add_get("/_connstorm/stats", stats)
    add_invoke_routes(app, invoker)
    add_front_routes(app, invoker, ROUTES)
    with served(app) as url:
        yield url, invoker


def _call(url: str, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None,
          chunked: bool = False) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def _json(body: bytes) -> Any:
    return json.loads(body)


def test_front_rest_route_delivers_payload_1_0_event(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    status, headers, body = _call(url, "GET", "/rest/items/42?tag=a&tag=b",
                                  headers={"X-Custom": "v", "User-Agent": "t/1"})
    assert status == 200
    assert headers["x-amzn-RequestId"]
    event = _json(body)
    assert event["resource"] == "/rest/items/{id}"
    assert event["pathParameters"] == {"id": "42"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["headers"]["X-Custom"] == "v"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["identity"]["userAgent"] == "t/1"
    assert event["requestContext"]["requestId"] == headers["x-amzn-RequestId"]
    assert event["requestContext"]["domainName"] == urlsplit(url).netloc


def test_front_http_route_delivers_payload_2_0_event(server: tuple[str, ScriptedInvoker]) -> None:
    url, invoker = server
    status, headers, body = _call(url, "DELETE", "/http/a/b?x=1&x=2",
                                  headers={"Cookie": "s=1; t=2"})
    assert status == 200
    event = _json(body)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /http/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["requestContext"]["http"]["method"] == "DELETE"
    assert event["requestContext"]["requestId"] == headers["apigw-requestid"]
    assert invoker.requests[-1].wait_timeout_s == 30.0


def test_front_passes_integration_timeout_as_wait_timeout(
        server: tuple[str, ScriptedInvoker]) -> None:
    url, invoker = server
    _call(url, "GET", "/rest/items/1")
    assert invoker.requests[-1].wait_timeout_s == 29.0
    assert invoker.requests[-1].function == "echo"
    assert invoker.requests[-1].invocation_type == "RequestResponse"


def test_front_binary_upload_arrives_base64(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    blob = bytes(range(256)) * 10
    status, _, body = _call(url, "POST", "/upload", body=blob,
                            headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    event = _json(body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == blob


def test_front_large_body_under_limit_passes(server: tuple[str, ScriptedInvoker]) -> None:
    # Over aiohttp's 1 MB default client_max_size, under Lambda's 6 MB.
    url, _ = server
    text = b"x" * (3 * 1024 * 1024)
    status, _, body = _call(url, "POST", "/upload", body=text,
                            headers={"Content-Type": "text/plain"})
    assert status == 200
    assert len(_json(body)["body"]) == len(text)


def test_front_body_over_6_mb_is_413(server: tuple[str, ScriptedInvoker]) -> None:
    url, invoker = server
    before = len(invoker.requests)
    status, _, body = _call(url, "POST", "/upload", body=b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert status == 413
    assert _json(body) == {"message": "Request Entity Too Large"}
    assert len(invoker.requests) == before


def test_front_chunked_body_over_6_mb_is_413(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    chunks = (b"y" * (1024 * 1024) for _ in range(7))
    status, _, _ = _call(url, "POST", "/upload", body=chunks,  # type: ignore[arg-type]
                         headers={"Transfer-Encoding": "chunked"}, chunked=True)
    assert status == 413


def test_front_event_over_6_mb_after_base64_is_413(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    blob = b"\xff" * (5 * 1024 * 1024)  # 5 MB binary: 6.7 MB once base64-encoded
    status, _, _ = _call(url, "POST", "/upload", body=blob,
                         headers={"Content-Type": "application/octet-stream"})
    assert status == 413


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nowhere"), ("POST", "/rest/items/1"), ("GET", "/"), ("GET", "/upload"),
    ("TRACE", "/http/a"),
])
def test_front_unknown_route_is_404_not_found(server: tuple[str, ScriptedInvoker], method: str,
                                              path: str) -> None:
    url, _ = server
    status, headers, body = _call(url, method, path)
    assert status == 404
    assert body == b'{"message":"Not Found"}'
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("name", "rest_status", "http_status"), [
    ("throttled", 500, 500),
    ("fails", 502, 502),
    ("times_out", 502, 502),
    ("crashes", 502, 502),
    ("malformed", 502, 200),  # 2.0 ignores keys it does not know
    ("boom", 500, 500),
    ("slow", 504, 503),
])
def test_front_error_mapping(server: tuple[str, ScriptedInvoker], name: str, rest_status: int,
                             http_status: int) -> None:
    url, _ = server
    status, headers, body = _call(url, "GET", f"/rest/{name}")
    assert status == rest_status
    expected_rest = {504: {"message": "Endpoint request timed out"}}.get(
        rest_status, {"message": "Internal server error"})
    assert _json(body) == expected_rest
    assert headers["x-amzn-ErrorType"]
    http_path = "/http/slow" if name == "slow" else f"/http/x/{name}"
    status, _, body = _call(url, "GET", http_path)
    assert status == http_status
    if http_status == 503:
        assert body == b'{"message":"Service Unavailable"}'
    elif http_status >= 500:
        assert body == b'{"message":"Internal Server Error"}'


def test_front_rest_and_http_exact_bodies_of_errors(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    assert _call(url, "GET", "/rest/fails")[2] == b'{"message": "Internal server error"}'
    assert _call(url, "GET", "/rest/slow")[2] == b'{"message": "Endpoint request timed out"}'


def test_front_route_to_unknown_function_is_500(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    status, _, body = _call(url, "GET", "/ghost")
    assert status == 500
    assert _json(body) == {"message": "Internal server error"}


def test_front_http_response_without_status_code_is_200_json(
        server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    status, headers, body = _call(url, "GET", "/http/x/plain")
    assert (status, body) == (200, b'{"hello": "world"}')
    assert headers["Content-Type"] == "application/json"
    assert _call(url, "GET", "/rest/plain")[0] == 502


def test_front_cookies_and_binary_responses(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    status, headers, body = _call(url, "GET", "/http/x/cookies")
    assert status == 200
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    status, headers, body = _call(url, "GET", "/rest/binary")
    assert (status, body) == (200, b"\x89PNG\x00\xff")
    assert headers["Content-Type"] == "image/png"


def test_front_leaves_stats_and_invoke_routes_to_the_app(
        server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    assert _call(url, "GET", "/_connstorm/stats")[2] == b'{"stats": true}'
    status, _, body = _call(url, "POST", "/2015-03-31/functions/plain/invocations", b"{}")
    assert (status, body) == (200, b'{"hello": "world"}')


def _raw(url: str, data: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
    b"GET /rest/items/1 HTTP/9.9\r\n\r\n",
    b"GET /rest/items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET /rest/items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
    b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /rest/items/1 HTTP/1.1\r\n" + b"X-Big: " + b"b" * 200_000 + b"\r\n\r\n",
    b"GET /rest/items/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /http/%00/x HTTP/1.1\r\nHost: x\r\nCookie: ;;;=\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 4\r\n\r\n\xff\xfe\xfd\xfc",
])
def test_front_garbage_cannot_crash_the_server(server: tuple[str, ScriptedInvoker],
                                               garbage: bytes) -> None:
    url, _ = server
    answer = _raw(url, garbage)
    assert answer == b"" or answer.startswith(b"HTTP/1.")
    assert not answer.startswith(b"HTTP/1.1 500") or b"Internal" in answer
    # THEN the server still answers a good request
    status, _, _ = _call(url, "GET", "/rest/items/1")
    assert status == 200
