"""What the emulator exists to show: each environment holds its own connection, frozen."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvloop

from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import InvocationRequest
from connstorm.local_stack.postgres import PostgresServer
from connstorm.scenario import PostgresConfig
from tests.local_stack.lambda_.emulator_helpers import (
    alive,
    emulator_config,
    function,
    settled_state,
)

N = 5


def _env_connections(admin_dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("select application_name, state from pg_stat_activity "
                            "where application_name like 'env-%' order by 1").fetchall()
    return [(str(name), str(state)) for name, state in rows]


@pytest.mark.slow
def test_pg_module_level_connections_sit_idle_in_frozen_environments_until_reaped(
        tmp_path: Path) -> None:
    with PostgresServer(PostgresConfig(max_connections=20), tmp_path / "pg") as pg:
        config = emulator_config(tmp_path / "run", function(
            "db", "pg_handler", preload=("psycopg",), idle_lifetime_s=1.5,
            env={"FIXTURE_DSN": pg.app_dsn}))

        async def scenario() -> tuple[list[Any], list[tuple[str, str]], list[str | None],
                                      list[tuple[str, str]]]:
            async with Emulator(config) as emu:
                # GIVEN N concurrent requests (each sleeps, so none can reuse another's env)
                results = await asyncio.gather(*(emu.invoke(InvocationRequest(
                    "db", b'{"sleep_s": 0.5}')) for _ in range(N)))
                bodies = [json.loads(r.payload) for r in results]
                for _ in range(500):
                    if emu.stats()["env_frozen"] == N:
                        break
                    await asyncio.sleep(0.01)
                # THEN N idle connections, from N frozen environments
                during = await asyncio.to_thread(_env_connections, pg.admin_dsn)
                states = [await settled_state(b["pid"]) for b in bodies]
                # WHEN the environments outlive their idle lifetime, THEN the connections go
                after = during
                for _ in range(750):  # bounded: 15 s
                    after = await asyncio.to_thread(_env_connections, pg.admin_dsn)
                    if not after and not any(alive(b["pid"]) for b in bodies):
                        break
                    await asyncio.sleep(0.02)
                assert emu.stats()["env_reaped"] == N
                return bodies, during, states, after

        bodies, during, states, after = uvloop.run(scenario())
    assert len({b["env_id"] for b in bodies}) == N
    assert len({b["backend_pid"] for b in bodies}) == N
    assert sorted(during) == sorted((f"env-{b['env_id']}", "idle") for b in bodies)
    assert states == ["T"] * N
    assert after == []
