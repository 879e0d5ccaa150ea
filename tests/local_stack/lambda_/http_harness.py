"""Test helpers for the HTTP side: the real emulator, our HTTP server, a scripted Invoker.

:class:`ScriptedInvoker` is pure-logic scaffolding: it stands in for the
emulator core where a test is about how the front and the Invoke API map an
outcome (a throttle, a timeout, a malformed answer) to HTTP, and returns exactly
the :class:`InvocationResult` the test scripts. Tests of real invocations go
through the real emulator (real awslambdaric environments) instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.front import MAX_PAYLOAD_BYTES
from connstorm.local_stack.lambda_.http_server import Handler, HttpServer
from connstorm.local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    UnknownFunctionError,
)
from connstorm.scenario import FunctionConfig, LambdaConfig, RouteConfig

Script = Callable[[InvocationRequest], Awaitable[InvocationResult]]


class ScriptedInvoker:
    """An Invoker whose functions are coroutines the test writes; records every request."""

    def __init__(self, functions: dict[str, Script]) -> None:
        self.functions = functions
        self.requests: list[InvocationRequest] = []

    def has_function(self, name: str) -> bool:
        return name in self.functions

    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        if request.function not in self.functions:
            raise UnknownFunctionError(request.function)
        self.requests.append(request)
        run = self.functions[request.function](request)
        if request.wait_timeout_s is None:
            return await run
        try:
            return await asyncio.wait_for(run, request.wait_timeout_s)
        except TimeoutError:
            return InvocationResult(request_id=str(uuid.uuid4()), outcome="success",
                                    waited_out=True)


def returns(payload: bytes | str, **fields: Any) -> Script:
    """A function that answers every invocation with ``payload`` (and result fields)."""
    body = payload.encode() if isinstance(payload, str) else payload

    async def run(request: InvocationRequest) -> InvocationResult:
        fields.setdefault("outcome", "success")
        return InvocationResult(request_id=str(uuid.uuid4()), payload=body, **fields)
    return run


@contextmanager
def served(handler: Handler) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (free port) from a thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    server = HttpServer(handler, max_body_bytes=MAX_PAYLOAD_BYTES)
    started = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["port"] = loop.run_until_complete(server.start())
        except BaseException as exc:
            box["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=main, name="test-http-server", daemon=True)
    thread.start()
    started.wait(10)
    if "error" in box:
        raise box["error"]
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


HANDLERS_DIR = Path(__file__).resolve().parent / "http_handlers"


@contextmanager
def emulator_server(config: EmulatorConfig, workdir: Path,
                    ready_timeout_s: float = 60.0) -> Iterator[str]:
    """The real emulator server (``python -m connstorm.local_stack.lambda_``); yields its URL.

    It runs real awslambdaric environments, exactly as ``connstorm up`` starts it,
    and dies with the test process (parent death signal). Stopped with SIGTERM
    (environments shut down the Lambda way), killed if that takes too long.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "emulator.json"
    ready = workdir / "ready.json"
    log_path = workdir / "emulator.log"
    config.write(config_path)
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connstorm.local_stack.lambda_", "--config", str(config_path),
             "--ready-file", str(ready), "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            preexec_fn=preexec_death_signal, cwd=str(workdir))
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"emulator did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def emulator_config(functions: Sequence[FunctionConfig], routes: Sequence[RouteConfig],
                    run_dir: Path, **account: Any) -> EmulatorConfig:
    """An emulator config for functions and routes, the account settings overridden."""
    return EmulatorConfig(account=LambdaConfig(**account), functions=tuple(functions),
                          routes=tuple(routes), run_dir=str(run_dir))


def http_function(name: str, handler: str, **kw: Any) -> FunctionConfig:
    """A function whose code is in ``http_handlers/`` and that uses no database."""
    kw.setdefault("preload", ())
    return FunctionConfig(name=name, handler=handler, code_dir=str(HANDLERS_DIR),
                          database="none", **kw)


def get_stats(url: str) -> dict[str, Any]:
    """The emulator's ``/_connstorm/stats``."""
    with urllib.request.urlopen(f"{url}/_connstorm/stats", timeout=10) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until true; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
