"""The emulator's handle on one function's zygote (fork server) process.

One zygote per function, because each preloads its own function's modules with
its own ``code_dir`` on ``sys.path``. The handle starts the zygote, sends it
spawn requests and turns its JSON-line reports (spawned, spawn failed, exited)
into callbacks on the event loop. See :mod:`connstorm.local_stack.lambda_.zygote` for the
other end and for why a zygote at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from connstorm.errors import StackError
from connstorm.run_folder import EMULATOR_LOG

log = logging.getLogger(__name__)


class ZygoteListener(Protocol):
    """What the zygote reports to (the emulator)."""

    def on_spawned(self, env_id: str, pid: int) -> None:
        """The environment's process exists."""

    def on_spawn_failed(self, env_id: str, error: str) -> None:
        """The fork failed (out of memory, process limit)."""

    def on_exit(self, pid: int, status: int) -> None:
        """An environment process ended; ``status`` < 0 is a signal number."""

    def on_zygote_lost(self, function: str) -> None:
        """The zygote itself died: all of its environments died with it."""


class _ControlProtocol(asyncio.Protocol):
    def __init__(self, owner: ZygoteClient) -> None:
        self.owner = owner
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            try:
                msg = json.loads(line)
            except ValueError:
                log.error("zygote %s sent garbage: %r", self.owner.function, line[:200])
                continue
            self.owner.dispatch(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost()


class ZygoteClient:
    """Start, use and stop one function's zygote."""

    def __init__(self, function: str, config: Mapping[str, Any], listener: ZygoteListener,
                 *, log_file: int | None = None) -> None:
        self.function = function
        self.config = dict(config)
        self.listener = listener
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[dict[str, Any]] | None = None
        self.closing = False

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start the zygote and wait until it has preloaded its modules."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                # The trailing words only label the process: environments are forks of
                # the zygote and show its command line, so `ps aux | grep awslambdaric`
                # finds them and names their function.
                [sys.executable, "-P", "-m", "connstorm.local_stack.lambda_.zygote",
                 str(theirs.fileno()),
                 str(os.getpid()), "awslambdaric", f"function={self.function}"],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=self.log_file, stderr=self.log_file,
                # -P above keeps this folder off sys.path; the task root is Lambda's
                # working folder (/var/task), and each environment adds it itself.
                cwd=self.config["code_dir"],
            )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.ready = loop.create_future()
        transport, _ = await loop.create_unix_connection(lambda: _ControlProtocol(self),
                                                         sock=ours)
        self.transport = transport  # type: ignore[assignment]
        self.send(self.config)
        try:
            msg = await asyncio.wait_for(asyncio.shield(self.ready), timeout_s)
        except TimeoutError:
            self.stop_nowait()
            raise StackError(f"emulator: the zygote of function {self.function} did not "
                             f"start within {timeout_s:.0f} s (see {EMULATOR_LOG})") from None
        except StackError:
            self.stop_nowait()
            raise StackError(f"emulator: the zygote of function {self.function} exited "
                             f"during startup (see {EMULATOR_LOG})") from None
        for err in msg.get("preload_errors", ()):
            log.warning("function %s: preload failed: %s", self.function, err)

    def send(self, msg: Mapping[str, Any]) -> None:
        """Queue one message for the zygote (never blocks the loop)."""
        if self.transport is None or self.transport.is_closing():
            raise StackError(f"emulator: the zygote of function {self.function} is gone")
        self.transport.write(json.dumps(msg).encode() + b"\n")

    def spawn(self, env_id: str, env: Mapping[str, str], log_path: str, *,
              cgroup: str | None = None) -> None:
        """Ask for one new environment; the answer comes as ``on_spawned``/``on_spawn_failed``.

        ``cgroup``: a cgroup folder the environment joins before its Init (CPU shares).
        """
        msg: dict[str, Any] = {"op": "spawn", "env_id": env_id, "env": dict(env),
                               "log": log_path}
        if cgroup is not None:
            msg["cgroup"] = cgroup
        self.send(msg)

    @property
    def alive(self) -> bool:
        """Whether the zygote can still take spawn requests."""
        return self.transport is not None and not self.transport.is_closing() and not self.closing

    def dispatch(self, msg: dict[str, Any]) -> None:
        """Route one report from the zygote to the listener."""
        op = msg.get("op")
        if op == "spawned":
            self.listener.on_spawned(msg["env_id"], int(msg["pid"]))
        elif op == "exit":
            self.listener.on_exit(int(msg["pid"]), int(msg["status"]))
        elif op == "spawn_failed":
            self.listener.on_spawn_failed(msg["env_id"], str(msg.get("error")))
        elif op == "ready" and self.ready is not None and not self.ready.done():
            self.ready.set_result(msg)

    def lost(self) -> None:
        """The control socket closed: the zygote is gone (or we closed it)."""
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(StackError("zygote exited during startup"))
        if not self.closing:
            log.error("zygote of function %s exited unexpectedly", self.function)
            self.closing = True
            self.listener.on_zygote_lost(self.function)

    def stop_nowait(self) -> None:
        """Close the control socket: the zygote SIGKILLs its environments and exits."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the zygote and wait for it; SIGKILL after ``timeout_s``."""
        self.stop_nowait()
        if self.proc is None:
            return
        try:
            await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
