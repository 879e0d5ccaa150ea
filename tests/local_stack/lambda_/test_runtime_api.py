"""The Runtime API cannot be abused: foreign or repeated answers, malformed HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from pathlib import Path
from typing import Any

import uvloop

from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.environment import BUSY, Environment
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from tests.local_stack.lambda_.emulator_helpers import emulator_config, function


def _post(port: int, path: str, body: bytes = b"{}") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body)
        return conn.getresponse().status
    finally:
        conn.close()


def _garbage(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x00\x01NOT HTTP AT ALL\r\n\r\n")
        return sock.recv(1024)


async def _busy_envs(emu: Emulator, n: int) -> list[Environment]:
    for _ in range(500):
        envs = [e for e in emu.by_id.values() if e.state == BUSY and e.invocation is not None
                and e.invocation.started]
        if len(envs) == n:
            return envs
        await asyncio.sleep(0.01)
    raise AssertionError("environments never became busy")


def test_runtime_api_foreign_or_repeated_answers_touch_no_invocation(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> tuple[list[InvocationResult], dict[str, Any]]:
        async with Emulator(config) as emu:
            calls = [asyncio.ensure_future(emu.invoke(InvocationRequest(
                "counter", b'{"sleep_s": 0.8}'))) for _ in range(2)]
            env_a, env_b = await _busy_envs(emu, 2)
            assert env_a.invocation is not None
            assert env_b.invocation is not None
            rid_b = env_b.invocation.request_id
            prefix = "/2018-06-01/runtime/invocation"
            statuses = {
                "foreign": await asyncio.to_thread(_post, env_a.port,
                                                   f"{prefix}/{rid_b}/response", b'"stolen"'),
                "foreign_error": await asyncio.to_thread(_post, env_a.port,
                                                         f"{prefix}/{rid_b}/error"),
                "unknown": await asyncio.to_thread(_post, env_a.port,
                                                   f"{prefix}/no-such-id/response"),
                "init_error_late": await asyncio.to_thread(
                    _post, env_a.port, "/2018-06-01/runtime/init/error"),
                "bad_path": await asyncio.to_thread(_post, env_a.port, "/nowhere"),
                "garbage": await asyncio.to_thread(_garbage, env_a.port),
            }
            results = list(await asyncio.gather(*calls))
            rid_a = results[0].request_id
            statuses["repeat"] = await asyncio.to_thread(
                _post, env_a.port, f"{prefix}/{rid_a}/response", b'"again"')
            return results, statuses

    results, statuses = uvloop.run(scenario())
    assert statuses["foreign"] == 400
    assert statuses["foreign_error"] == 400
    assert statuses["unknown"] == 400
    assert statuses["init_error_late"] == 403
    assert statuses["bad_path"] == 404
    assert statuses["garbage"] == b""  # that connection closed, nothing else
    assert statuses["repeat"] in (400, 403)
    for result in results:
        assert result.outcome == "success"
        body = json.loads(result.payload)
        assert body["request_id"] == result.request_id
        assert body["count"] == 1
