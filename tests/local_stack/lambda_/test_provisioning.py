"""Provisioned concurrency and deploys, with real awslambdaric environments and PostgreSQL.

What users see in the database: provisioned environments hold their
connections before the first request and for ever after; a deploy brings a
second generation of environments, and connections, while the first lingers.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvloop

from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from connstorm.local_stack.postgres import PostgresServer
from connstorm.scenario import PostgresConfig, VpcConfig
from tests.local_stack.lambda_.emulator_helpers import emulator_config, function
from tests.local_stack.lambda_.http_harness import (
    emulator_config as http_emulator_config,
)
from tests.local_stack.lambda_.http_harness import (
    emulator_server,
    get_stats,
    http_function,
)


def _env_connections(admin_dsn: str) -> list[str]:
    """application_name of each environment's backend (``env-<id>``)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("select application_name from pg_stat_activity "
                            "where application_name like 'env-%' order by 1").fetchall()
    return [str(r[0]) for r in rows]


async def _burst(emu: Emulator, n: int, sleep_s: float = 0.5) -> list[InvocationResult]:
    payload = json.dumps({"sleep_s": sleep_s}).encode()
    return list(await asyncio.gather(*(emu.invoke(InvocationRequest("db", payload))
                                       for _ in range(n))))


async def _until(check: Any, timeout_s: float = 15.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return bool(await check())


@pytest.mark.slow
def test_provisioned_environments_hold_connections_before_the_first_request_and_stay(
        tmp_path: Path) -> None:
    with PostgresServer(PostgresConfig(max_connections=20), tmp_path / "pg") as pg:
        config = emulator_config(tmp_path / "run", function(
            "db", "pg_handler", preload=("psycopg",), idle_lifetime_s=1.0,
            provisioned_concurrency=2, env={"FIXTURE_DSN": pg.app_dsn}))

        async def scenario() -> dict[str, Any]:
            async with Emulator(config) as emu:
                out: dict[str, Any] = {}
                # GIVEN the emulator has started, before any request
                out["before_stats"] = emu.stats()
                out["before"] = await asyncio.to_thread(_env_connections, pg.admin_dsn)
                # WHEN four requests arrive at once
                out["burst"] = await _burst(emu, 4)
                out["burst_stats"] = emu.stats()["functions"]["db"]

                # THEN after the idle lifetime the on-demand ones are reaped, not the others
                async def reaped() -> bool:
                    return bool(emu.stats()["env_reaped"] == 2 and len(await asyncio.to_thread(
                        _env_connections, pg.admin_dsn)) == 2)

                assert await _until(reaped), emu.stats()
                out["after"] = await asyncio.to_thread(_env_connections, pg.admin_dsn)
                out["after_stats"] = emu.stats()
                return out

        out = uvloop.run(scenario())
    before = out["before_stats"]
    assert before["provisioned"] == 2
    assert before["env_frozen"] == 2
    assert before["invocations"] == 0
    assert before["cold_starts"] == 0
    assert len(out["before"]) == 2  # the baseline: connections held with no load at all
    bodies = [json.loads(r.payload) for r in out["burst"]]
    provisioned = [b for b, r in zip(bodies, out["burst"], strict=True) if not r.cold]
    spilled = [b for b, r in zip(bodies, out["burst"], strict=True) if r.cold]
    assert len(provisioned) == 2
    assert len(spilled) == 2
    assert {b["init_type"] for b in provisioned} == {"provisioned-concurrency"}
    assert {b["init_type"] for b in spilled} == {"on-demand"}
    assert sorted(f"env-{b['env_id']}" for b in provisioned) == out["before"]
    stats = out["burst_stats"]
    assert stats["spillover_invocations"] == 2
    assert stats["provisioned_invocations"] == 2
    assert stats["cold_starts"] == 2
    assert out["after"] == out["before"]
    assert out["after_stats"]["provisioned"] == 2


@pytest.mark.slow
def test_deploy_doubles_environments_and_connections_until_the_old_ones_are_reaped(
        tmp_path: Path) -> None:
    n = 3
    with PostgresServer(PostgresConfig(max_connections=20), tmp_path / "pg") as pg:
        config = emulator_config(tmp_path / "run", function(
            "db", "pg_handler", preload=("psycopg",), idle_lifetime_s=3.0,
            env={"FIXTURE_DSN": pg.app_dsn}))

        async def scenario() -> dict[str, Any]:
            async with Emulator(config) as emu:
                out: dict[str, Any] = {}
                # GIVEN n environments, each with its connection, frozen
                first = await _burst(emu, n)
                await asyncio.sleep(1.5)  # the old generation's idle clock runs ahead
                # WHEN a new version is deployed and the same load comes again
                out["deploy"] = emu.deploy("db")
                second = await _burst(emu, n)
                out["during_stats"] = emu.stats()["functions"]["db"]
                out["during"] = await asyncio.to_thread(_env_connections, pg.admin_dsn)
                out["first"] = {json.loads(r.payload)["env_id"] for r in first}
                out["second"] = {json.loads(r.payload)["env_id"] for r in second}
                out["second_cold"] = [r.cold for r in second]
                new_names = sorted(f"env-{e}" for e in out["second"])

                # THEN the old generation goes when reaped, and only it
                async def old_gone() -> bool:
                    return await asyncio.to_thread(_env_connections, pg.admin_dsn) == new_names

                assert await _until(old_gone), emu.stats()
                out["after_stats"] = emu.stats()["functions"]["db"]
                return out

        out = uvloop.run(scenario())
    assert out["deploy"] == {"function": "db", "version": 2, "superseded": n}
    assert out["first"].isdisjoint(out["second"])  # new requests, new environments
    assert out["second_cold"] == [True] * n
    during = out["during_stats"]
    assert during["env_total"] == 2 * n
    assert during["superseded"] == n
    assert during["version"] == 2
    assert during["deploys"] == 1
    assert len(out["during"]) == 2 * n  # twice the connections during the overlap
    assert sorted(out["during"]) == sorted(f"env-{e}" for e in out["first"] | out["second"])
    after = out["after_stats"]
    assert after["superseded"] == 0
    assert after["env_reaped"] >= n


def _post(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_deploy_endpoint_publishes_a_version_and_new_requests_cold_start(tmp_path: Path) -> None:
    config = http_emulator_config(
        [http_function("proxy", "proxy_handler.lambda_handler")], [], tmp_path / "run")
    payload = json.dumps({"rawPath": "/x"}).encode()
    with emulator_server(config, tmp_path / "run") as url:
        def invoke() -> Any:
            request = urllib.request.Request(
                f"{url}/2015-03-31/functions/proxy/invocations", data=payload, method="POST")
            with urllib.request.urlopen(request, timeout=10) as resp:
                return json.loads(json.loads(resp.read())["body"])["pid"]

        before = invoke()
        assert invoke() == before  # warm
        status, doc = _post(f"{url}/_connstorm/functions/proxy/deploy")
        assert (status, doc) == (200, {"function": "proxy", "version": 2, "superseded": 1})
        after = invoke()
        stats = get_stats(url)["functions"]["proxy"]
        missing = _post(f"{url}/_connstorm/functions/nope/deploy")
    assert after != before
    assert stats["cold_starts"] == 2
    assert stats["superseded"] == 1
    assert stats["env_total"] == 2
    assert missing == (404, {"message": "no function 'nope'"})


def test_provisioned_environments_of_a_vpc_function_start_once_it_is_active(
        tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function(
        "db", "counter_handler", provisioned_concurrency=1,
        vpc=VpcConfig(eni_model="hyperplane", eni_attach_ms=500)))

    async def scenario() -> tuple[float, dict[str, Any], InvocationResult]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with Emulator(config) as emu:
            started_s = loop.time() - t0
            stats = emu.stats()["functions"]["db"]
            return started_s, stats, await emu.invoke(InvocationRequest("db", b"{}"))

    started_s, stats, result = uvloop.run(scenario())
    # Lambda allocates provisioned concurrency on an Active function only
    assert started_s >= 0.5
    assert stats["vpc"]["state"] == "Active"
    assert stats["provisioned"] == 1
    assert result.outcome == "success"
    assert not result.cold


def test_deploy_gives_the_new_version_its_own_provisioned_environments(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("db", "counter_handler",
                                                provisioned_concurrency=2))

    async def scenario() -> tuple[dict[str, Any], InvocationResult, set[str]]:
        async with Emulator(config) as emu:
            old = set(emu.pools["db"].envs)
            emu.deploy("db")
            for _ in range(500):  # bounded: the new version's two finish their Init
                stats = emu.stats()["functions"]["db"]
                if stats["provisioned"] == 2 and stats["env_frozen"] == 4:
                    break
                await asyncio.sleep(0.01)
            result = await emu.invoke(InvocationRequest("db", b"{}"))
            return emu.stats()["functions"]["db"], result, old

    stats, result, old = uvloop.run(scenario())
    assert stats["provisioned"] == 2  # the new version's
    assert stats["superseded"] == 2  # the old version's, lingering until reaped
    assert stats["env_total"] == 4
    assert result.env_id not in old
    assert not result.cold  # served by a new provisioned environment
    assert stats["provisioned_invocations"] == 1


@pytest.mark.slow
def test_provisioned_init_is_not_under_the_on_demand_init_limit(tmp_path: Path) -> None:
    # GIVEN an Init of 1.5 s and an on-demand Init limit of 0.5 s
    slow = {"INIT_SLEEP_S": "1.5"}
    config = emulator_config(
        tmp_path / "run",
        function("warm", "sleepy_init_handler", provisioned_concurrency=1, env=slow),
        function("cold", "sleepy_init_handler", env=slow),
        init_timeout_s=0.5)

    async def scenario() -> tuple[dict[str, Any], InvocationResult]:
        async with Emulator(config) as emu:
            before = emu.stats()["functions"]
            return before, await emu.invoke(InvocationRequest("cold", b"{}"))

    before, cold = uvloop.run(scenario())
    # THEN the provisioned environment initialised (its limit is 130 s or the timeout)
    assert before["warm"]["provisioned"] == 1
    assert before["warm"]["env_frozen"] == 1
    warm_logs = "".join(p.read_text() for p in (tmp_path / "run" / "logs" / "lambda" /
                                                 "warm").iterdir())
    assert "Status: timeout" not in warm_logs
    # AND an on-demand one ran out of its 0.5 s and was retried inside the invocation
    assert cold.outcome == "success"
    cold_logs = "".join(p.read_text() for p in (tmp_path / "run" / "logs" / "lambda" /
                                                 "cold").iterdir())
    assert "Status: timeout" in cold_logs
