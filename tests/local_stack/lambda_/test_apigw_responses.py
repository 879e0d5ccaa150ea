"""Mapping a function's proxy response back to HTTP, REST (1.0) and HTTP API (2.0)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from connstorm.local_stack.lambda_.apigw_responses import (
    MalformedResponseError,
    parse_http_response,
    parse_response,
    parse_rest_response,
)


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _values(headers: tuple[tuple[str, str], ...], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def test_rest_response_status_headers_body() -> None:
    r = parse_rest_response(_j({"statusCode": 201, "headers": {"X-A": "1",
                                "Content-Type": "text/plain"}, "body": "made"}))
    assert r.status == 201
    assert r.body == b"made"
    assert _values(r.headers, "x-a") == ["1"]
    assert _values(r.headers, "content-type") == ["text/plain"]


def test_rest_response_multi_value_headers_merge_and_win() -> None:
    r = parse_rest_response(_j({
        "statusCode": 200,
        "headers": {"X-One": "h", "Set-Cookie": "from-headers"},
        "multiValueHeaders": {"set-cookie": ["a=1", "b=2"], "X-Two": ["x", "y"]},
    }))
    assert _values(r.headers, "set-cookie") == ["a=1", "b=2"]
    assert _values(r.headers, "x-two") == ["x", "y"]
    assert _values(r.headers, "x-one") == ["h"]


def test_rest_response_defaults_content_type_json_and_empty_body() -> None:
    r = parse_rest_response(_j({"statusCode": 200}))
    assert r.body == b""
    assert _values(r.headers, "content-type") == ["application/json"]


def test_rest_response_base64_body_is_decoded() -> None:
    blob = bytes(range(256))
    r = parse_rest_response(_j({"statusCode": 200, "isBase64Encoded": True,
                                "body": base64.b64encode(blob).decode()}))
    assert r.body == blob


def test_rest_response_scalar_header_values_become_text_and_null_is_dropped() -> None:
    r = parse_rest_response(_j({"statusCode": "200", "headers": {"X-N": 5, "X-B": True,
                                                                 "X-None": None}}))
    assert r.status == 200
    assert _values(r.headers, "x-n") == ["5"]
    assert _values(r.headers, "x-b") == ["true"]
    assert _values(r.headers, "x-none") == []


def test_responses_framing_headers_are_remapped_not_sent() -> None:
    for parse in (parse_rest_response, parse_http_response):
        r = parse(_j({"statusCode": 200, "body": "abc",
                      "headers": {"Content-Length": "999", "Connection": "close",
                                  "Transfer-Encoding": "chunked"}}))
        names = {k.lower() for k, _ in r.headers}
        assert not names & {"content-length", "connection", "transfer-encoding"}
        assert _values(r.headers, "x-amzn-Remapped-Content-Length") == ["999"]


@pytest.mark.parametrize("payload", [
    b"not json",
    b"",
    b'"a string"',
    b"null",
    b"[1, 2]",
    _j({"statusCode": 200, "extra": 1}),
    _j({"statusCode": 200, "cookies": ["a=1"]}),
    _j({"body": "no status"}),
    _j({"statusCode": "abc"}),
    _j({"statusCode": 99}),
    _j({"statusCode": 700}),
    _j({"statusCode": True}),
    _j({"statusCode": 200, "body": {"an": "object"}}),
    _j({"statusCode": 200, "body": "!!", "isBase64Encoded": True}),
    _j({"statusCode": 200, "isBase64Encoded": "yes"}),
    _j({"statusCode": 200, "headers": ["X-A", "1"]}),
    _j({"statusCode": 200, "headers": {"X-A": {"nested": 1}}}),
    _j({"statusCode": 200, "headers": {"X-A": "a\r\nInjected: 1"}}),
    _j({"statusCode": 200, "headers": {"Bad Name": "1"}}),
    _j({"statusCode": 200, "multiValueHeaders": {"X-A": "not a list"}}),
    b"[" * 100_000,
])
def test_rest_response_malformed_is_rejected(payload: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_rest_response(payload)


def test_http_response_without_status_code_is_200_json_of_the_whole_payload() -> None:
    for payload in (_j({"hello": "world"}), b'"just a string"', b"[1,2]", b"null", b"42"):
        r = parse_http_response(payload)
        assert r.status == 200
        assert r.body == payload
        assert _values(r.headers, "content-type") == ["application/json"]


def test_http_response_cookies_become_set_cookie_headers() -> None:
    r = parse_http_response(_j({"statusCode": 302, "cookies": ["a=1; Path=/", "b=2"],
                                "headers": {"Location": "/x"}}))
    assert r.status == 302
    assert _values(r.headers, "set-cookie") == ["a=1; Path=/", "b=2"]
    assert _values(r.headers, "location") == ["/x"]


def test_http_response_structured_with_base64_body() -> None:
    r = parse_http_response(_j({"statusCode": 200, "isBase64Encoded": True,
                                "body": base64.b64encode(b"\x00\xff").decode(),
                                "headers": {"content-type": "image/png"}}))
    assert r.body == b"\x00\xff"
    assert _values(r.headers, "content-type") == ["image/png"]


@pytest.mark.parametrize("payload", [
    b"not json",
    b"",
    b"{",
    _j({"statusCode": "x"}),
    _j({"statusCode": 200, "cookies": "a=1"}),
    _j({"statusCode": 200, "cookies": [1]}),
    _j({"statusCode": 200, "body": 5}),
    _j({"statusCode": 200, "headers": {"X": "a\nb"}}),
])
def test_http_response_malformed_is_rejected(payload: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_http_response(payload)


def test_responses_no_content_statuses_drop_the_body() -> None:
    assert parse_rest_response(_j({"statusCode": 204, "body": "x"})).body == b""


def test_parse_response_dispatches_on_version() -> None:
    assert parse_response(b'{"a": 1}', "2.0").status == 200
    with pytest.raises(MalformedResponseError):
        parse_response(b'{"a": 1}', "1.0")
