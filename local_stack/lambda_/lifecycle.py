"""The environments' lifecycle: spawn, Init, freeze, reset, shutdown, death.

An environment is forked by its function's zygote (:mod:`.zygote_client`), runs
Init under ``init_timeout_s``, and after each invocation is SIGSTOPped, as Lambda
freezes its microVM; the reaper makes it vanish when idle or old (no signal, its
connections left open at the servers, :mod:`.vanished`), a timeout or crash
kills it (the microVM's kernel closes its sockets). An Init over
``init_timeout_s``, and the first invocation of a sandbox reset by a timeout or
crash, run a "suppressed init": a fresh runtime whose Init counts against the
invocation's timeout (:meth:`EnvironmentLifecycle._reinit`).

The zygote's reports (``on_spawned``, ``on_spawn_failed``, ``on_exit``,
``on_zygote_lost``) arrive here; a death ends what the environment held through
the scheduler's ``_complete``, so it cannot give a second result.
:class:`EnvironmentLifecycle` is a mixin of
:class:`~connstorm.local_stack.lambda_.emulator.Emulator`, as :mod:`.scheduler` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from connstorm.local_stack.lambda_ import runtime_api
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.environment import (
    BUSY,
    DEAD,
    INITIALIZING,
    STOPPING,
    Environment,
    Invocation,
)
from connstorm.local_stack.lambda_.function_pool import FunctionPool
from connstorm.local_stack.lambda_.ids import hex_id
from connstorm.local_stack.lambda_.invocation import InvocationResult, Outcome
from connstorm.local_stack.lambda_.log_stream import init_report_line, start_line, timeout_line
from connstorm.local_stack.lambda_.provisioning import init_limit_s
from connstorm.local_stack.lambda_.runtime_env import exit_reason, stream_name
from connstorm.local_stack.lambda_.zygote_client import ZygoteClient
from connstorm.run_folder import function_logs

if TYPE_CHECKING:
    import socket

    from connstorm.local_stack.lambda_.cpu_shares import CpuShares
    from connstorm.local_stack.lambda_.vanished import VanishedSockets
    from connstorm.scenario import LambdaConfig

log = logging.getLogger(__name__)

#: Environments whose memory one tick of :meth:`EnvironmentLifecycle._memory_watch` reads.
_MEMORY_CHECKS_PER_TICK = 100


class EnvironmentLifecycle:
    """Environments from fork to death, the zygotes and the reaper (a mixin of ``Emulator``)."""

    # The emulator's state this part reads and writes (set in Emulator.__init__).
    config: EmulatorConfig
    account: LambdaConfig
    run_dir: Path
    pools: dict[str, FunctionPool]
    by_id: dict[str, Environment]
    by_pid: dict[int, Environment]
    inflight: set[Invocation]
    _tasks: list[asyncio.Task[None]]
    _launching: set[asyncio.Task[None]]
    _stopping: bool
    cpu_shares: CpuShares | None
    vanished: VanishedSockets

    if TYPE_CHECKING:
        # The scheduler's part (:mod:`.scheduler`).
        def _begin(self, pool: FunctionPool, inv: Invocation) -> str | None: ...
        def _complete(self, inv: Invocation, outcome: Outcome, *,
                      payload: bytes | None = None, error_type: str | None = None,
                      error_message: str | None = None) -> None: ...
        def _throttled(self, pool: FunctionPool, request_id: str, reason: str,
                       attempt: int = 1) -> InvocationResult: ...
        # The Runtime API's part (:mod:`.runtime_callbacks`).
        async def _serve(self, env: Environment, sock: socket.socket) -> None: ...
        # Provisioning's part (:mod:`.provisioning`).
        def _released(self, pool: FunctionPool, env: Environment) -> None: ...

    # ------------------------------------------------------------ environments

    async def _start_zygote(self, pool: FunctionPool) -> None:
        zygote = ZygoteClient(pool.fn.name, {
            "handler": pool.fn.handler, "code_dir": pool.fn.code_dir,
            "env": pool.base_env, "preload": list(pool.fn.preload)}, self)
        pool.zygote = zygote
        # All zygotes start at once, each importing its preloads: 30 s for one, and
        # longer for many on a small machine (connstorm drivers starts dozens).
        await zygote.start(timeout_s=30.0 + 2.0 * len(self.pools))

    def _new_environment(self, pool: FunctionPool) -> Environment:
        env_id = hex_id()
        log_path = str(function_logs(self.run_dir, pool.fn.name) / f"{env_id}.log")
        fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        env = Environment(env_id=env_id, function=pool.fn.name, log_path=log_path, log_fd=fd,
                          generation=pool.generation)
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
        variables = {"AWS_LAMBDA_RUNTIME_API": f"{self.config.host}:{env.port}",
                     "AWS_LAMBDA_LOG_STREAM_NAME": stream}
        if env.provisioned:
            variables["AWS_LAMBDA_INITIALIZATION_TYPE"] = "provisioned-concurrency"
        if self.cpu_shares is not None:
            env.cgroup = self.cpu_shares.create(env.env_id, pool.fn.memory_mb)
        pool.zygote.spawn(env.env_id, variables, env.log_path, cgroup=env.cgroup)
        loop = asyncio.get_running_loop()
        if not env.suppressed_init:  # bounded by the invocation's timeout instead
            env.init_timer = loop.call_later(self._init_limit_s(env), self._on_init_timeout,
                                             env)
        task = loop.create_task(self._serve(env, sock))
        self._launching.add(task)  # the loop keeps only a weak reference to tasks
        task.add_done_callback(self._launching.discard)

    # ------------------------------------------------------------ failures, timeouts, deaths

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

    def _init_limit_s(self, env: Environment) -> float:
        return init_limit_s(self.account, self.pools[env.function].fn,
                            provisioned=env.provisioned)

    def _on_init_timeout(self, env: Environment) -> None:
        """Init ran out of its limit (:func:`.provisioning.init_limit_s`): Lambda retries it
        inside the invocation.

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
                            f"{self._init_limit_s(env):.2f} seconds", status="timeout")
            self._kill(env)
            return
        pool = self.pools[env.function]
        env.log(_init_report(env, (time.monotonic() - env.spawned) * 1000, "timeout",
                             "Runtime.InitError"))
        env.invocation = None  # its death must not fail the invocation
        self._kill(env)
        log.info("%s: init of %s ran out of %.2f s; retrying it in invocation %s",
                 pool.fn.name, env.env_id, self._init_limit_s(env), rid)
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
        if pool.vpc is not None:
            env.subnet = pool.vpc.take()  # the reset sandbox kept its interface (see .vpc)
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

    def _retire(self, env: Environment) -> FunctionPool | None:
        """Take ``env`` out of service, once: its pool, or None if it already was."""
        if env.state in (STOPPING, DEAD):
            return None
        pool = self.pools[env.function]
        pool.unpark(env)
        pool.unfinish(env)
        pool.set_state(env, STOPPING)
        return pool

    def _kill(self, env: Environment) -> None:
        """Discard an environment at once (timeout, crash, init failure)."""
        if self._retire(env) is not None:
            env.signal_group(signal.SIGKILL)

    def _shutdown(self, env: Environment, *, reaped: bool = True) -> None:
        """End an environment: reaped ones vanish, the rest get SIGTERM, then SIGKILL.

        Reaped (idle, an earlier version's, past ``max_lifetime_s``): it vanishes as
        a microVM does (:meth:`_vanish`). When the emulator stops, or where
        connections cannot be held, the runtime gets SIGTERM (continued if frozen)
        and SIGKILL after ``shutdown_timeout_s``.
        """
        pool = self._retire(env)
        if pool is None:
            return
        if reaped:
            pool.reaped += 1
            if self.vanished.available:
                self._vanish(pool, env)
                return
        env.signal_group(signal.SIGTERM)
        env.signal_group(signal.SIGCONT)
        env.frozen = False
        env.kill_timer = asyncio.get_running_loop().call_later(
            self.account.shutdown_timeout_s, env.signal_group, signal.SIGKILL)

    def _vanish(self, pool: FunctionPool, env: Environment) -> None:
        """The microVM is gone: no SIGTERM, its connections still open at the servers.

        AWS, "Understanding the Lambda execution environment lifecycle", "Shutdown
        phase": "0 ms – A function with no registered extensions", then "Lambda
        ends the process using a SIGKILL signal" (no extensions are emulated). The
        environment is stopped, its TCP connections are duplicated into the
        emulator (:mod:`.vanished`: held until the server's keepalive would give
        up), and only then killed, so its kernel has nothing left to close.
        """
        if env.pid is not None:  # else on_spawned kills it (it is STOPPING)
            if not env.frozen:  # one being retired as it finished: hold it still
                env.signal_group(signal.SIGSTOP)
            if self.vanished.holding:
                self.vanished.take(env.pid, env.env_id, pool.vanished, env.port)
            env.signal_group(signal.SIGKILL)
        env.frozen = False

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
        self._released(pool, env)

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

    # ------------------------------------------------------------ background

    async def _reaper(self) -> None:
        """Reap environments idle for ``idle_lifetime_s`` or older than ``max_lifetime_s``.

        Neither is a documented figure: AWS keeps an idle environment "for some
        time" and recycles busy ones "every few hours" ("Understanding the Lambda
        execution environment lifecycle", "Shutdown phase"); the defaults are
        what people observed.
        """
        lifetimes = [p.fn.idle_lifetime_s for p in self.pools.values()] + [
            p.fn.max_lifetime_s for p in self.pools.values() if p.fn.max_lifetime_s]
        interval = min(1.0, max(0.05, min(lifetimes, default=1.0) / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for pool in self.pools.values():
                idle_s, max_s = pool.fn.idle_lifetime_s, pool.fn.max_lifetime_s
                # Provisioned environments are never reaped; an earlier version's are.
                for env in pool.idle + pool.superseded:
                    if now - env.last_used >= idle_s or (
                            max_s is not None and now - env.spawned >= max_s):
                        self._shutdown(env)

    async def _memory_watch(self) -> None:
        """Lambda's memory limit: kill a running environment whose RSS passes ``memory_mb``.

        On AWS the kernel's OOM killer ends the sandbox; the invocation fails with
        ``Runtime.ExitError`` / ``signal: killed`` and the REPORT shows the memory
        size used up. Here a poll of the running (busy or initializing)
        environments does it; frozen and idle ones cannot grow. At most
        ``_MEMORY_CHECKS_PER_TICK`` are read per tick, in turn, so that a thousand
        busy environments cost the event loop a bounded share.
        """
        cursor = 0
        while True:
            await asyncio.sleep(self.account.memory_check_interval_s)
            running = [env for pool in self.pools.values() for env in pool.envs.values()
                       if env.state in (BUSY, INITIALIZING) and env.pid is not None]
            if not running:
                continue
            cursor %= len(running)
            batch = (running[cursor:] + running[:cursor])[:_MEMORY_CHECKS_PER_TICK]
            cursor += len(batch)
            for env in batch:
                limit_mb = self.pools[env.function].fn.memory_mb
                used_mb = env.rss_mb()
                if used_mb > limit_mb:
                    log.warning("environment %s of %s uses %.0f MB, over its memory size of "
                                "%d MB: killed, as Lambda does", env.env_id, env.function,
                                used_mb, limit_mb)
                    env.note_peak_mb(used_mb)
                    self._kill(env)


def _init_report(env: Environment, init_ms: float, status: str, error_type: str) -> str:
    """INIT_REPORT; a suppressed init (retried inside an invocation) says ``Phase: invoke``."""
    line = init_report_line(init_ms, status, error_type)
    if env.suppressed_init:
        line = line.replace("\tPhase: init\t", "\tPhase: invoke\t", 1)
    return line

