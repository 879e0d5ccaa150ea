"""The emulator core with the real awslambdaric: reuse, freeze, reaping, limits, failures."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    UnknownFunctionError,
)
from tests.local_stack.lambda_.emulator_helpers import (
    alive,
    emulator_config,
    function,
    proc_state,
    settled_state,
    wait_until,
)


def _run(coro: Any) -> Any:
    return uvloop.run(coro)


def _body(result: InvocationResult) -> Any:
    return json.loads(result.payload)


async def _invoke(emu: Emulator, fn: str, event: Any = None, **kw: Any) -> InvocationResult:
    payload = json.dumps(event if event is not None else {}).encode()
    return await emu.invoke(InvocationRequest(fn, payload, **kw))


async def _settled(emu: Emulator) -> dict[str, Any]:
    """Wait (bounded) until no environment is busy: all answered and asked for more."""
    for _ in range(500):
        stats = emu.stats()
        if stats["env_busy"] == 0 and stats["env_initializing"] == 0:
            return stats
        await asyncio.sleep(0.01)
    raise AssertionError(f"environments never settled: {emu.stats()}")


def test_emulator_warm_reuse_keeps_module_state(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler", memory_mb=256,
                                                env={"FIXTURE_VAR": "from-scenario"}))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return [await _invoke(emu, "counter") for _ in range(3)]

    results = _run(scenario())
    bodies = [_body(r) for r in results]
    assert [b["count"] for b in bodies] == [1, 2, 3]
    assert len({b["pid"] for b in bodies}) == 1
    assert [r.cold for r in results] == [True, False, False]
    assert results[0].init_ms is not None
    assert results[0].init_ms > 0
    assert results[1].init_ms is None
    first = bodies[0]
    env_id = results[0].env_id
    assert env_id is not None
    assert len(env_id) == 32
    assert first["log_stream"].endswith(f"/[$LATEST]{env_id}")
    assert first["function_name"] == "counter"
    assert first["memory_mb"] == "256"
    assert first["remaining_ms"] > 0
    assert first["env"]["FIXTURE_VAR"] == "from-scenario"
    assert first["env"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert first["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert first["env"]["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/counter"
    assert first["env"]["AWS_LAMBDA_MAX_CONCURRENCY"] is None
    assert first["env"]["TZ"] == ":UTC"
    assert first["cwd"] == first["env"]["LAMBDA_TASK_ROOT"]
    log_text = (tmp_path / "logs" / "lambda" / "counter" / f"{env_id}.log").read_text()
    assert log_text.count("START RequestId:") == 3
    assert log_text.count("Init Duration:") == 1
    assert "Memory Size: 256 MB" in log_text


def test_emulator_two_concurrent_requests_land_in_two_environments(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return list(await asyncio.gather(
                *(_invoke(emu, "counter", {"sleep_s": 0.3}) for _ in range(2))))

    results = _run(scenario())
    assert len({r.env_id for r in results}) == 2
    assert len({_body(r)["pid"] for r in results}) == 2
    assert all(r.cold for r in results)


def test_emulator_freezes_environment_between_invocations(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> tuple[str | None, str | None, int]:
        async with Emulator(config) as emu:
            first = await _invoke(emu, "counter")
            pid = _body(first)["pid"]
            await _settled(emu)
            stopped = await settled_state(pid)
            second = await _invoke(emu, "counter")
            stats = await _settled(emu)
            assert stats["env_frozen"] == 1
            assert stats["env_busy"] == 0
            return stopped, await settled_state(pid), _body(second)["count"]

    stopped, after, count = _run(scenario())
    assert stopped == "T"
    assert after == "T"
    assert count == 2


def test_emulator_without_freeze_leaves_environment_running(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"), freeze=False)

    async def scenario() -> tuple[str | None, dict[str, Any]]:
        async with Emulator(config) as emu:
            pid = _body(await _invoke(emu, "counter"))["pid"]
            stats = await _settled(emu)
            return proc_state(pid), stats

    state, stats = _run(scenario())
    assert state in ("S", "R")
    assert stats["env_idle"] == 1
    assert stats["env_frozen"] == 0


def test_emulator_reaps_idle_environment_after_its_lifetime(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler",
                                                idle_lifetime_s=0.3))

    async def scenario() -> tuple[int, dict[str, Any], InvocationResult]:
        async with Emulator(config) as emu:
            pid = _body(await _invoke(emu, "counter"))["pid"]
            for _ in range(500):  # bounded: 10 s
                # dead, and the zygote's report of it processed
                if not alive(pid) and emu.stats()["env_total"] == 0:
                    break
                await asyncio.sleep(0.02)
            stats = emu.stats()
            again = await _invoke(emu, "counter")
            return pid, stats, again

    pid, stats, again = _run(scenario())
    assert not alive(pid)
    assert stats["env_reaped"] == 1
    assert stats["env_total"] == 0
    assert again.cold
    assert _body(again)["count"] == 1


def test_emulator_max_lifetime_retires_environment_when_idle(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler",
                                                max_lifetime_s=0.2))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            first = await _invoke(emu, "counter", {"sleep_s": 0.3})
            return [first, await _invoke(emu, "counter")]

    first, second = _run(scenario())
    assert first.env_id != second.env_id
    assert second.cold


@pytest.mark.parametrize(
    ("functions", "account", "reason"),
    [
        ([function("f", "counter_handler", reserved_concurrency=1)], {},
         "ReservedFunctionConcurrentInvocationLimitExceeded"),
        ([function("f", "counter_handler"), function("other", "counter_handler",
                                                     reserved_concurrency=1)],
         {"concurrency_limit": 2}, "ConcurrentInvocationLimitExceeded"),
        ([function("f", "counter_handler")], {"scaling_per_10s": 1},
         "FunctionInvocationRateLimitExceeded"),
        ([function("f", "counter_handler")], {"scaling": "legacy", "legacy_burst": 1,
                                               "legacy_per_minute": 1},
         "FunctionInvocationRateLimitExceeded"),
    ],
    ids=["reserved", "account", "scaling-rate", "legacy-burst"],
)
def test_emulator_throttles_at_limit_with_reason(tmp_path: Path, functions: list[Any],
                                                 account: dict[str, Any], reason: str) -> None:
    config = emulator_config(tmp_path, *functions, **account)

    async def scenario() -> tuple[InvocationResult, InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            busy = asyncio.ensure_future(_invoke(emu, "f", {"sleep_s": 0.5}))
            await asyncio.sleep(0)  # the first one now holds the only allowed environment
            throttled = await _invoke(emu, "f")
            return await busy, throttled, emu.stats()

    first, throttled, stats = _run(scenario())
    assert first.outcome == "success"
    assert throttled.outcome == "throttled"
    assert throttled.throttle_reason == reason
    assert stats["throttles"] == 1
    assert stats["errors_by_kind"] == {"lambda_throttled": 1}


def test_emulator_timeout_kills_environment_with_sandbox_timedout(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("slow", "counter_handler", timeout_s=0.5))

    async def scenario() -> tuple[InvocationResult, InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            timed_out = await _invoke(emu, "slow", {"sleep_s": 30})
            after = await _invoke(emu, "slow")
            return timed_out, after, emu.stats()

    timed_out, after, stats = _run(scenario())
    rid = timed_out.request_id
    assert timed_out.outcome == "timeout"
    assert timed_out.function_error == "Unhandled"
    assert json.loads(timed_out.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {rid} Error: Task timed out after 0.50 seconds"}
    log_text = (tmp_path / "logs" / "lambda" / "slow" / f"{timed_out.env_id}.log").read_text()
    assert f"{rid} Task timed out after 0.50 seconds" in log_text
    assert after.outcome == "success"
    assert after.cold
    assert after.init_ms is None  # the reset sandbox's re-init is a suppressed init
    assert after.env_id != timed_out.env_id
    assert _body(after)["count"] == 1
    assert stats["timeouts"] == 1
    assert stats["errors_by_kind"] == {"lambda_timeout": 1}


@pytest.mark.parametrize(("event", "how"), [({}, "signal: killed"), ({"exit": 3}, "exit status 3")])
def test_emulator_crash_gives_runtime_exit_error(tmp_path: Path, event: dict[str, Any],
                                                 how: str) -> None:
    config = emulator_config(tmp_path, function("crash", "crash_handler"),
                             function("counter", "counter_handler"))

    async def scenario() -> InvocationResult:
        async with Emulator(config) as emu:
            return await _invoke(emu, "crash", event)

    result = _run(scenario())
    assert result.outcome == "crash"
    assert result.error_type == "Runtime.ExitError"
    assert json.loads(result.payload) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {result.request_id} Error: Runtime exited with error: {how}"}


def test_emulator_crash_then_next_request_gets_fresh_environment(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("crash", "crash_handler"))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return [await _invoke(emu, "crash", {"exit": 1}) for _ in range(2)]

    first, second = _run(scenario())
    assert first.env_id != second.env_id
    assert second.cold
    assert second.outcome == "crash"


def test_emulator_handler_exception_keeps_environment_warm(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("raise", "raise_handler"))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return [await _invoke(emu, "raise"), await _invoke(emu, "raise", {"ok": True})]

    failed, ok = _run(scenario())
    assert failed.outcome == "function_error"
    assert failed.error_type == "BoomError"
    assert failed.error_message == "boom number 1"
    body = json.loads(failed.payload)
    assert body["errorType"] == "BoomError"
    assert body["stackTrace"]
    assert ok.outcome == "success"
    assert not ok.cold
    assert ok.env_id == failed.env_id
    assert _body(ok) == {"calls": 2}


def test_emulator_import_error_gives_init_error_and_discards_environment(
        tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("broken", "broken_import_handler"))

    async def scenario() -> tuple[InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            result = await _invoke(emu, "broken")
            for _ in range(250):
                if emu.stats()["env_total"] == 0:
                    break
                await asyncio.sleep(0.02)
            return result, emu.stats()

    result, stats = _run(scenario())
    assert result.outcome == "init_error"
    assert result.function_error == "Unhandled"
    assert result.error_type == "Runtime.ImportModuleError"
    assert "Unable to import module 'broken_import_handler'" in (result.error_message or "")
    assert json.loads(result.payload)["errorType"] == "Runtime.ImportModuleError"
    assert stats["env_total"] == 0
    assert stats["errors_by_kind"] == {"lambda_init_error": 1}
    log_text = (tmp_path / "logs" / "lambda" / "broken" / f"{result.env_id}.log").read_text()
    assert "Unable to import module 'broken_import_handler'" in log_text
    assert "INIT_REPORT Init Duration:" in log_text
    assert "Status: error\tError Type: Runtime.ImportModuleError" in log_text


def _log_texts(run_dir: Path, fn: str) -> dict[str, str]:
    return {p.stem: p.read_text() for p in (run_dir / "logs" / "lambda" / fn).glob("*.log")}


def test_emulator_init_over_timeout_is_retried_inside_the_invocation(tmp_path: Path) -> None:
    # GIVEN an Init (1.5 s) longer than init_timeout_s (1 s) but shorter than the
    # function timeout (3 s)
    config = emulator_config(tmp_path, function("sleepy", "sleepy_init_handler", timeout_s=3,
                                                env={"INIT_SLEEP_S": "1.5"}),
                             init_timeout_s=1)

    async def scenario() -> tuple[InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            result = await _invoke(emu, "sleepy", log_tail=True)
            return result, await _settled(emu)

    # WHEN it is invoked
    result, stats = _run(scenario())
    # THEN Lambda's "suppressed init": the Init is retried in a fresh runtime inside
    # the invocation, which succeeds; its time is in Duration, not Init Duration
    assert result.outcome == "success"
    assert result.cold
    assert result.init_ms is None
    assert result.duration_ms is not None
    assert result.duration_ms >= 1500  # the retried Init's sleep is part of it
    body = _body(result)
    assert 0 < body["remaining_ms"] < 3000 - 1400  # the Init used the function's time
    assert stats["cold_starts"] == 1
    assert stats["errors"] == 0
    logs = _log_texts(tmp_path, "sleepy")
    assert len(logs) == 2
    retried = logs.pop(result.env_id or "")
    (first,) = logs.values()
    assert "INIT_REPORT Init Duration:" in first
    assert "\tPhase: init\tStatus: timeout" in first
    assert "START RequestId:" not in first
    assert f"START RequestId: {result.request_id}" in retried
    report = next(line for line in retried.splitlines() if line.startswith("REPORT"))
    assert "Init Duration" not in report
    assert "INIT_REPORT" not in retried
    assert (result.log_tail or "").startswith(f"START RequestId: {result.request_id}")
    rows = [json.loads(line) for line in (tmp_path / "invocations.jsonl").read_text()
            .splitlines()]
    assert [(r["outcome"], r["cold"], r["init_ms"]) for r in rows] == [("success", True, None)]


def test_emulator_suppressed_init_over_function_timeout_times_out(tmp_path: Path) -> None:
    # GIVEN an Init (30 s) longer than init_timeout_s (0.5 s) and the function timeout (1 s)
    config = emulator_config(tmp_path, function("slow_init", "slow_init_handler", timeout_s=1),
                             init_timeout_s=0.5)

    async def scenario() -> tuple[InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            result = await _invoke(emu, "slow_init")
            for _ in range(250):  # bounded: both runtimes gone
                if emu.stats()["env_total"] == 0:
                    break
                await asyncio.sleep(0.02)
            return result, emu.stats()

    result, stats = _run(scenario())
    # THEN the retried Init runs into the function timeout: Sandbox.Timedout
    rid = result.request_id
    assert result.outcome == "timeout"
    assert result.function_error == "Unhandled"
    assert json.loads(result.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
    assert result.init_ms is None
    assert stats["env_total"] == 0
    assert stats["timeouts"] == 1
    retried = _log_texts(tmp_path, "slow_init")[result.env_id or ""]
    assert "\tPhase: invoke\tStatus: timeout" in retried
    assert f"{rid} Task timed out after 1.00 seconds" in retried
    assert "Status: timeout\tError Type: Sandbox.Timedout" in retried


@pytest.mark.slow
def test_emulator_reinit_after_a_crash_counts_against_the_timeout(tmp_path: Path) -> None:
    # GIVEN a function whose Init (1.2 s) is longer than its timeout (1 s)
    config = emulator_config(tmp_path, function("sleepy", "sleepy_init_handler", timeout_s=1,
                                                env={"INIT_SLEEP_S": "1.2"}))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return [await _invoke(emu, "sleepy", event) for event in ({}, {"exit": 1}, {}, {})]

    first, crashed, reinit, again = _run(scenario())
    # THEN the first Init is outside the function timeout, as on any cold start
    assert first.outcome == "success"
    assert first.init_ms is not None
    assert first.init_ms >= 1200
    assert crashed.outcome == "crash"
    # AND after the crash the sandbox re-initialises inside the next invocation, under
    # its timeout: it times out, and so does every one after (Lambda's "doom loop")
    for result in (reinit, again):
        assert result.outcome == "timeout"
        assert result.error_type == "Sandbox.Timedout"
        assert result.cold
        assert result.init_ms is None
    log_text = _log_texts(tmp_path, "sleepy")[again.env_id or ""]
    assert "\tPhase: invoke\tStatus: timeout" in log_text


@pytest.mark.parametrize(
    ("reserved", "account", "rate_reason", "limit_reason"),
    [
        (1, {}, "ReservedFunctionInvocationRateLimitExceeded",
         "ReservedFunctionConcurrentInvocationLimitExceeded"),
        (None, {"concurrency_limit": 1}, "FunctionInvocationRateLimitExceeded",
         "ConcurrentInvocationLimitExceeded"),
    ],
    ids=["reserved", "unreserved"],
)
def test_emulator_request_rate_limit_is_ten_times_concurrency(
        tmp_path: Path, reserved: int | None, account: dict[str, Any], rate_reason: str,
        limit_reason: str) -> None:
    # GIVEN a function whose concurrency (reserved, or the account's) is 1: 10 requests/s
    config = emulator_config(tmp_path, function("f", "counter_handler",
                                                reserved_concurrency=reserved), **account)

    # WHEN 20 requests arrive at once
    results = _twenty_at_once(config)
    reasons = [r.throttle_reason for r in results if r.outcome == "throttled"]
    # THEN one runs, the next nine (one second's worth of the rate in all) find the
    # concurrency taken, and the rest are over the request rate
    assert [r.outcome for r in results].count("success") == 1
    assert len(reasons) == 19
    assert set(reasons) == {limit_reason, rate_reason}
    assert reasons.count(rate_reason) >= 9  # refill while submitting is far below 1 token
    assert reasons[:9] == [limit_reason] * 9


def _twenty_at_once(config: EmulatorConfig) -> list[InvocationResult]:
    """Submit 20 invocations of ``f`` at once (submit is synchronous: no time passes)."""
    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            waiters = [emu.submit(InvocationRequest("f", b'{"sleep_s": 0.2}'))
                       for _ in range(20)]
            return list(await asyncio.gather(*waiters))

    results: list[InvocationResult] = _run(scenario())
    return results


@pytest.mark.parametrize(("account", "fn_setting"), [({"request_rate_limit": False}, None),
                                                     ({}, False)],
                         ids=["account-off", "function-off"])
def test_emulator_request_rate_limit_can_be_turned_off(tmp_path: Path, account: dict[str, Any],
                                                       fn_setting: bool | None) -> None:
    config = emulator_config(tmp_path, function("f", "counter_handler", reserved_concurrency=1,
                                                request_rate_limit=fn_setting), **account)

    results = _twenty_at_once(config)
    assert [r.throttle_reason for r in results[1:]] == [
        "ReservedFunctionConcurrentInvocationLimitExceeded"] * 19


def test_emulator_log_tail_holds_the_invocations_log(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> list[InvocationResult]:
        async with Emulator(config) as emu:
            return [await _invoke(emu, "counter", {"print": f"line-{i}"}, log_tail=True)
                    for i in range(2)]

    _, second = _run(scenario())
    tail = second.log_tail or ""
    assert tail.startswith(f"START RequestId: {second.request_id}")
    assert "line-1" in tail
    assert "line-0" not in tail
    assert f"REPORT RequestId: {second.request_id}" in tail


def test_emulator_unknown_function_raises(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> None:
        async with Emulator(config) as emu:
            assert emu.has_function("counter")
            assert not emu.has_function("nope")
            with pytest.raises(UnknownFunctionError):
                await _invoke(emu, "nope")

    _run(scenario())


def test_emulator_event_invocation_runs_after_answering(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> tuple[InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            queued = await _invoke(emu, "counter", invocation_type="Event")
            for _ in range(500):
                if emu.stats()["invocations"] == 1:
                    break
                await asyncio.sleep(0.02)
            return queued, emu.stats()

    queued, stats = _run(scenario())
    assert queued.outcome == "success"
    assert queued.payload == b""
    assert stats["invocations"] == 1
    assert stats["cold_starts"] == 1


def test_emulator_wait_timeout_returns_waited_out_and_invocation_runs_on(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> tuple[InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            result = await emu.invoke(InvocationRequest("counter", b'{"sleep_s": 0.6}',
                                                        wait_timeout_s=0.2))
            assert emu.stats()["concurrency"] == 1  # still running (or still in Init)
            for _ in range(500):
                if emu.stats()["invocations"] == 1:
                    break
                await asyncio.sleep(0.02)
            return result, emu.stats()

    result, stats = _run(scenario())
    assert result.waited_out
    assert stats["invocations"] == 1
    assert stats["errors"] == 0


def test_emulator_records_every_invocation_and_stats_keys(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("raise", "raise_handler", reserved_concurrency=1))

    async def scenario() -> dict[str, Any]:
        async with Emulator(config) as emu:
            busy = asyncio.ensure_future(_invoke(emu, "raise", {"ok": True}))
            await asyncio.sleep(0)
            await _invoke(emu, "raise")  # throttled
            await busy
            await _invoke(emu, "raise")  # function error
            return emu.stats()

    stats = _run(scenario())
    rows = [json.loads(line) for line in (tmp_path / "invocations.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["throttled", "success", "function_error"]
    for row in rows:
        assert set(row) == {"t", "request_id", "function", "env_id", "cold", "init_ms",
                            "duration_ms", "outcome", "error_type", "error_message",
                            "error_kind", "attempt"}
        assert row["attempt"] == 1
    assert rows[0]["error_kind"] == "lambda_throttled"
    assert rows[1]["cold"] is True
    assert rows[1]["init_ms"] > 0
    assert rows[1]["error_kind"] is None
    assert rows[2]["error_type"] == "BoomError"
    assert rows[2]["env_id"] == rows[1]["env_id"]
    expected = {"env_initializing", "env_busy", "env_frozen", "env_idle", "env_total",
                "env_reaped", "concurrency", "concurrency_peak", "invocations", "cold_starts",
                "throttles", "timeouts", "errors", "errors_by_kind"}
    assert expected <= set(stats)
    assert expected <= set(stats["functions"]["raise"])
    assert stats["invocations"] == 2
    assert stats["throttles"] == 1
    assert stats["errors"] == 1
    assert stats["concurrency_peak"] == 1
    assert stats["cold_starts"] == 1


def test_emulator_stop_leaves_no_environment_process(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> list[int]:
        async with Emulator(config) as emu:
            results = await asyncio.gather(
                *(_invoke(emu, "counter", {"sleep_s": 0.2}) for _ in range(3)))
            return [_body(r)["pid"] for r in results]

    started = time.monotonic()
    pids = _run(scenario())
    assert time.monotonic() - started < 60
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 5)


def test_emulator_exit_during_init_gives_init_error(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("dies", "exit_at_import_handler"))

    async def scenario() -> InvocationResult:
        async with Emulator(config) as emu:
            return await _invoke(emu, "dies")

    result = _run(scenario())
    assert result.outcome == "init_error"
    assert result.error_type == "Runtime.ExitError"
    assert result.error_message == (f"RequestId: {result.request_id} Error: Runtime exited "
                                    f"with error: exit status 2")


def test_emulator_passes_client_context_arn_and_trace_id(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"),
                             region="eu-west-1")
    context = base64.b64encode(json.dumps({"custom": {"who": "test"}}).encode()).decode()

    async def scenario() -> InvocationResult:
        async with Emulator(config) as emu:
            return await _invoke(emu, "counter", client_context=context)

    body = _body(_run(scenario()))
    assert body["client_custom"] == {"who": "test"}
    assert body["function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:counter"
    assert body["trace_id"].startswith("Root=1-")


def test_emulator_throttled_event_runs_when_capacity_frees(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler",
                                                reserved_concurrency=1))

    async def scenario() -> tuple[InvocationResult, dict[str, Any]]:
        async with Emulator(config) as emu:
            busy = asyncio.ensure_future(_invoke(emu, "counter", {"sleep_s": 0.4}))
            await asyncio.sleep(0)
            await _invoke(emu, "counter", invocation_type="Event")
            first = await busy
            for _ in range(500):
                if emu.stats()["invocations"] == 2:
                    break
                await asyncio.sleep(0.02)
            return first, emu.stats()

    first, stats = _run(scenario())
    assert first.outcome == "success"
    assert stats["invocations"] == 2
    assert stats["throttles"] == 0
    assert stats["cold_starts"] == 1  # the queued event waited for the warm environment


def test_emulator_restarts_a_killed_zygote_and_fails_only_what_it_held(tmp_path: Path) -> None:
    config = emulator_config(tmp_path, function("counter", "counter_handler"))

    async def scenario() -> tuple[InvocationResult, InvocationResult, int]:
        async with Emulator(config) as emu:
            env_pid = _body(await _invoke(emu, "counter"))["pid"]
            zygote = emu.pools["counter"].zygote
            assert zygote is not None
            assert zygote.pid is not None
            held = asyncio.ensure_future(_invoke(emu, "counter", {"sleep_s": 5}))
            await asyncio.sleep(0.2)
            os.kill(zygote.pid, signal.SIGKILL)
            lost = await held
            for _ in range(500):
                new = emu.pools["counter"].zygote
                if new is not None and new is not zygote and new.alive and new.ready is not None \
                        and new.ready.done():
                    break
                await asyncio.sleep(0.02)
            return lost, await _invoke(emu, "counter"), env_pid

    lost, after, env_pid = _run(scenario())
    assert lost.outcome == "crash"
    assert lost.error_type == "Runtime.ExitError"
    assert after.outcome == "success"
    assert after.cold
    assert wait_until(lambda: not alive(env_pid), 5)
