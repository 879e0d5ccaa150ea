"""Shared parts of the hostile-input tests: the emulator under attack, raw HTTP, bounds.

The fuzzers talk to the REAL emulator server process (``python -m
connstorm.local_stack.lambda_``, real awslambdaric environments) over raw sockets, so
they can send what no HTTP client would: any method, undecodable paths,
repeated or odd headers, bodies of any bytes, requests cut short or sent a few
bytes at a time.

Bounded for CI: every fuzzer uses :data:`FUZZ` (a fixed number of examples,
derandomized so a run is repeatable, no deadline since a loaded 2-core machine
is slow, no example database). ``CONNSTORM_FUZZ_EXAMPLES`` raises the count
for a longer hunt.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from connstorm.scenario import RouteConfig
from tests.listeners import descendants, listeners
from tests.local_stack.lambda_.http_harness import emulator_config, emulator_server, http_function

#: Examples per fuzzer: a few seconds each on a loaded 2-core machine.
EXAMPLES = int(os.environ.get("CONNSTORM_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
#: How long one answer may take: the function's own timeout plus room for a loaded machine.
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as it came off the wire."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes = field(repr=False, default=b"")

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Target:
    """The emulator under attack: its URL, port, pid and log."""

    url: str
    port: int
    pid: int
    log_path: Path

    def tracebacks(self) -> list[str]:
        """Log lines of unexpected exceptions: each is a bug a fuzzer found."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines()
                if "Traceback" in line or re.search(r"\b(failed|ERROR)\b.*Error", line)]


def parse(raw: bytes) -> Answer | None:
    """The first answer in ``raw``, or None when no complete status line came."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    body = rest[:int(length)] if length is not None else rest
    return Answer(status, headers, body, raw)


def exchange(port: int, data: bytes, *, pieces: int = 1, pause_s: float = 0.0,
             half_close: bool = False, timeout_s: float = ANSWER_TIMEOUT_S) -> bytes:
    """Send ``data`` (in ``pieces`` with ``pause_s`` between), read until the server closes.

    The requests carry ``Connection: close``, so the server ending the
    connection marks the end of its answer. ``half_close`` sends our end of
    stream after ``data``: the server takes that as the client leaving (as
    nginx and Go's server do) and may close without answering.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        step = max(1, -(-len(data) // max(1, pieces)))
        for start in range(0, len(data), step):
            try:
                sock.sendall(data[start:start + step])
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered (413, 400) and closed before all was sent
            if pause_s:
                time.sleep(pause_s)
        if half_close:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break  # reset, or no (more) answer within timeout_s: what came is the answer
            if not chunk:
                break
            out += chunk
        return out


def request_bytes(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                  body: bytes, *, chunked: bool = False) -> bytes:
    """An HTTP/1.1 request with ``Connection: close`` and a Host, framed by length or chunks."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        framed = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}".encode())
        framed = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + framed


def alive_health(target: Target) -> bool:
    """The emulator still answers ``/_connstorm/health``."""
    answer = parse(exchange(target.port, request_bytes(b"GET", b"/_connstorm/health", [], b""),
                            timeout_s=10))
    return answer is not None and answer.status == 200


def runtime_api_ports(target: Target) -> list[int]:
    """The Runtime API ports of the emulator's environments: its other listeners."""
    return [item.port for item in listeners(target.pid) if item.port != target.port]


def _gone(pids: set[int]) -> bool:
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return False
        except OSError:
            continue
    return True


@contextmanager
def emulator_under_attack(workdir: Path) -> Iterator[Target]:
    """The real emulator with an echo function behind a REST, an HTTP API and Invoke route.

    On the way out: SIGTERM, and every process it started must be gone (nothing
    left behind, whatever the fuzzers sent).
    """
    functions = [http_function("proxy", "proxy_handler.lambda_handler", timeout_s=5)]
    routes = [RouteConfig("GET", "/rest/{proxy+}", "proxy", "1.0"),
              RouteConfig("ANY", "/http/{proxy+}", "proxy", "2.0"),
              RouteConfig("POST", "/upload", "proxy", "2.0")]
    config = emulator_config(functions, routes, workdir / "run")
    seen: set[int] = set()
    with emulator_server(config, workdir) as url:
        ready = json.loads((workdir / "ready.json").read_text())
        target = Target(url=url, port=int(ready["port"]), pid=int(ready["pid"]),
                        log_path=workdir / "emulator.log")
        try:
            yield target
        finally:
            seen = descendants(target.pid)
    deadline = time.monotonic() + 20
    while not _gone(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(seen), f"processes left behind by the emulator: {sorted(seen)}"
