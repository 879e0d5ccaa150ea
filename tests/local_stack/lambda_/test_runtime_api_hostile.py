"""Hostile input to the Runtime API: stray requests never touch a real invocation.

Property-based (bounded by :data:`hostile.FUZZ`) against the listeners of the
REAL emulator's environments (found as the emulator process's other listening
ports), while a real awslambdaric environment keeps serving invocations. Each
stray request gets the Runtime API's answer (400 ``InvalidRequestID``, 403
``InvalidStateTransition``, 404 ``NotFound``, 405 ``MethodNotAllowed``, with a
JSON ``errorType``), and every real invocation meanwhile comes back intact.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.local_stack.lambda_.hostile import (
    FUZZ,
    Target,
    alive_health,
    emulator_under_attack,
    exchange,
    parse,
    request_bytes,
    runtime_api_ports,
)

pytestmark = pytest.mark.slow

PREFIX = "/2018-06-01/runtime"
ERROR_TYPES = {400: "InvalidRequestID", 403: "InvalidStateTransition", 404: "NotFound",
               405: "MethodNotAllowed"}
ids = st.one_of(st.uuids().map(str), st.text("abcdef0123456789-", min_size=1, max_size=40))
paths = st.one_of(
    ids.map(lambda i: f"{PREFIX}/invocation/{i}/response"),
    ids.map(lambda i: f"{PREFIX}/invocation/{i}/error"),
    st.just(f"{PREFIX}/init/error"),
    st.just(f"{PREFIX}/invocation/next"),
    st.text("abcxyz/-_.", max_size=30).map(lambda t: f"{PREFIX}/{t}"),
    st.text("abcxyz/-_.%", max_size=30).map(lambda t: f"/{t}"),
)


def _invoke(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/2015-03-31/functions/proxy/invocations",
                                     data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers.get("X-Amz-Function-Error") is None
        doc: dict[str, Any] = json.loads(response.read())
        return doc


class _Invoker(threading.Thread):
    """Real invocations, one after another, each with a marker it must get back."""

    def __init__(self, url: str) -> None:
        super().__init__(name="real-invocations", daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.done = 0
        self.problems: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            marker = f"m{self.done}"
            try:
                doc = _invoke(self.url, {"rawPath": "/echo", "marker": marker})
                if json.loads(doc["body"])["event"]["marker"] != marker:
                    self.problems.append(f"invocation {marker} got {doc}")
            except Exception as exc:
                self.problems.append(f"invocation {marker}: {exc!r}")
            self.done += 1


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with emulator_under_attack(tmp_path_factory.mktemp("runtime-hostile")) as emulator:
        yield emulator
        assert alive_health(emulator)
        assert emulator.tracebacks() == []


@pytest.fixture
def busy(target: Target) -> Iterator[tuple[list[int], _Invoker]]:
    _invoke(target.url, {"rawPath": "/echo"})
    invoker = _Invoker(target.url)
    invoker.start()
    ports = runtime_api_ports(target)
    assert ports, "no environment listener found"
    yield ports, invoker
    invoker.stop.set()
    invoker.join(60)
    assert invoker.problems == []
    assert invoker.done > 0


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=paths,
       error_type=st.one_of(st.none(), st.text("Runtime.ABCxyz", max_size=20)),
       body=st.binary(max_size=2048), pick=st.integers(0, 1000))
def test_runtime_api_stray_requests_get_runtime_api_answers(
        target: Target, busy: tuple[list[int], _Invoker], method: str, path: str,
        error_type: str | None, body: bytes, pick: int) -> None:
    ports, _ = busy
    if method == "GET" and path == f"{PREFIX}/invocation/next":
        method = "POST"  # a stray long poll is its own test below
    headers = [] if error_type is None else [(b"Lambda-Runtime-Function-Error-Type",
                                             error_type.encode())]
    raw = exchange(ports[pick % len(ports)], request_bytes(method.encode(), path.encode(),
                                                           headers, body), timeout_s=10)
    answer = parse(raw)
    if answer is None:
        # An environment reaped meanwhile closed its listener: nothing to answer.
        assert raw == b""
        return
    assert answer.status in ERROR_TYPES, answer
    assert answer.json()["errorType"] == ERROR_TYPES[answer.status]


def test_runtime_api_stray_long_poll_leaves_the_function_working(target: Target) -> None:
    # GIVEN a warm environment, and a stray client asking its listener for the next event
    # while no invocation runs (one that came meanwhile would go to the stray client,
    # and run into its timeout: the listener is the environment's identity, and on
    # Lambda only the environment's own runtime can reach it)
    _invoke(target.url, {"rawPath": "/echo"})
    ports = runtime_api_ports(target)
    for port in ports:
        raw = exchange(port, request_bytes(b"GET", f"{PREFIX}/invocation/next".encode(), [],
                                           b""), timeout_s=1)
        # THEN it waits (a long poll), and its leaving ...
        assert raw == b""
    # ... leaves the function answering every invocation, intact
    for n in range(3):
        doc = _invoke(target.url, {"rawPath": "/echo", "marker": n})
        assert json.loads(doc["body"])["event"]["marker"] == n
    assert alive_health(target)
