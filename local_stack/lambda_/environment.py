"""One execution environment (an OS process running awslambdaric) and one invocation.

An environment moves through ``initializing`` (spawned, importing the handler),
``busy`` (holding an invocation, until its runtime asks for the next event),
``frozen`` (SIGSTOPped while waiting on ``/next``) or ``idle`` (waiting, freezing
off), ``stopping`` (shutdown or kill sent) and ``dead`` (the zygote reported its
exit). The emulator owns the transitions; this class holds the state and does
the signalling.

Signals go to the process group (``killpg``): the environment is a session
leader, so whatever its handler started is frozen and killed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult

if TYPE_CHECKING:
    from connstorm.local_stack.lambda_.runtime_api import RuntimeConnection

INITIALIZING = "initializing"
BUSY = "busy"
FROZEN = "frozen"
IDLE = "idle"
STOPPING = "stopping"
DEAD = "dead"
STATES = (INITIALIZING, BUSY, FROZEN, IDLE, STOPPING, DEAD)

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


@dataclass(eq=False)
class Invocation:
    """One invocation in flight: what was asked, where it runs, how it ends."""

    request_id: str
    request: InvocationRequest
    future: asyncio.Future[InvocationResult]
    cold: bool = False
    env: Environment | None = None
    started: float = 0.0
    log_offset: int = 0
    timer: asyncio.TimerHandle | None = None
    #: The caller's future (:meth:`Emulator.submit`): the result, or ``waited_out``.
    waiter: asyncio.Future[InvocationResult] | None = None
    wait_timer: asyncio.TimerHandle | None = None
    #: Which run of an ``Event`` invocation this is (1, then 2 and 3 for its retries).
    attempt: int = 1

    @property
    def done(self) -> bool:
        """Whether a result has been given (a second answer must change nothing)."""
        return self.future.done()

    def release(self, result: InvocationResult) -> None:
        """Answer the caller, once (the result, or that its wait expired)."""
        if self.wait_timer is not None:
            self.wait_timer.cancel()
            self.wait_timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(result)


@dataclass(eq=False)
class Environment:
    """An execution environment: its process, its Runtime API listener, its log stream."""

    env_id: str
    function: str
    log_path: str
    log_fd: int
    spawned: float = field(default_factory=time.monotonic)
    state: str = INITIALIZING
    pid: int | None = None
    port: int = 0
    server: asyncio.Server | None = None
    #: The bound Runtime API socket, until ``server`` serves it.
    listen_sock: socket.socket | None = None
    next_conn: RuntimeConnection | None = None
    invocation: Invocation | None = None
    init_ms: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    frozen: bool = False
    #: Freeze requested before the zygote told us the pid.
    freeze_pending: bool = False
    init_error: tuple[str, bytes] | None = None
    init_timer: asyncio.TimerHandle | None = None
    #: Started to retry an Init that ran out of ``init_timeout_s``, inside the
    #: invocation (a "suppressed init"): bounded by the function timeout instead,
    #: and its REPORT shows no ``Init Duration``.
    suppressed_init: bool = False
    kill_timer: asyncio.TimerHandle | None = None
    uses: int = 0
    #: Initialised for provisioned concurrency: parked apart, never reaped while current.
    provisioned: bool = False
    #: The function's version it runs (:meth:`FunctionPool.deploy` starts a new one).
    generation: int = 0
    #: The subnet whose address it holds (``per_environment`` VPC model), else None.
    subnet: int | None = None
    #: Its CPU cgroup (``[lambda] cpu_shares``), removed when it is gone.
    cgroup: str | None = None
    _hwm_mb: int = 0
    _hwm_read_at: float = -1e9
    #: ``/proc/<pid>/statm``, kept open: one ``pread`` per memory check, and it
    #: stays bound to this process even if its pid is reused after it dies.
    _statm_fd: int = -1

    @property
    def alive(self) -> bool:
        """Not yet reported dead by the zygote."""
        return self.state != DEAD

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the environment's process group (its process until setsid ran)."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            # Not a group leader yet (setsid not run) or already gone.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP the environment (deferred until its pid is known)."""
        if self.pid is None:
            self.freeze_pending = True
            return
        self.signal_group(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT the environment if it is frozen."""
        self.freeze_pending = False
        if self.frozen:
            self.signal_group(signal.SIGCONT)
            self.frozen = False

    def log(self, text: str) -> None:
        """Append platform lines (START/END/REPORT) to the environment's log stream."""
        with contextlib.suppress(OSError):
            os.write(self.log_fd, text.encode("utf-8", "replace"))

    def log_size(self) -> int:
        """Current size of the log stream (the Tail offset of an invocation)."""
        try:
            return os.fstat(self.log_fd).st_size
        except OSError:
            return 0

    def read_log_tail(self, offset: int, limit: int = 4096) -> str:
        """The last ``limit`` bytes of the log written since ``offset``."""
        try:
            end = os.fstat(self.log_fd).st_size
            start = max(offset, end - limit)
            data = os.pread(self.log_fd, end - start, start) if end > start else b""
        except OSError:
            return ""
        return data.decode("utf-8", "replace")

    def max_memory_mb(self) -> int:
        """Peak resident memory of the process (VmHWM), for the REPORT line.

        Read from /proc at most once a second per environment: three syscalls per
        warm invocation otherwise, for a figure that settles after Init.
        """
        now = time.monotonic()
        if now - self._hwm_read_at < 1.0:
            return self._hwm_mb
        self._hwm_read_at = now
        # A high-water mark only rises; a process already gone (killed) reads 0.
        self._hwm_mb = max(self._hwm_mb, self._read_hwm_mb())
        return self._hwm_mb

    def rss_mb(self) -> float:
        """Resident memory of the process now (``/proc/<pid>/statm``), 0 if unknown.

        Like Lambda's "Max Memory Used", it counts the pages the zygote shares
        with the environment: the runtime is part of the function's memory on AWS too.
        """
        if self.pid is None:
            return 0.0
        try:
            if self._statm_fd < 0:
                self._statm_fd = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(self._statm_fd, 128, 0).split()[1]) * _PAGE_MB
        except (OSError, ValueError, IndexError):
            return 0.0

    def note_peak_mb(self, mb: float) -> None:
        """Make the REPORT line show at least ``mb`` (the process may be gone by then).

        Rounded up: an environment killed at 128.3 MB for a 128 MB limit reports 129,
        not a peak within its limit (truncating made that test fail now and then).
        """
        self._hwm_mb = max(self._hwm_mb, math.ceil(mb))
        self._hwm_read_at = time.monotonic()

    def _read_hwm_mb(self) -> int:
        if self.pid is None:
            return 0
        try:
            with open(f"/proc/{self.pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def close_resources(self) -> None:
        """Close the listener, the log fd and the statm fd (after the process is gone)."""
        for timer in (self.init_timer, self.kill_timer):
            if timer is not None:
                timer.cancel()
        if self.server is not None:
            self.server.close()
            self.server = None
        elif self.listen_sock is not None:
            self.listen_sock.close()
        self.listen_sock = None
        if self.next_conn is not None:
            self.next_conn.close()
            self.next_conn = None
        for fd in (self.log_fd, self._statm_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.log_fd = self._statm_fd = -1
