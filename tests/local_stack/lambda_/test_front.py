"""The API Gateway front over real HTTP: routing, events, response and error mapping.

The first part runs through the REAL emulator: the server process connstorm
starts, real awslambdaric environments, real handlers (``http_handlers/``), so
events, responses, throttles, timeouts, crashes and garbage are shown end to end.
The second part uses a scripted Invoker (pure-logic scaffolding) only for what a
real function cannot produce on demand: each outcome's exact mapping, a failing
core, a route to a function that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from connstorm.local_stack.lambda_.front import MAX_PAYLOAD_BYTES, Front, dumps_event
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from connstorm.local_stack.lambda_.invoke_api import InvokeApi
from connstorm.local_stack.lambda_.routes import SimpleRoute
from connstorm.local_stack.lambda_.server import Routes
from connstorm.scenario import RouteConfig
from tests.local_stack.lambda_.http_harness import (
    ScriptedInvoker,
    emulator_config,
    emulator_server,
    get_stats,
    http_function,
    returns,
    served,
    wait_for,
)


def _call(url: str, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None,
          chunked: bool = False) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def _json(body: bytes) -> Any:
    return json.loads(body)


def _raw(url: str, data: bytes, half_close: bool = True) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


# ---------------------------------------------------------------- the real emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    run = tmp_path_factory.mktemp("front-emulator")
    functions = [
        http_function("proxy", "proxy_handler.lambda_handler", timeout_s=10),
        http_function("limited", "proxy_handler.lambda_handler", reserved_concurrency=1),
        http_function("short", "proxy_handler.lambda_handler", timeout_s=1),
        http_function("powertools", "powertools_handler.lambda_handler",
                      preload=("aws_lambda_powertools.event_handler",)),
    ]
    routes = [
        RouteConfig("GET", "/rest/{proxy+}", "proxy", "1.0"),
        RouteConfig("ANY", "/http/{proxy+}", "proxy", "2.0"),
        RouteConfig("POST", "/upload", "proxy", "2.0"),
        RouteConfig("GET", "/rest-slow/sleep", "proxy", "1.0", integration_timeout_s=0.5),
        RouteConfig("GET", "/http-slow/sleep", "proxy", "2.0", integration_timeout_s=0.5),
        RouteConfig("GET", "/limited/rest/sleep", "limited", "1.0"),
        RouteConfig("GET", "/limited/http/sleep", "limited", "2.0"),
        RouteConfig("GET", "/short/sleep", "short", "1.0"),
        RouteConfig("ANY", "/v1/pt/items/{id}", "powertools", "1.0"),
        RouteConfig("ANY", "/v2/pt/items/{id}", "powertools", "2.0"),
    ]
    with emulator_server(emulator_config(functions, routes, run), run) as url:
        yield url


def test_front_payload_1_0_end_to_end(emulator: str) -> None:
    status, headers, body = _call(emulator, "GET", "/rest/items/42?tag=a&tag=b",
                                  headers={"X-Custom": "v", "User-Agent": "t/1"})
    assert status == 200
    out = _json(body)
    event = out["event"]
    assert event["resource"] == "/rest/{proxy+}"
    assert event["path"] == "/rest/items/42"
    assert event["pathParameters"] == {"proxy": "items/42"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["queryStringParameters"] == {"tag": "b"}
    assert event["headers"]["X-Custom"] == "v"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["identity"]["userAgent"] == "t/1"
    assert event["requestContext"]["stage"] == "prod"
    assert event["requestContext"]["requestId"] == headers["x-amzn-RequestId"]
    assert event["requestContext"]["domainName"] == urlsplit(emulator).netloc
    assert out["request_id"]  # the Lambda request id, distinct from API Gateway's


def test_front_payload_2_0_end_to_end(emulator: str) -> None:
    status, headers, body = _call(emulator, "DELETE", "/http/a/b?x=1&x=2",
                                  headers={"Cookie": "s=1; t=2", "X-Dup": "1"})
    assert status == 200
    event = _json(body)["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /http/{proxy+}"
    assert event["rawPath"] == "/http/a/b"
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert "cookie" not in event["headers"]
    assert event["requestContext"]["http"]["method"] == "DELETE"
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["requestId"] == headers["apigw-requestid"]


def test_front_powertools_rest_resolver_in_a_real_environment(emulator: str) -> None:
    status, _, body = _call(emulator, "GET", "/v1/pt/items/7?q=1")
    assert status == 200
    assert _json(body) == {"id": "7", "q": {"q": "1"}, "method": "GET", "body": None,
                           "path": "/v1/pt/items/7"}


def test_front_powertools_http_resolver_in_a_real_environment(emulator: str) -> None:
    status, _, body = _call(emulator, "POST", "/v2/pt/items/9", body=b'{"k": [1, 2]}',
                            headers={"Content-Type": "application/json",
                                     "Cookie": "session=abc"})
    assert status == 200
    assert _json(body) == {"id": "9", "q": {}, "method": "POST", "body": {"k": [1, 2]},
                           "path": "/v2/pt/items/9", "cookies": ["session=abc"]}


def test_front_binary_upload_reaches_the_handler_base64(emulator: str) -> None:
    blob = bytes(range(256)) * 4
    status, _, body = _call(emulator, "POST", "/upload", body=blob,
                            headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    event = _json(body)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == blob


def test_front_cookies_headers_and_binary_responses(emulator: str) -> None:
    status, headers, body = _call(emulator, "GET", "/http/cookies")
    assert (status, body) == (201, b"ok")
    assert headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert headers["X-Handler"] == "yes"
    status, headers, body = _call(emulator, "GET", "/rest/binary")
    assert (status, body) == (200, b"\x89PNG\r\n\x1a\n")
    assert headers["Content-Type"] == "image/png"


def test_front_malformed_handler_response_is_502(emulator: str) -> None:
    # GIVEN handlers returning an unknown key, or JSON without statusCode
    # THEN REST rejects both (502); HTTP APIs ignore the unknown key and pass the
    # JSON without statusCode through as a 200 body.
    for path in ("/rest/malformed", "/rest/plain"):
        status, headers, body = _call(emulator, "GET", path)
        assert status == 502
        assert body == b'{"message": "Internal server error"}'
        assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    status, _, body = _call(emulator, "GET", "/http/plain")
    assert (status, _json(body)) == (200, {"plain": "json without statusCode"})


def test_front_handler_exception_and_crash_are_502(emulator: str) -> None:
    assert _call(emulator, "GET", "/rest/raise")[:3:2] == (
        502, b'{"message": "Internal server error"}')
    assert _call(emulator, "GET", "/http/raise")[:3:2] == (
        502, b'{"message":"Internal Server Error"}')
    assert _call(emulator, "GET", "/rest/exit")[0] == 502
    # the diagnostic header says what the bodies hide
    assert _call(emulator, "GET", "/rest/raise")[1]["X-Connstorm-Error-Kind"] == "other"
    assert _call(emulator, "GET", "/rest/exit")[1]["X-Connstorm-Error-Kind"] == "lambda_crash"
    # the next request gets a working environment
    assert _call(emulator, "GET", "/rest/ok")[0] == 200


@pytest.mark.slow
def test_front_function_timeout_is_502(emulator: str) -> None:
    status, headers, body = _call(emulator, "GET", "/short/sleep?s=3")
    assert status == 502
    assert _json(body) == {"message": "Internal server error"}
    assert headers["X-Connstorm-Error-Kind"] == "lambda_timeout"


@pytest.mark.slow
def test_front_integration_timeout_rest_504_http_503(emulator: str) -> None:
    status, _, body = _call(emulator, "GET", "/rest-slow/sleep?s=1.5")
    assert (status, body) == (504, b'{"message": "Endpoint request timed out"}')
    status, _, body = _call(emulator, "GET", "/http-slow/sleep?s=1.5")
    assert (status, body) == (503, b'{"message":"Service Unavailable"}')


@pytest.mark.slow
def test_front_at_concurrency_limit_is_500(emulator: str) -> None:
    # GIVEN the one environment "limited" may have is busy
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_call, emulator, "GET", "/limited/rest/sleep?s=2")
        wait_for(lambda: get_stats(emulator)["functions"]["limited"]["concurrency"] == 1,
                 what="the first request to hold the environment")
        # WHEN more requests come THEN API Gateway's throttle answers: 500
        status, headers, body = _call(emulator, "GET", "/limited/rest/sleep?s=0")
        assert (status, body) == (500, b'{"message": "Internal server error"}')
        assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
        status, _, body = _call(emulator, "GET", "/limited/http/sleep?s=0")
        assert (status, body) == (500, b'{"message":"Internal Server Error"}')
        assert first.result()[0] == 200
    assert get_stats(emulator)["functions"]["limited"]["throttles"] >= 2


def test_front_body_over_6_mb_is_413(emulator: str) -> None:
    status, _, body = _call(emulator, "POST", "/upload", body=b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert (status, _json(body)) == (413, {"message": "Request Entity Too Large"})
    chunks = (b"y" * (1024 * 1024) for _ in range(7))
    status, _, _ = _call(emulator, "POST", "/upload", body=chunks,  # type: ignore[arg-type]
                         headers={"Transfer-Encoding": "chunked"}, chunked=True)
    assert status == 413
    # 5 MB of binary is 6.7 MB once base64-encoded into the event
    status, _, _ = _call(emulator, "POST", "/upload", body=b"\xff" * (5 * 1024 * 1024),
                         headers={"Content-Type": "application/octet-stream"})
    assert status == 413


def test_front_large_body_under_limit_passes(emulator: str) -> None:
    # Over the 1 MB default body limit of common servers, under Lambda's 6 MB.
    text = b"x" * (3 * 1024 * 1024)
    status, _, body = _call(emulator, "POST", "/upload", body=text,
                            headers={"Content-Type": "text/plain"})
    assert status == 200
    assert len(_json(body)["event"]["body"]) == len(text)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nowhere"), ("POST", "/rest/items/1"), ("GET", "/"), ("GET", "/upload"),
    ("TRACE", "/http/a"), ("GET", "/rest"),
])
def test_front_unknown_route_is_404_not_found(emulator: str, method: str, path: str) -> None:
    status, headers, body = _call(emulator, method, path)
    assert (status, body) == (404, b'{"message":"Not Found"}')
    assert headers["Content-Type"] == "application/json"


def test_front_leaves_stats_and_invoke_routes_to_the_server(emulator: str) -> None:
    assert "functions" in _json(_call(emulator, "GET", "/_connstorm/stats")[2])
    status, _, _ = _call(emulator, "POST", "/2015-03-31/functions/proxy/invocations", b"{}")
    assert status == 200


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
    b"GET /http/x?%zz=%%&&=&a HTTP/1.1\r\nHost: \xff\xfe\r\nUser-Agent: \x80\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 4\r\n\r\n\xff\xfe\xfd\xfc",
])
def test_front_garbage_cannot_crash_the_emulator(emulator: str, garbage: bytes) -> None:
    answer = _raw(emulator, garbage)
    assert answer == b"" or answer.startswith(b"HTTP/1.")
    # THEN the emulator still answers a good request
    assert _call(emulator, "GET", "/rest/items/1")[0] == 200


def test_front_non_ascii_header_bytes_reach_the_handler(emulator: str) -> None:
    answer = _raw(emulator, b"GET /http/ok HTTP/1.1\r\nHost: x\r\nUser-Agent: \xc3\xbcua\r\n"
                            b"Connection: close\r\n\r\n", half_close=False)
    assert answer.startswith(b"HTTP/1.1 200")
    event = json.loads(answer.split(b"\r\n\r\n", 1)[1])["event"]
    assert event["requestContext"]["http"]["userAgent"] == "\u00fcua"


def test_dumps_event_falls_back_for_lone_surrogates() -> None:
    assert json.loads(dumps_event({"h": "a\udcffb"})) == {"h": "a\udcffb"}
    assert dumps_event({"a": 1}) == b'{"a":1}'


# ---------------------------------------------------------------- scripted outcomes


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
    routes = Routes(InvokeApi(invoker), Front(invoker, ROUTES),
                    {"/_connstorm/stats": lambda: {"stats": True}})
    with served(routes) as url:
        yield url, invoker


def test_front_scripted_passes_integration_timeout_as_wait_timeout(
        server: tuple[str, ScriptedInvoker]) -> None:
    url, invoker = server
    _call(url, "GET", "/rest/items/1")
    assert invoker.requests[-1].wait_timeout_s == 29.0
    _call(url, "GET", "/http/a")
    assert invoker.requests[-1].wait_timeout_s == 30.0
    _call(url, "GET", "/rest/slow")
    assert invoker.requests[-1].wait_timeout_s == 0.2
    _call(url, "GET", "/rest/items/1")
    assert invoker.requests[-1].function == "echo"
    assert invoker.requests[-1].invocation_type == "RequestResponse"


@pytest.mark.parametrize(("name", "rest_status", "http_status"), [
    ("throttled", 500, 500),
    ("fails", 502, 502),
    ("times_out", 502, 502),
    ("crashes", 502, 502),
    ("malformed", 502, 200),  # 2.0 ignores keys it does not know
    ("boom", 500, 500),
    ("slow", 504, 503),
])
def test_front_scripted_error_mapping(server: tuple[str, ScriptedInvoker], name: str,
                                      rest_status: int, http_status: int) -> None:
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


def test_front_scripted_exact_bodies_of_errors(server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    assert _call(url, "GET", "/rest/fails")[2] == b'{"message": "Internal server error"}'
    assert _call(url, "GET", "/rest/slow")[2] == b'{"message": "Endpoint request timed out"}'


def test_front_scripted_route_to_unknown_function_is_500(
        server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    status, _, body = _call(url, "GET", "/ghost")
    assert status == 500
    assert _json(body) == {"message": "Internal server error"}


def test_front_scripted_http_response_without_status_code_is_200_json(
        server: tuple[str, ScriptedInvoker]) -> None:
    url, _ = server
    status, headers, body = _call(url, "GET", "/http/x/plain")
    assert (status, body) == (200, b'{"hello": "world"}')
    assert headers["Content-Type"] == "application/json"
    assert _call(url, "GET", "/rest/plain")[0] == 502

