"""Test helpers for the HTTP side: a real aiohttp server in a thread, and a scripted Invoker.

:class:`ScriptedInvoker` is pure-logic scaffolding: it stands in for the
emulator core where a test is about how the front and the Invoke API map an
outcome (a throttle, a timeout, a malformed answer) to HTTP, and returns exactly
the :class:`InvocationResult` the test scripts. Tests of real invocations go
through the real emulator (real awslambdaric environments) instead.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    UnknownFunctionError,
)

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
def served(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (free port) from a thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["port"] = runner.addresses[0][1]

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            box["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
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
