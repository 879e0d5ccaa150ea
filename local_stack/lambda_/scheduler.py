"""The emulator's scheduler: where an invocation runs, and its one result.

A request takes the most recently used idle environment (a provisioned one
first), else a new one if the limits allow (see :mod:`connstorm.local_stack.lambda_.scaling`),
else it is throttled; before any of that, the request-rate limit (10 x
concurrency per second) may throttle it. A VPC function (:mod:`.vpc`) refuses
it while ``Pending``, or when a new environment finds no subnet address: the
result is ``rejected`` with the Invoke API's error code, recorded like a
throttle. ``Event`` invocations wait in the function's
:class:`~.event_queue.EventQueue`, which retries failed runs.

Every result goes through :meth:`Scheduler._complete`, which gives an
invocation its result only if it has none yet, so the first of response, error,
timeout, crash and init failure wins; :meth:`Scheduler._throttled` records a
request that never became an invocation. Both record through
:meth:`Scheduler._record`, the only place counters and ``invocations.jsonl``
are written.

This is the warm path (BENCHMARKS.md, "Warm invocations"): the emulator process
is the serial part of every warm invocation, so these methods are the ones not
to wrap. :class:`Scheduler` is a mixin of
:class:`~connstorm.local_stack.lambda_.emulator.Emulator` rather than an object it calls,
so that the split into modules costs no call or attribute hop per invocation.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from connstorm.local_stack.lambda_.config import function_arn
from connstorm.local_stack.lambda_.environment import BUSY, FROZEN, IDLE, Environment, Invocation
from connstorm.local_stack.lambda_.event_queue import QueuedEvent
from connstorm.local_stack.lambda_.function_pool import FunctionPool
from connstorm.local_stack.lambda_.ids import uuid4
from connstorm.local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    Outcome,
    UnknownFunctionError,
)
from connstorm.local_stack.lambda_.invocation_log import InvocationLog, error_kind, make_record
from connstorm.local_stack.lambda_.log_stream import end_lines, start_line
from connstorm.local_stack.lambda_.runtime_env import client_context_header, trace_id
from connstorm.local_stack.lambda_.scaling import concurrency_reason, rate_reason
from connstorm.local_stack.lambda_.vpc import PENDING, REJECTIONS, SUBNET_FULL

if TYPE_CHECKING:
    from connstorm.scenario import LambdaConfig


class Scheduler:
    """Placing invocations, throttling them, ending them (a mixin of ``Emulator``)."""

    # The emulator's state this part reads and writes (set in Emulator.__init__).
    account: LambdaConfig
    pools: dict[str, FunctionPool]
    inflight: set[Invocation]
    concurrency_peak: int
    unreserved_limit: int
    invocation_log: InvocationLog | None
    _stopping: bool

    if TYPE_CHECKING:
        # The environment lifecycle's part (:mod:`.lifecycle`).
        def _new_environment(self, pool: FunctionPool) -> Environment: ...
        def _launch(self, pool: FunctionPool, env: Environment) -> None: ...
        def _attach_and_launch(self, pool: FunctionPool, env: Environment) -> None: ...
        def _reinit(self, pool: FunctionPool, inv: Invocation) -> None: ...
        def _on_timeout(self, inv: Invocation) -> None: ...
        def _kill(self, env: Environment) -> None: ...
        def _shutdown(self, env: Environment, *, reaped: bool = True) -> None: ...

    # ------------------------------------------------------------ Invoker

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
        request_id = uuid4()
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
        vpc = pool.vpc
        if vpc is not None and vpc.pending_until and vpc.pending():
            return PENDING
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
        subnet = None
        if vpc is not None and vpc.per_environment:
            subnet = vpc.take()
            if subnet is None:
                pool.bucket.give_back()
                return SUBNET_FULL
        self.inflight.add(inv)
        inv.cold = True
        env = self._new_environment(pool)
        env.invocation = inv
        env.subnet = subnet
        inv.env = env
        self._note_peak()
        self._attach_and_launch(pool, env)
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

    def _dispatch(self, pool: FunctionPool, env: Environment, inv: Invocation) -> None:
        """Answer ``env``'s pending ``/next`` with ``inv``'s event, then thaw it.

        In that order: continued with the event already in its socket, the
        runtime's ``poll`` returns at once; continued first, it would wake, find
        nothing, sleep, and wake again for the event (a context switch more per
        warm invocation).
        """
        pool.set_state(env, BUSY)
        self._note_peak()
        env.invocation = inv
        env.uses += 1
        inv.env = env
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
        env.thaw()
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
        if env.generation != pool.generation:
            pool.superseded.append(env)  # an earlier version's: only the reaper takes it
        elif env.provisioned:
            pool.provisioned_idle.append(env)
        else:
            pool.idle.append(env)

    def _throttled(self, pool: FunctionPool, request_id: str, reason: str,
                   attempt: int = 1) -> InvocationResult:
        """A request refused before it ran: throttled, or rejected with a VPC error code."""
        if reason in REJECTIONS:
            result = InvocationResult(request_id=request_id, outcome="rejected",
                                      error_type=reason, error_message=REJECTIONS[reason][1])
        else:
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
        if pool.fn.provisioned_concurrency and env is not None:
            if env.provisioned:
                pool.provisioned_invocations += 1
            else:
                pool.spillover_invocations += 1
        self._record(pool, result, inv.attempt)
        if env is not None and env.state == BUSY and outcome in ("success", "function_error"):
            pool.finishing.append(env)

    def _record(self, pool: FunctionPool, result: InvocationResult, attempt: int = 1) -> None:
        if result.outcome == "throttled":
            pool.throttles += 1
        elif result.outcome == "rejected":
            pool.rejections += 1
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


def _waited_out(inv: Invocation) -> None:
    """The caller's wait (API Gateway's integration timeout) is over; the invocation runs on."""
    env = inv.env
    inv.release(InvocationResult(request_id=inv.request_id, outcome="timeout", waited_out=True,
                                 env_id=env.env_id if env else None, cold=inv.cold))

