"""What the zygote prepares before forking stays correct in every environment.

The zygote keeps its collector off and initialises libpq's cryptography before
it forks (``local_stack/lambda_/zygote.py``, for memory the environments share):
each environment must still have its collector on and its own random numbers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import uvloop

from connstorm.local_stack.lambda_ import zygote
from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import InvocationRequest
from tests.local_stack.lambda_.emulator_helpers import emulator_config, function


def test_zygote_environments_collect_garbage_and_draw_their_own_random_salts(
        tmp_path: Path) -> None:
    # GIVEN a function whose zygote preloads psycopg (so it warms libpq up before forking)
    config = emulator_config(tmp_path / "run", function(
        "forked", "fork_state_handler", preload=("psycopg",)))

    async def scenario() -> list[dict[str, object]]:
        async with Emulator(config) as emu:
            # WHEN three overlapping invocations run, each in an environment of its own
            results = await asyncio.gather(*(emu.invoke(InvocationRequest(
                "forked", b'{"sleep_s": 0.5}')) for _ in range(3)))
            assert all(r.outcome == "success" for r in results), results
            return [json.loads(r.payload) for r in results]

    bodies = uvloop.run(scenario())
    # THEN they are three processes, each with its collector on and a salt of its own
    assert len({b["pid"] for b in bodies}) == 3
    assert all(b["gc_enabled"] is True for b in bodies)
    assert len({b["salt"] for b in bodies}) == 3


def test_zygote_libpq_warm_up_runs_without_a_server() -> None:
    # GIVEN psycopg imported, as a zygote that preloads it has  WHEN it warms libpq up
    # THEN that needs no server (nothing listens on the address it never opens)
    import psycopg.pq  # noqa: F401

    assert zygote._warm_up_libpq() is None
