"""Reaped environments vanish as microVMs do: no SIGTERM, connections left to the server.

Real PostgreSQL with short keepalive settings, real awslambdaric environments:
the reaped environment's process is gone while its backend is still in
``pg_stat_activity``; the backend goes once the emulator stops holding the socket
(after the server's keepalive time, or when the emulator stops in any way).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvloop

from connstorm.local_stack import keepalive
from connstorm.local_stack.lambda_ import vanished
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import InvocationRequest
from connstorm.local_stack.postgres import PostgresServer
from tests.local_stack.lambda_.emulator_helpers import alive, emulator_config, function

#: Short keepalive settings: a vanished client is dropped after 3 + 1 x 2 = 5 s.
KEEPALIVE = {"tcp_keepalives_idle": 3, "tcp_keepalives_interval": 1, "tcp_keepalives_count": 2}


def _backends(admin_dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("select application_name, state from pg_stat_activity "
                            "where application_name like 'env-%' order by 1").fetchall()
    return [(str(name), str(state)) for name, state in rows]


async def _until(check: Callable[[], Any], timeout_s: float = 30.0) -> bool:
    """Poll ``check`` (run in a thread) until true or ``timeout_s`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return bool(await asyncio.to_thread(check))


def _config(tmp_path: Path, pg: PostgresServer, **account: Any) -> EmulatorConfig:
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    return emulator_config(tmp_path / "run", function(
        "db", "vanish_handler", preload=("psycopg",), idle_lifetime_s=0.3,
        env={"FIXTURE_DSN": pg.app_dsn, "FIXTURE_MARKS": str(marks)}), **account)


@pytest.mark.slow
def test_reaped_environment_vanishes_and_its_backend_stays_for_the_keepalive_time(
        tmp_path: Path, postgres_factory: Callable[..., PostgresServer]) -> None:
    pg = postgres_factory(**KEEPALIVE)
    linger = keepalive.postgres_linger_s(pg.admin_dsn)
    config = dataclasses.replace(_config(tmp_path, pg), vanished_lingers={
        keepalive.endpoint(pg.host, pg.port): linger})

    async def scenario() -> dict[str, Any]:
        async with Emulator(config) as emu:
            result = await emu.invoke(InvocationRequest("db", b"{}"))
            body = json.loads(result.payload)
            # GIVEN its idle lifetime passes, WHEN the reaper takes it, the process goes
            assert await _until(lambda: not alive(body["pid"]))
            during = await asyncio.to_thread(_backends, pg.admin_dsn)
            stats_during = emu.stats()
            # THEN the backend outlives it, until the server's keepalive would give up
            assert await _until(lambda: not _backends(pg.admin_dsn))
            return {"body": body, "during": during, "stats_during": stats_during,
                    "stats_after": emu.stats()}

    out = uvloop.run(scenario())
    assert linger == 5.0
    assert out["during"] == [(f"env-{out['body']['env_id']}", "idle")]
    stats = out["stats_during"]
    assert stats["env_reaped"] == 1
    assert stats["env_total"] == 0
    # one connection held (the database's), not the Runtime API's it also had
    assert (stats["vanished_connections"], stats["vanished_environments"]) == (1, 1)
    after = out["stats_after"]
    assert (after["vanished_connections"], after["vanished_environments"]) == (0, 0)
    assert list((tmp_path / "marks").iterdir()) == []  # no SIGTERM reached it


@pytest.mark.slow
def test_held_connections_close_when_the_emulator_stops(
        tmp_path: Path, postgres_factory: Callable[..., PostgresServer]) -> None:
    pg = postgres_factory(**KEEPALIVE)
    config = _config(tmp_path, pg, vanished_linger_s=600)  # longer than the test

    async def scenario() -> tuple[list[tuple[str, str]], int]:
        async with Emulator(config) as emu:
            body = json.loads((await emu.invoke(InvocationRequest("db", b"{}"))).payload)
            assert await _until(lambda: not alive(body["pid"]))
            held = emu.stats()["vanished_connections"]
            during = await asyncio.to_thread(_backends, pg.admin_dsn)
        return during, held

    during, held = uvloop.run(scenario())
    assert held == 1
    assert len(during) == 1
    assert uvloop.run(_until(lambda: not _backends(pg.admin_dsn), 10))


@pytest.mark.slow
def test_linger_zero_closes_the_connection_with_the_process(
        tmp_path: Path, postgres_factory: Callable[..., PostgresServer]) -> None:
    pg = postgres_factory(**KEEPALIVE)
    config = dataclasses.replace(_config(tmp_path, pg, vanished_linger_s=0), vanished_lingers={
        keepalive.endpoint(pg.host, pg.port): 600.0})

    async def scenario() -> dict[str, Any]:
        async with Emulator(config) as emu:
            body = json.loads((await emu.invoke(InvocationRequest("db", b"{}"))).payload)
            assert await _until(lambda: not alive(body["pid"]))
            assert await _until(lambda: not _backends(pg.admin_dsn), 10)
            return emu.stats()

    stats = uvloop.run(scenario())
    assert stats["env_reaped"] == 1
    assert stats["vanished_connections"] == 0
    assert list((tmp_path / "marks").iterdir()) == []  # still no SIGTERM: no extensions


@pytest.mark.slow
def test_without_pidfd_getfd_it_says_so_once_and_shuts_down_as_before(
        tmp_path: Path, postgres_factory: Callable[..., PostgresServer],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    pg = postgres_factory(**KEEPALIVE)
    monkeypatch.setattr(vanished, "probe", lambda: "pidfd_getfd is not available (test)")
    config = _config(tmp_path, pg, vanished_linger_s=600)

    async def scenario() -> tuple[str, dict[str, Any]]:
        async with Emulator(config) as emu:
            body = json.loads((await emu.invoke(InvocationRequest("db", b"{}"))).payload)
            assert await _until(lambda: not alive(body["pid"]))
            assert await _until(lambda: not _backends(pg.admin_dsn), 10)
            return str(body["env_id"]), emu.stats()

    with caplog.at_level(logging.WARNING, logger=vanished.__name__):
        env_id, stats = uvloop.run(scenario())
    assert stats["vanished_connections"] == 0
    assert (tmp_path / "marks" / f"{env_id}.sigterm").exists()  # today's shutdown: SIGTERM
    lines = [r.getMessage() for r in caplog.records if "pidfd_getfd" in r.getMessage()]
    assert len(lines) == 1
    assert "\n" not in lines[0]


def test_linger_of_a_peer_override_known_unknown() -> None:
    held = vanished.VanishedSockets({"127.0.0.1:5432": 360.0, "127.0.0.1:6432": None})
    assert held.linger_s("127.0.0.1", 5432) == 360.0
    assert held.linger_s("127.0.0.1", 6432) == vanished.FOREVER
    assert held.linger_s("127.0.0.1", 7000) == 0.0
    assert held.holding
    override = vanished.VanishedSockets({"127.0.0.1:5432": 360.0}, override=12.0)
    assert override.linger_s("127.0.0.1", 7000) == 12.0
    assert not vanished.VanishedSockets({"127.0.0.1:5432": 360.0}, override=0).holding
    assert not vanished.VanishedSockets({}).holding
