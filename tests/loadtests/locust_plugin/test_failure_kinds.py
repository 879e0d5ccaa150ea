"""Failures of any user reworded with their kind (the pure part; the e2e tests run Locust)."""

from __future__ import annotations

import json

from connstorm.failures import classify_failure
from connstorm.loadtests.locust_plugin.failure_kinds import reworded

BORROW = json.dumps({"error": "timed out waiting for a connection", "kind": "proxy_borrow_timeout"})


def test_generic_http_errors_are_replaced_by_the_description() -> None:
    # requests' HTTPError names the URL: one row per item id; the description groups by kind
    text = "HTTPError('500 Server Error: Internal Server Error for url: /items/17')"
    new = reworded(text, generic=True, status=500, body=BORROW, kind_header=None)
    assert new == "HTTP 500 [proxy_borrow_timeout] timed out waiting for a connection"
    # FastHttpUser's says even less; the emulator front's header names the kind
    new = reworded("LocustBadStatusCode(code=502)", generic=True, status=502,
                   body='{"message":"Internal server error"}', kind_header="too_many_connections")
    assert new is not None
    assert classify_failure(new) == "too_many_connections"


def test_a_users_own_failure_text_is_kept_behind_status_and_kind() -> None:
    new = reworded("checkout failed", generic=False, status=500, body=BORROW, kind_header=None)
    assert new == "HTTP 500 [proxy_borrow_timeout] checkout failed"
    # a bare status: the user's words may still say what it was
    new = reworded("sorry, too many clients already", generic=False, status=500, body="",
                   kind_header=None)
    assert new is not None
    assert classify_failure(new) == "too_many_connections"
    new = reworded("wrong total", generic=False, status=404, body="", kind_header=None)
    assert new == "HTTP 404 [http_error] wrong total"


def test_failures_named_already_or_without_an_http_error_are_kept() -> None:
    described = "HTTP 500 [too_many_connections] connection failed"
    assert reworded(described, generic=False, status=500, body=BORROW, kind_header=None) is None
    assert reworded("HTTP 404 [http_error] Not Found", generic=False, status=404, body="",
                    kind_header=None) is None
    # a check of the user's own on a 200, and a refused connection (no status)
    assert reworded("wrong body", generic=False, status=200, body="{}", kind_header=None) is None
    assert reworded("ConnectionRefusedError(111)", generic=False, status=0, body=None,
                    kind_header=None) is None
