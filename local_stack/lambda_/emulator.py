"""The emulator core: schedules invocations onto real awslambdaric environments.

:class:`Emulator` implements the :class:`~local_stack.lambda_.invocation.Invoker`
protocol for the HTTP side. Per function it keeps a zygote (fork server), a LIFO
of frozen environments and a scaling bucket. A request takes the most recently
used idle environment, else a new one if the limits allow (see
:mod:`local_stack.lambda_.scaling`), else it is throttled; before any of that,
the request-rate limit (10 x concurrency per second) may throttle it. An Init
over ``init_timeout_s``, and the first invocation of a sandbox reset by a
timeout or crash, run a "suppressed init": a fresh runtime whose Init counts
against the invocation's timeout (:meth:`Emulator._reinit`). ``Event``
invocations wait in the function's :class:`~.event_queue.EventQueue`, which
retries failed runs. Each environment
talks to its own Runtime API listener (:mod:`local_stack.lambda_.runtime_api`);
between invocations it is SIGSTOPped, as Lambda freezes its microVM.

Everything runs on one event loop; all state changes are synchronous callbacks,
so the bookkeeping needs no locks and an invocation gets exactly one result
(the first of response, error, timeout, crash, init failure). The module is
longer than the house's 400 lines on purpose: it is one state machine (the
environment's and the invocation's transitions, driven by the Runtime API,
the zygote's reports and the timers), and keeping every transition in one
place is what makes "exactly one result" checkable; the pieces without state
live beside it (:mod:`.runtime_env`, :mod:`.log_stream`, :mod:`.scaling`,
:mod:`.function_pool`).

>>> async def demo(config):
...     async with Emulator(config) as emu:
...         return await emu.invoke(InvocationRequest("api", b"{}"))
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from local_stack.lambda_ import runtime_api
from local_stack.lambda_.config import EmulatorConfig, function_arn
from local_stack.lambda_.environment import (
    BUSY,
    DEAD,
    FROZEN,
    IDLE,
    INITIALIZING,
    STOPPING,
    Environment,
    Invocation,
)
from local_stack.lambda_.event_queue import QueuedEvent
from local_stack.lambda_.function_pool import FunctionPool, aggregate_stats
from local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    Outcome,
    UnknownFunctionError,
)
from local_stack.lambda_.invocation_log import InvocationLog, error_kind, make_record
from local_stack.lambda_.log_stream import end_lines, init_report_line, start_line, timeout_line
from local_stack.lambda_.runtime_api import RuntimeConnection
from local_stack.lambda_.runtime_env import (
    client_context_header,
    exit_reason,
    function_environment,
    new_env_id,
    new_request_id,
    runtime_dir,
    stream_name,
    trace_id,
)
from local_stack.lambda_.scaling import (
    concurrency_reason,
    rate_reason,
    request_rate_buckets,
    scaling_bucket,
)
from local_stack.lambda_.zygote_client import ZygoteClient

log = logging.getLogger(__name__)


class Emulator:
    """Lambda's execution environments for a set of functions; an async context manager."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.account = config.account
        self.run_dir = Path(config.run_dir)
        self.pools: dict[str, FunctionPool] = {}
        self.by_id: dict[str, Environment] = {}
        self.by_pid: dict[int, Environment] = {}
        self.inflight: set[Invocation] = set()
        self.concurrency_peak = 0
        self.unreserved_limit = self.account.concurrency_limit - sum(
            fn.reserved_concurrency or 0 for fn in config.functions)
        self.invocation_log: InvocationLog | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._launching: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._emulator_log_fd: int | None = None
        account_bucket = scaling_bucket(self.account) if self.account.scaling == "legacy" else None
        runtime_root = runtime_dir()
        rate_buckets = request_rate_buckets(self.account, config.functions)
        for fn in config.functions:
            bucket = account_bucket or scaling_bucket(self.account)
            self.pools[fn.name] = FunctionPool(
                fn, bucket, function_environment(fn, self.account.region, runtime_root),
                rate_bucket=rate_buckets[fn.name])

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the invocation log, start every function's zygote and the reaper."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.invocation_log = InvocationLog(self.run_dir / "invocations.jsonl")
            self.invocation_log.start()
            for pool in self.pools.values():
                (self.run_dir / "logs" / "lambda" / pool.fn.name).mkdir(parents=True,
                                                                       exist_ok=True)
            await asyncio.gather(*(self._start_zygote(p) for p in self.pools.values()))
        except BaseException:
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._reaper()))
        for pool in self.pools.values():
            self._tasks.append(loop.create_task(pool.events.run(
                functools.partial(self._start_event, pool),
                functools.partial(self._give_up_event, pool))))

    async def _start_zygote(self, pool: FunctionPool) -> None:
        zygote = ZygoteClient(pool.fn.name, {
            "handler": pool.fn.handler, "code_dir": pool.fn.code_dir,
            "env": pool.base_env, "preload": list(pool.fn.preload)}, self)
        pool.zygote = zygote
        await zygote.start()

    async def stop(self) -> None:
        """Shut every environment down as Lambda does, then the zygotes; flush the log."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for env in list(self.by_id.values()):
            if env.state not in (STOPPING, DEAD):
                self._shutdown(env, reaped=False)
        deadline = time.monotonic() + self.account.shutdown_timeout_s + 2.0
        while any(e.alive for e in self.by_id.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for pool in self.pools.values():
            if pool.zygote is not None:
                await pool.zygote.stop()
        for env in list(self.by_id.values()):
            self._on_env_dead(env, -signal.SIGKILL)
        for inv in list(self.inflight):
            self._complete(inv, "crash", error_type="Runtime.ExitError",
                           error_message=f"RequestId: {inv.request_id} Error: "
                                         f"Runtime exited with error: signal: killed")
        if self.invocation_log is not None:
            self.invocation_log.close()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ Invoker

    def has_function(self, name: str) -> bool:
        """Whether a function by that name exists."""
        return name in self.pools

    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        """Run one invocation; see :class:`~local_stack.lambda_.invocation.Invoker`.

        A caller that goes away (its task cancelled) does not cancel the invocation.
        """
        return await asyncio.shield(self.submit(request))

    def submit(self, request: InvocationRequest) -> asyncio.Future[InvocationResult]:
        """Start one invocation now; its result arrives on the returned future.

        The HTTP side's path: no coroutine, task, ``wait_for`` or ``shield`` per
        request. Those cost about a third of the emulator's CPU per warm
        invocation (BENCHMARKS.md). The future is the caller's own: cancelling it
        changes nothing for the invocation. ``Event`` invocations are queued and
        answered at once (``success``, no payload); ``DryRun`` only checks that the
        function exists. With ``wait_timeout_s`` the caller is answered
        ``waited_out`` when it expires, while the invocation runs on. Over the
        request-rate limit the answer is ``throttled`` at once.
        """
        pool = self.pools.get(request.function)
        if pool is None:
            raise UnknownFunctionError(request.function)
        loop = asyncio.get_running_loop()
        request_id = new_request_id()
        waiter: asyncio.Future[InvocationResult] = loop.create_future()
        if request.invocation_type != "RequestResponse":
            if request.invocation_type == "Event":
                pool.events.put(request_id, request)
            waiter.set_result(InvocationResult(request_id=request_id, outcome="success"))
            return waiter
        rate = pool.rate_bucket
        if rate is not None and not rate.take():
            waiter.set_result(self._throttled(pool, request_id, rate_reason(pool.fn)))
            return waiter
        inv = Invocation(request_id, request, loop.create_future(), waiter=waiter)
        reason = self._begin(pool, inv)
        if reason is not None:
            waiter.set_result(self._throttled(pool, request_id, reason))
        elif request.wait_timeout_s is not None:
            inv.wait_timer = loop.call_later(request.wait_timeout_s, _waited_out, inv)
        return waiter

    # ------------------------------------------------------------ scheduling

    def _unreserved_concurrency(self) -> int:
        return sum(p.concurrency for p in self.pools.values()
                   if p.fn.reserved_concurrency is None)

    def _begin(self, pool: FunctionPool, inv: Invocation) -> str | None:
        """Place ``inv`` on a warm or a new environment; the throttle reason if neither."""
        if self._stopping:
            return "ConcurrentInvocationLimitExceeded"
        env = pool.pop_finishing()
        if env is not None:
            # It answered and is about to ask for its next event: queue this one on it
            # (on_next dispatches it). On Lambda the caller's round trip is always
            # longer than the runtime's, so a sequential caller never sees this
            # environment busy; here an in-process or loopback caller could, and get a
            # spurious cold start or throttle.
            self.inflight.add(inv)
            env.invocation = inv
            inv.env = env
            # Bound the wait in case the runtime never asks again (a broken one).
            inv.timer = asyncio.get_running_loop().call_later(pool.fn.timeout_s,
                                                              self._on_timeout, inv)
            return None
        reason = concurrency_reason(pool.fn, pool.concurrency, self._unreserved_concurrency(),
                                    self.unreserved_limit)
        if reason is not None:
            return reason
        env = pool.pop_idle()
        max_s = pool.fn.max_lifetime_s
        while env is not None and max_s is not None and time.monotonic() - env.spawned >= max_s:
            self._shutdown(env)  # retired: the reaper would have, a moment later
            env = pool.pop_idle()
        if env is not None:
            self.inflight.add(inv)
            self._dispatch(pool, env, inv)
            return None
        if pool.resets and pool.take_reset(time.monotonic()):
            self.inflight.add(inv)
            inv.cold = True
            self._reinit(pool, inv)
            self._note_peak()
            return None
        if not pool.bucket.take():
            return rate_reason(pool.fn)
        self.inflight.add(inv)
        inv.cold = True
        env = self._new_environment(pool)
        env.invocation = inv
        inv.env = env
        self._note_peak()
        self._launch(pool, env)
        return None

    def _start_event(self, pool: FunctionPool, event: QueuedEvent) -> str | None:
        """Run one attempt of a queued ``Event`` invocation; the throttle reason if it cannot."""
        rate = pool.rate_bucket
        if rate is not None and not rate.take():
            return rate_reason(pool.fn)
        inv = Invocation(event.request_id, event.request,
                         asyncio.get_running_loop().create_future(), attempt=event.attempt)
        reason = self._begin(pool, inv)
        if reason is None:
            inv.future.add_done_callback(
                lambda done: pool.events.finished(event, done.result()))
        return reason

    def _give_up_event(self, pool: FunctionPool, event: QueuedEvent, reason: str) -> None:
        self._throttled(pool, event.request_id, reason, event.attempt)

    def _note_peak(self) -> None:
        now = sum(p.concurrency for p in self.pools.values())
        self.concurrency_peak = max(self.concurrency_peak, now)

    def _new_environment(self, pool: FunctionPool) -> Environment:
        env_id = new_env_id()
        log_path = str(self.run_dir / "logs" / "lambda" / pool.fn.name / f"{env_id}.log")
        fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        env = Environment(env_id=env_id, function=pool.fn.name, log_path=log_path, log_fd=fd)
        pool.add(env)
        self.by_id[env_id] = env
        return env

    def _launch(self, pool: FunctionPool, env: Environment) -> None:
        """Bind the environment's Runtime API port and have the zygote fork it, now."""
        try:
            if pool.zygote is None or not pool.zygote.alive:
                raise OSError("the function's zygote is not running")
            sock = runtime_api.bind(self.config.host)
        except OSError as exc:
            if not env.suppressed_init:
                pool.bucket.give_back()
            self._fail_init(env, "Runtime.InitError", f"cannot start environment: {exc}")
            self._on_env_dead(env, 1)
            return
        env.listen_sock = sock
        env.port = int(sock.getsockname()[1])
        stream = stream_name(env.env_id)
        env.spawned = time.monotonic()
        pool.zygote.spawn(env.env_id, {
            "AWS_LAMBDA_RUNTIME_API": f"{self.config.host}:{env.port}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        }, env.log_path)
        loop = asyncio.get_running_loop()
        if not env.suppressed_init:  # bounded by the invocation's timeout instead
            env.init_timer = loop.call_later(self.account.init_timeout_s,
                                             self._on_init_timeout, env)
        task = loop.create_task(self._serve(env, sock))
        self._launching.add(task)  # the loop keeps only a weak reference to tasks
        task.add_done_callback(self._launching.discard)

    async def _serve(self, env: Environment, sock: socket.socket) -> None:
        try:
            server = await runtime_api.serve(self, env, sock)
        except OSError as exc:
            sock.close()
            self._fail_init(env, "Runtime.InitError", f"cannot serve the Runtime API: {exc}")
            self._kill(env)
            return
        if env.state == DEAD:
            server.close()
            return
        env.server = server

    def _dispatch(self, pool: FunctionPool, env: Environment, inv: Invocation) -> None:
        """Thaw ``env`` and answer its pending ``/next`` with ``inv``'s event."""
        pool.set_state(env, BUSY)
        self._note_peak()
        env.invocation = inv
        env.uses += 1
        inv.env = env
        env.thaw()
        rid = inv.request_id
        fn = pool.fn
        now = time.monotonic()
        timeout_s = fn.timeout_s
        suppressed = inv.started != 0.0
        if suppressed:
            # A suppressed init ran inside this invocation (START is logged, the
            # timer armed): its time counts against the function timeout.
            timeout_s -= now - inv.started
        else:
            if inv.request.log_tail:
                inv.log_offset = env.log_size()
            env.log(start_line(rid))
            inv.started = now
        headers = {
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + timeout_s) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": function_arn(self.account.region, fn.name),
            "Lambda-Runtime-Trace-Id": trace_id(),
        }
        context = client_context_header(inv.request.client_context)
        if context is not None:
            headers["Lambda-Runtime-Client-Context"] = context
        conn = env.next_conn
        if conn is None or not conn.send_event(rid, inv.request.payload, headers):
            self._kill(env)
            self._complete(inv, "crash", error_type="Runtime.ExitError",
                           error_message=f"RequestId: {rid} Error: Runtime exited with error: "
                                         f"connection lost")
            return
        if suppressed:
            return
        if inv.timer is not None:
            inv.timer.cancel()
        inv.timer = asyncio.get_running_loop().call_later(timeout_s, self._on_timeout, inv)

    def _park(self, pool: FunctionPool, env: Environment) -> None:
        """An environment finished (or finished Init) and waits: freeze it, stack it."""
        env.invocation = None
        env.last_used = time.monotonic()
        max_life = pool.fn.max_lifetime_s
        if self._stopping or (max_life is not None and env.last_used - env.spawned >= max_life):
            self._shutdown(env)
            return
        if self.account.freeze:
            pool.set_state(env, FROZEN)
            env.freeze()
        else:
            pool.set_state(env, IDLE)
        pool.idle.append(env)

    def _throttled(self, pool: FunctionPool, request_id: str, reason: str,
                   attempt: int = 1) -> InvocationResult:
        result = InvocationResult(request_id=request_id, outcome="throttled",
                                  throttle_reason=reason)
        self._record(pool, result, attempt)
        return result

    # ------------------------------------------------------------ endings

    def _complete(self, inv: Invocation, outcome: Outcome, *, payload: bytes | None = None,
                  error_type: str | None = None, error_message: str | None = None) -> None:
        """Give ``inv`` its one result: log END/REPORT, record it, wake the caller."""
        if inv.done:
            return
        self.inflight.discard(inv)
        if inv.timer is not None:
            inv.timer.cancel()
        env = inv.env
        pool = self.pools[inv.request.function]
        duration_ms = (time.monotonic() - inv.started) * 1000 if inv.started else 0.0
        init_ms = env.init_ms if (env is not None and inv.cold) else None
        tail = None
        if env is not None:
            platform_error = error_type is not None and outcome != "function_error"
            env.log(end_lines(
                inv.request_id, duration_ms=duration_ms, memory_mb=pool.fn.memory_mb,
                max_memory_mb=env.max_memory_mb(),
                init_ms=init_ms if outcome != "init_error" else None,
                status=("timeout" if outcome == "timeout" else "error") if platform_error
                else None, error_type=error_type))
            if inv.request.log_tail:
                tail = env.read_log_tail(inv.log_offset)
        if payload is None and error_type is not None:
            payload = json.dumps({"errorType": error_type,
                                  "errorMessage": error_message or ""}).encode()
        result = InvocationResult(
            request_id=inv.request_id, outcome=outcome, payload=payload or b"",
            error_type=error_type, error_message=error_message, log_tail=tail,
            env_id=env.env_id if env is not None else None, cold=inv.cold, init_ms=init_ms,
            duration_ms=duration_ms if inv.started else None)
        inv.future.set_result(result)
        inv.release(result)
        self._record(pool, result, inv.attempt)
        if env is not None and env.state == BUSY and outcome in ("success", "function_error"):
            pool.finishing.append(env)

    def _record(self, pool: FunctionPool, result: InvocationResult, attempt: int = 1) -> None:
        if result.outcome == "throttled":
            pool.throttles += 1
        else:
            pool.invocations += 1
            pool.cold_starts += int(result.cold)
            if result.outcome == "timeout":
                pool.timeouts += 1
            if result.outcome != "success":
                pool.errors += 1
        kind = error_kind(result)
        if kind is not None:
            pool.errors_by_kind[kind] += 1
        if self.invocation_log is not None:
            record = make_record(pool.fn.name, result)
            record["attempt"] = attempt
            self.invocation_log.add(record)

    def _fail_init(self, env: Environment, error_type: str, message: str,
                   payload: bytes | None = None, *, status: str = "error") -> None:
        """Init failed: INIT_REPORT into the log stream, the pending invocation fails."""
        init_ms = (time.monotonic() - env.spawned) * 1000
        env.log(_init_report(env, init_ms, status, error_type))
        inv = env.invocation
        if inv is not None and not inv.done:
            self._complete(inv, "init_error", error_type=error_type, error_message=message,
                           payload=payload)

    def _on_timeout(self, inv: Invocation) -> None:
        env = inv.env
        fn = self.pools[inv.request.function].fn
        seconds = f"{fn.timeout_s:.2f}"
        if env is not None:
            if env.state == INITIALIZING:  # a suppressed init that ran out of time
                env.log(_init_report(env, (time.monotonic() - env.spawned) * 1000, "timeout",
                                     "Sandbox.Timedout"))
            env.log(timeout_line(inv.request_id, fn.timeout_s))
        self._complete(inv, "timeout", error_type="Sandbox.Timedout",
                       error_message=f"RequestId: {inv.request_id} Error: Task timed out "
                                     f"after {seconds} seconds")
        if env is not None:
            if env.state not in (STOPPING, DEAD) and not self._stopping:
                self.pools[env.function].resets.append(time.monotonic())
            self._kill(env)

    def _on_init_timeout(self, env: Environment) -> None:
        """Init ran out of ``init_timeout_s``: Lambda retries it inside the invocation.

        The environment is discarded (INIT_REPORT ``Status: timeout``); a fresh one
        takes over the invocation at once, its Init now bounded by the function's
        timeout and counted in the invocation's Duration, and its REPORT without
        ``Init Duration`` (a "suppressed init"). An invocation that is gone, or a
        retry that also fails, fails as before.
        """
        if env.state != INITIALIZING:
            return
        inv = env.invocation
        rid = inv.request_id if inv is not None else ""
        if inv is None or inv.done or env.suppressed_init or self._stopping:
            self._fail_init(env, "Runtime.InitError",
                            f"RequestId: {rid} Error: Runtime init timed out after "
                            f"{self.account.init_timeout_s:.2f} seconds", status="timeout")
            self._kill(env)
            return
        pool = self.pools[env.function]
        env.log(_init_report(env, (time.monotonic() - env.spawned) * 1000, "timeout",
                             "Runtime.InitError"))
        env.invocation = None  # its death must not fail the invocation
        self._kill(env)
        log.info("%s: init of %s ran out of %.2f s; retrying it in invocation %s",
                 pool.fn.name, env.env_id, self.account.init_timeout_s, rid)
        self._reinit(pool, inv)

    def _reinit(self, pool: FunctionPool, inv: Invocation) -> None:
        """Run a suppressed init for ``inv``: a fresh runtime whose Init is part of the invocation.

        Lambda does this when a sandbox's Init ran out of time, and on the first
        invocation of a sandbox reset by a timeout or crash. The invocation starts
        now (START, Duration, the function timeout's clock); the Init has no time
        limit of its own and its REPORT no ``Init Duration``.
        """
        env = self._new_environment(pool)
        env.suppressed_init = True
        env.invocation = inv
        inv.env = env
        inv.log_offset = 0
        env.log(start_line(inv.request_id))
        inv.started = time.monotonic()
        if inv.timer is not None:
            inv.timer.cancel()
        inv.timer = asyncio.get_running_loop().call_later(pool.fn.timeout_s, self._on_timeout,
                                                          inv)
        self._launch(pool, env)

    def _kill(self, env: Environment) -> None:
        """Discard an environment at once (timeout, crash, init failure)."""
        if env.state in (STOPPING, DEAD):
            return
        pool = self.pools[env.function]
        pool.unpark(env)
        pool.unfinish(env)
        pool.set_state(env, STOPPING)
        env.signal_group(signal.SIGKILL)

    def _shutdown(self, env: Environment, *, reaped: bool = True) -> None:
        """Lambda's shutdown: SIGTERM (continued if frozen), SIGKILL after the grace time."""
        if env.state in (STOPPING, DEAD):
            return
        pool = self.pools[env.function]
        pool.unpark(env)
        pool.unfinish(env)
        pool.set_state(env, STOPPING)
        if reaped:
            pool.reaped += 1
        env.signal_group(signal.SIGTERM)
        env.signal_group(signal.SIGCONT)
        env.frozen = False
        env.kill_timer = asyncio.get_running_loop().call_later(
            self.account.shutdown_timeout_s, env.signal_group, signal.SIGKILL)

    def _on_env_dead(self, env: Environment, status: int) -> None:
        """The process is gone: fail what it held, forget it, free its sockets."""
        if env.state == DEAD:
            return
        pool = self.pools[env.function]
        pool.unpark(env)
        was_initializing = env.state == INITIALIZING
        pool.set_state(env, DEAD)
        pool.unfinish(env)
        inv = env.invocation
        if inv is not None and not inv.done and not inv.started and not inv.cold \
                and not self._stopping:
            # Queued on an environment that died before taking it: place it again.
            inv.env = None
            if inv.timer is not None:
                inv.timer.cancel()
                inv.timer = None
            self.inflight.discard(inv)
            reason = self._begin(pool, inv)
            if reason is not None:
                result = self._throttled(pool, inv.request_id, reason)
                inv.future.set_result(result)
                inv.release(result)
        elif inv is not None and not inv.done:
            message = (f"RequestId: {inv.request_id} Error: Runtime exited with error: "
                       f"{exit_reason(status)}")
            env.log(f"{message}\n")
            if was_initializing:
                self._fail_init(env, "Runtime.ExitError", message)
            else:
                self._complete(inv, "crash", error_type="Runtime.ExitError",
                               error_message=message)
                if not self._stopping:
                    pool.resets.append(time.monotonic())
        pool.envs.pop(env.env_id, None)
        self.by_id.pop(env.env_id, None)
        if env.pid is not None:
            self.by_pid.pop(env.pid, None)
        env.close_resources()

    # ------------------------------------------------------------ zygote reports

    def on_spawned(self, env_id: str, pid: int) -> None:
        """The zygote forked the environment."""
        env = self.by_id.get(env_id)
        if env is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        env.pid = pid
        self.by_pid[pid] = env
        if env.state == STOPPING:
            env.signal_group(signal.SIGKILL)
        elif env.freeze_pending:
            env.freeze()

    def on_spawn_failed(self, env_id: str, error: str) -> None:
        """The fork failed."""
        env = self.by_id.get(env_id)
        if env is None:
            return
        if not env.suppressed_init:
            self.pools[env.function].bucket.give_back()
        self._fail_init(env, "Runtime.InitError", f"cannot start environment: {error}")
        self._on_env_dead(env, 1)

    def on_exit(self, pid: int, status: int) -> None:
        """An environment process ended."""
        env = self.by_pid.get(pid)
        if env is not None:
            self._on_env_dead(env, status)

    def on_zygote_lost(self, function: str) -> None:
        """Its environments died with it (PDEATHSIG); start a new one unless stopping."""
        pool = self.pools[function]
        for env in list(pool.envs.values()):
            self._on_env_dead(env, -signal.SIGKILL)
        if not self._stopping:
            self._tasks.append(asyncio.get_running_loop().create_task(self._restart(pool)))

    async def _restart(self, pool: FunctionPool) -> None:
        try:
            await self._start_zygote(pool)
        except Exception:
            log.exception("cannot restart the zygote of %s", pool.fn.name)

    # ------------------------------------------------------------ Runtime API

    def on_next(self, conn: RuntimeConnection) -> None:
        """The runtime waits for an event: hand it the pending one, or freeze it."""
        env: Environment = conn.env  # type: ignore[assignment]
        if env.state in (STOPPING, DEAD):
            return
        env.next_conn = conn
        pool = self.pools[env.function]
        if env.state == INITIALIZING:
            if not env.suppressed_init:
                env.init_ms = (time.monotonic() - env.spawned) * 1000
            if env.init_timer is not None:
                env.init_timer.cancel()
            inv = env.invocation
            if inv is not None and not inv.done:
                self._dispatch(pool, env, inv)
            else:
                self._park(pool, env)
            return
        if env.state != BUSY:
            return
        pool.unfinish(env)
        inv = env.invocation
        if inv is None or inv.done:
            self._park(pool, env)
        elif not inv.started:
            self._dispatch(pool, env, inv)  # queued on it while it was finishing
        # else: a runtime that asked for more without answering; the invocation runs
        # into its timeout, as on Lambda.

    def on_response(self, conn: RuntimeConnection, request_id: str, body: bytes) -> int:
        """The handler's result for ``request_id``."""
        inv = self._own_invocation(conn, request_id)
        if not isinstance(inv, Invocation):
            return inv
        self._complete(inv, "success", payload=body)
        return 202

    def on_error(self, conn: RuntimeConnection, request_id: str, body: bytes,
                 error_type: str | None) -> int:
        """The handler raised; the environment stays warm."""
        inv = self._own_invocation(conn, request_id)
        if not isinstance(inv, Invocation):
            return inv
        doc = _json_object(body)
        self._complete(inv, "function_error", payload=body,
                       error_type=str(doc.get("errorType") or error_type or "Unhandled"),
                       error_message=str(doc.get("errorMessage", "")))
        return 202

    def on_init_error(self, conn: RuntimeConnection, body: bytes,
                      error_type: str | None) -> int:
        """Init failed: the pending invocation fails with the runtime's errorType."""
        env: Environment = conn.env  # type: ignore[assignment]
        if env.state != INITIALIZING:
            return 403
        doc = _json_object(body)
        etype = str(error_type or doc.get("errorType") or "Runtime.InitError")
        env.init_error = (etype, body)
        self._fail_init(env, etype, str(doc.get("errorMessage", "")), payload=body)
        self._kill(env)
        return 202

    def on_connection_lost(self, conn: RuntimeConnection) -> None:
        """A parked environment whose ``/next`` connection broke cannot be used again."""
        env: Environment = conn.env  # type: ignore[assignment]
        if env.next_conn is conn:
            env.next_conn = None
            if env.state in (FROZEN, IDLE):
                self._kill(env)

    def _own_invocation(self, conn: RuntimeConnection, request_id: str) -> Invocation | int:
        """The invocation this environment holds under ``request_id``, else a 4xx status."""
        env: Environment = conn.env  # type: ignore[assignment]
        inv = env.invocation
        if inv is None or inv.request_id != request_id:
            return 400
        if inv.done:
            return 403
        return inv

    # ------------------------------------------------------------ background

    async def _reaper(self) -> None:
        lifetimes = [p.fn.idle_lifetime_s for p in self.pools.values()] + [
            p.fn.max_lifetime_s for p in self.pools.values() if p.fn.max_lifetime_s]
        interval = min(1.0, max(0.05, min(lifetimes, default=1.0) / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for pool in self.pools.values():
                idle_s, max_s = pool.fn.idle_lifetime_s, pool.fn.max_lifetime_s
                for env in list(pool.idle):
                    if now - env.last_used >= idle_s or (
                            max_s is not None and now - env.spawned >= max_s):
                        self._shutdown(env)

    # ------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /_connstorm/stats``: totals plus ``functions`` by name."""
        return aggregate_stats(self.pools, self.concurrency_peak)


def _waited_out(inv: Invocation) -> None:
    """The caller's wait (API Gateway's integration timeout) is over; the invocation runs on."""
    env = inv.env
    inv.release(InvocationResult(request_id=inv.request_id, outcome="timeout", waited_out=True,
                                 env_id=env.env_id if env else None, cold=inv.cold))


def _init_report(env: Environment, init_ms: float, status: str, error_type: str) -> str:
    """INIT_REPORT; a suppressed init (retried inside an invocation) says ``Phase: invoke``."""
    line = init_report_line(init_ms, status, error_type)
    if env.suppressed_init:
        line = line.replace("\tPhase: init\t", "\tPhase: invoke\t", 1)
    return line


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


__all__ = ["Emulator"]
