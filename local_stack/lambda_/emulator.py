"""The emulator core: schedules invocations onto real awslambdaric environments.

:class:`Emulator` implements the :class:`~connstorm.local_stack.lambda_.invocation.Invoker`
protocol for the HTTP side. Per function it keeps a zygote (fork server), a LIFO
of frozen environments and a scaling bucket. Each environment talks to its own
Runtime API listener (:mod:`connstorm.local_stack.lambda_.runtime_api`); between
invocations it is SIGSTOPped, as Lambda freezes its microVM.

Everything runs on one event loop; all state changes are synchronous callbacks,
so the bookkeeping needs no locks and an invocation gets exactly one result
(the first of response, error, timeout, crash, init failure). It is one state
machine (the environment's and the invocation's transitions, driven by the
Runtime API, the zygote's reports and the timers), written in three modules
that each hold one kind of transition, joined here as mixins of one class:

* :mod:`.scheduler` -- ``submit``, placing an invocation (warm, new, reset or
  throttled), dispatching it, parking the environment after it, and the one
  place results are given (``_complete``) and recorded (``_record``);
* :mod:`.lifecycle` -- environments from fork to death: launch, Init and its
  timeout, suppressed init and re-init, the invocation timeout, kill, shutdown,
  the zygote's reports and the reaper;
* :mod:`.runtime_callbacks` -- the Runtime API's calls (``on_next``,
  ``on_response``, ``on_error``, ``on_init_error``, ``on_connection_lost``);
* :mod:`.provisioning` -- provisioned concurrency, deploys, a VPC interface's
  attach time, and what a dead environment gives back.

A reaped environment vanishes as a microVM does: no signal it could act on,
and its database connections held open (:mod:`.vanished`) until the server at
the other end would have noticed.

Around them: :mod:`.vpc` (``Pending`` and subnet addresses), :mod:`.schedules`
(``[[schedules]]`` pings, fired here) and :mod:`.cpu_shares` (each environment's
share of a CPU by memory size).

"Exactly one result" stays checkable in one place: every ending in those
modules goes through ``Scheduler._complete``, which does nothing for an
invocation that has its result. The only other answers are given in ``submit``
(an ``Event`` or ``DryRun`` answered at once, a throttle) and in
``_on_env_dead`` (an invocation queued on an environment that died before taking
it, throttled if it cannot be placed again); ``grep -n set_result`` over the
three modules lists every one.

Mixins rather than objects that call each other, because the warm path must not
pay a call or attribute hop per invocation for the split (the methods were moved
verbatim; their bytecode is the same as when this was one class). This module
holds the state they share and the resource's start and stop; the pieces
without state live beside it (:mod:`.runtime_env`, :mod:`.log_stream`,
:mod:`.scaling`, :mod:`.function_pool`).

>>> async def demo(config):
...     async with Emulator(config) as emu:
...         return await emu.invoke(InvocationRequest("api", b"{}"))
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from pathlib import Path
from typing import Any

from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.cpu_shares import CpuShares
from connstorm.local_stack.lambda_.environment import DEAD, STOPPING, Environment, Invocation
from connstorm.local_stack.lambda_.function_pool import FunctionPool, aggregate_stats
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from connstorm.local_stack.lambda_.invocation_log import InvocationLog
from connstorm.local_stack.lambda_.lifecycle import EnvironmentLifecycle
from connstorm.local_stack.lambda_.provisioning import Provisioning
from connstorm.local_stack.lambda_.runtime_callbacks import RuntimeCallbacks
from connstorm.local_stack.lambda_.runtime_env import function_environment, runtime_dir
from connstorm.local_stack.lambda_.scaling import request_rate_buckets, scaling_bucket
from connstorm.local_stack.lambda_.scheduler import Scheduler
from connstorm.local_stack.lambda_.schedules import run_schedule
from connstorm.local_stack.lambda_.vanished import VanishedSockets
from connstorm.local_stack.priority import NORMAL
from connstorm.run_folder import INVOCATIONS_FILE, function_logs

log = logging.getLogger(__name__)


class Emulator(Scheduler, EnvironmentLifecycle, RuntimeCallbacks, Provisioning):
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
        #: The server thread's CPU priority (:mod:`connstorm.local_stack.priority`), in the stats.
        self.scheduling = NORMAL
        self.unreserved_limit = self.account.concurrency_limit - sum(
            fn.reserved_concurrency or 0 for fn in config.functions)
        self.invocation_log: InvocationLog | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._launching: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._emulator_log_fd: int | None = None
        #: Per-environment CPU cgroups (``[lambda] cpu_shares``), when they can be made.
        self.cpu_shares: CpuShares | None = None
        #: Connections of reaped environments, held as the servers still see them.
        self.vanished = VanishedSockets(config.vanished_lingers, self.account.vanished_linger_s,
                                        config.host)
        account_bucket = scaling_bucket(self.account) if self.account.scaling == "legacy" else None
        runtime_root = runtime_dir()
        rate_buckets = request_rate_buckets(self.account, config.functions)
        for fn in config.functions:
            bucket = account_bucket or scaling_bucket(self.account)
            self.pools[fn.name] = FunctionPool(
                fn, bucket, function_environment(fn, self.account.region, runtime_root),
                rate_bucket=rate_buckets[fn.name])

    # ------------------------------------------------------------ start and stop

    async def start(self) -> None:
        """Open the invocation log, start every function's zygote and the reaper."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.invocation_log = InvocationLog(self.run_dir / INVOCATIONS_FILE)
            self.invocation_log.start()
            self.vanished.start()
            for pool in self.pools.values():
                function_logs(self.run_dir, pool.fn.name).mkdir(parents=True, exist_ok=True)
            if self.account.cpu_shares:
                self.cpu_shares, where = CpuShares.open()
                if self.cpu_shares is None:
                    log.warning("cpu_shares: off, environments get whole CPUs: %s", where)
                else:
                    log.info("cpu_shares: each environment gets memory_mb / 1769 of a CPU "
                             "(%s)", where)
            await asyncio.gather(*(self._start_zygote(p) for p in self.pools.values()))
            await self._provision_all()
        except BaseException:
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        for schedule in self.config.schedules:
            self._tasks.append(loop.create_task(run_schedule(
                schedule, self.account.region, self.submit,
                functools.partial(self._count_scheduled, self.pools[schedule.function]))))
        self._tasks.append(loop.create_task(self._reaper()))
        if self.account.enforce_memory:
            self._tasks.append(loop.create_task(self._memory_watch()))
        for pool in self.pools.values():
            self._tasks.append(loop.create_task(pool.events.run(
                functools.partial(self._start_event, pool),
                functools.partial(self._give_up_event, pool))))

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
        self.vanished.close_all()
        if self.cpu_shares is not None:
            self.cpu_shares.close()
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
        """Run one invocation; see :class:`~connstorm.local_stack.lambda_.invocation.Invoker`.

        A caller that goes away (its task cancelled) does not cancel the invocation.
        """
        return await asyncio.shield(self.submit(request))

    # ------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /_connstorm/stats``: totals plus ``functions`` by name."""
        return {**aggregate_stats(self.pools, self.concurrency_peak),
                "scheduling": self.scheduling, "cpu_shares": self.cpu_shares is not None}

    @staticmethod
    def _count_scheduled(pool: FunctionPool) -> None:
        pool.scheduled_invocations += 1


__all__ = ["Emulator"]
