"""Failure texts of responses and their classification (pure logic)."""

from __future__ import annotations

import json

import pytest

from connstorm.failures import classify_failure, describe_failure

TOO_MANY = ('connection failed: connection to server at "127.0.0.1", port 5 failed: '
            'FATAL:  sorry, too many clients already')


def test_describe_failure_classifies_handler_error_text() -> None:
    text = describe_failure(500, json.dumps({"error": TOO_MANY}))
    assert text.startswith("HTTP 500 [too_many_connections] connection failed")
    assert classify_failure(text) == "too_many_connections"


def test_describe_failure_trusts_a_known_kind_in_the_body() -> None:
    text = describe_failure(503, json.dumps({"error": "busy", "kind": "pool_query_wait_timeout"}))
    assert text == "HTTP 503 [pool_query_wait_timeout] busy"


def test_describe_failure_ignores_an_unknown_kind_in_the_body() -> None:
    text = describe_failure(500, json.dumps({"error": "x", "kind": "made_up"}))
    assert text == "HTTP 500 [http_error] x"


@pytest.mark.parametrize(("status", "body", "kind"), [
    (500, '{"message": "Internal server error"}', "http_error"),
    (502, "not json at all", "http_error"),
    (504, '{"message": "Endpoint request timed out"}', "gateway_timeout"),
    (429, '{"message": "Too Many Requests"}', "lambda_throttled"),
    (500, '{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}',
     "lambda_timeout"),
])
def test_describe_failure_kinds_of_gateway_answers(status: int, body: str, kind: str) -> None:
    assert classify_failure(describe_failure(status, body)) == kind


def test_classify_failure_of_locust_exception_reprs() -> None:
    assert classify_failure("CatchResponseError('HTTP 500 [too_many_connections] x')") == \
        "too_many_connections"
    assert classify_failure("ConnectionRefusedError(111, 'Connection refused')") == \
        "connection_refused"
    assert classify_failure(None) == "other"


def test_describe_failure_takes_the_kind_from_the_emulator_header() -> None:
    body = '{"message": "Internal server error"}'
    assert describe_failure(502, body, "too_many_connections") == (
        "HTTP 502 [too_many_connections] Internal server error")
    # a body that names its own kind wins; an unknown header value is ignored
    assert describe_failure(503, '{"error": "x", "kind": "connection_lost"}',
                            "too_many_connections").startswith("HTTP 503 [connection_lost]")
    assert describe_failure(502, body, "bogus") == "HTTP 502 [http_error] Internal server error"
