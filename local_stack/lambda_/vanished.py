"""Connections of vanished environments, held open as the database side sees them.

When Lambda reclaims an execution environment (idle, after a deploy, scaled
down, recycled) its microVM is destroyed. A function without extensions gets no
signal at all: AWS, "Understanding the Lambda execution environment lifecycle",
"Shutdown phase": the Shutdown phase lasts "0 ms – A function with no registered
extensions", and "Lambda ends the process using a SIGKILL signal". A destroyed
microVM sends neither FIN nor RST, so "when a Lambda execution environment shuts
down, the connections remain open and hold up backend resources. Databases
usually can clean those idle connections after timeout" (AWS sample
aws-samples/graceful-shutdown-with-aws-lambda, README). PostgreSQL notices the
dead peer only when its TCP keepalive gives up (AWS, "Dead connection handling
in PostgreSQL": ``tcp_keepalives_idle`` + ``tcp_keepalives_interval`` x
``tcp_keepalives_count``, 300 + 30 x 2 = 360 s on RDS).

Locally a killed process's kernel closes its sockets at once, so the server
would see the connection go. To keep what the server sees and drop what it
does not (the process and its memory), the emulator takes duplicates of the
environment's TCP sockets before it SIGKILLs it, with ``pidfd_getfd`` (Linux
5.6+; the emulator may, the environments being its descendants), and holds them
here, in its own process, until the server would have given up on them: the
linger time of the server at the other end (``vanished_lingers`` of the
emulator's config, computed by the stack from the server's own settings;
``[lambda] vanished_linger_s`` overrides it for every peer). The environment's
Runtime API connection is never held (it is Lambda's own, inside the microVM).

A held socket is released earlier when the server closes it itself (an
``idle_session_timeout``, a terminated backend, PgBouncer's
``client_idle_timeout``, the RDS Proxy stand-in's ``idle_client_timeout_s``):
its end of file is read here. Data a server sends meanwhile is read and dropped
(nothing would read it on AWS either). Everything held is closed on
:meth:`VanishedSockets.close_all` (the emulator's stop) and, whatever happens
to the emulator, by the kernel when its process ends: a held socket cannot
outlive the emulator.

Where ``pidfd_getfd`` is missing or refused, :meth:`VanishedSockets.start` says
so in one line and the emulator shuts environments down as before (SIGTERM,
then SIGKILL after ``shutdown_timeout_s``; their connections close at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: ``pidfd_getfd`` (Linux 5.6): the same number on every architecture's generic table.
SYS_PIDFD_GETFD = 438
#: ``TCP_INFO``'s first byte, ``tcpi_state``: 1 is ``TCP_ESTABLISHED`` (linux/tcp_states.h).
TCP_ESTABLISHED = 1
#: A linger of this long means "until the server closes it" (no keepalive at the server).
FOREVER = math.inf

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A duplicate, in this process, of ``target_fd`` of the process ``pidfd`` refers to.

    The new descriptor is close-on-exec (the kernel sets it). Python 3.11 has no
    wrapper, hence the raw system call.
    """
    result = _syscall(ctypes.c_long(SYS_PIDFD_GETFD), ctypes.c_int(pidfd),
                      ctypes.c_int(target_fd), ctypes.c_uint(0))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def probe() -> str | None:
    """None when ``pidfd_open`` + ``pidfd_getfd`` work here, else why not (one line)."""
    try:
        pidfd = os.pidfd_open(os.getpid())
    except (OSError, AttributeError) as exc:
        return f"pidfd_open is not available ({exc})"
    try:
        os.close(pidfd_getfd(pidfd, pidfd))
    except OSError as exc:
        return f"pidfd_getfd is not available ({exc.strerror or exc}; Linux 5.6+ needed)"
    finally:
        os.close(pidfd)
    return None


@dataclass
class VanishedCount:
    """One function's connections held for its vanished environments, and those environments."""

    connections: int = 0
    environments: int = 0


@dataclass(eq=False)
class _Held:
    sock: socket.socket
    env_id: str
    count: VanishedCount
    timer: asyncio.TimerHandle | None = None


@dataclass
class VanishedSockets:
    """The sockets of vanished environments, each until its server would have given up.

    ``lingers`` maps a server's ``"host:port"`` to the seconds it takes to notice a
    dead client (``None``: never, it has no keepalive); ``override`` (``[lambda]
    vanished_linger_s``) replaces them for every peer. ``runtime_host`` is where
    the environments' Runtime API listens (their connection to it is never held).
    """

    lingers: Mapping[str, float | None] = field(default_factory=dict)
    override: float | None = None
    runtime_host: str = "127.0.0.1"
    #: Why sockets cannot be held here (None once :meth:`start` found they can).
    unavailable: str | None = "not started"
    _held: dict[int, _Held] = field(default_factory=dict)
    _per_env: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        """Check that the system calls work; say in one line when they do not."""
        self.unavailable = probe()
        if self.unavailable is not None:
            log.warning("vanished environments: %s; their connections close at once "
                        "(shut down with SIGTERM, as before)", self.unavailable)

    @property
    def available(self) -> bool:
        """Whether environments can vanish with their connections held."""
        return self.unavailable is None

    @property
    def holding(self) -> bool:
        """Whether any peer gets a linger at all (else vanishing is a plain SIGKILL)."""
        if self.override is not None:
            return self.override > 0
        return any(v is None or v > 0 for v in self.lingers.values())

    def linger_s(self, host: str, port: int) -> float:
        """Seconds a connection to ``host:port`` outlives its client (0: not held)."""
        if self.override is not None:
            return self.override
        if f"{host}:{port}" not in self.lingers:
            return 0.0
        value = self.lingers[f"{host}:{port}"]
        return FOREVER if value is None else float(value)

    @property
    def connections(self) -> int:
        """Sockets held now, all functions."""
        return len(self._held)

    # ------------------------------------------------------------ taking

    def take(self, pid: int, env_id: str, count: VanishedCount, runtime_port: int) -> int:
        """Duplicate the TCP connections of process ``pid`` worth holding; how many were.

        Call it while the process is stopped and before it is killed. A connection
        is held when it is established, is not the Runtime API's (``runtime_host``
        and ``runtime_port``), and its peer has a linger. Errors only lose a
        socket: the process is killed anyway.
        """
        if not self.available:
            return 0
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return 0  # gone already: the kernel has closed its sockets
        held = 0
        try:
            for sock in self._sockets_of(pid, pidfd):
                linger = self._linger_of(sock, runtime_port)
                if linger <= 0:
                    sock.close()
                    continue
                self._hold(sock, env_id, count, linger)
                held += 1
        finally:
            os.close(pidfd)
        if held:
            count.environments += 1
        return held

    def _sockets_of(self, pid: int, pidfd: int) -> list[socket.socket]:
        found: list[socket.socket] = []
        seen: set[str] = set()
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return found
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if not target.startswith("socket:") or target in seen:
                continue
            seen.add(target)  # the same socket under two descriptors is one connection
            try:
                fd = pidfd_getfd(pidfd, int(name))
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                    self.unavailable = f"pidfd_getfd refused ({exc.strerror})"
                    log.warning("vanished environments: %s; their connections close at "
                                "once from now on", self.unavailable)
                    break
                continue  # EMFILE, EBADF (closed meanwhile): this socket is lost
            try:
                found.append(socket.socket(fileno=fd))
            except OSError:
                os.close(fd)
        return found

    def _linger_of(self, sock: socket.socket, runtime_port: int) -> float:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) \
                or sock.type != socket.SOCK_STREAM:
            return 0.0
        try:
            host, port = sock.getpeername()[:2]
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        except OSError:
            return 0.0  # a listener, or not connected
        if state != TCP_ESTABLISHED or (host == self.runtime_host and port == runtime_port):
            return 0.0
        return self.linger_s(str(host), int(port))

    def _hold(self, sock: socket.socket, env_id: str, count: VanishedCount,
              linger: float) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        fd = sock.fileno()
        entry = _Held(sock, env_id, count)
        if linger != FOREVER:
            entry.timer = loop.call_later(linger, self._release, fd)
        self._held[fd] = entry
        self._per_env[env_id] = self._per_env.get(env_id, 0) + 1
        count.connections += 1
        loop.add_reader(fd, self._on_readable, fd)

    # ------------------------------------------------------------ releasing

    def _on_readable(self, fd: int) -> None:
        """The server sent something: its end of file (it closed) releases the socket."""
        entry = self._held.get(fd)
        if entry is None:
            return
        try:
            while entry.sock.recv(65536):
                pass  # data for a client that is gone: dropped
        except BlockingIOError:
            return
        except OSError:
            pass  # reset by the server: released like an end of file
        self._release(fd)

    def _release(self, fd: int) -> None:
        entry = self._held.pop(fd, None)
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(fd)
        entry.sock.close()
        entry.count.connections -= 1
        left = self._per_env.get(entry.env_id, 1) - 1
        if left:
            self._per_env[entry.env_id] = left
        else:
            self._per_env.pop(entry.env_id, None)
            entry.count.environments -= 1

    def close_all(self) -> None:
        """Close every held socket (the emulator stops)."""
        for fd in list(self._held):
            self._release(fd)
