"""A server process the toolkit owns: started, waited for, and always stopped.

Modelled on Locust's test ``TestProcess``: output goes to a log file whose tail
explains a failure, readiness is waited for with a timeout, and stopping sends a
polite signal first and SIGKILL after a timeout.

Three promises hold whatever happens to the toolkit:

* the child runs in its own session, so a Ctrl-C typed in the terminal reaches
  only the toolkit, which then stops its servers in order;
* ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` is set in the child before ``exec``, so
  when the toolkit dies (even by SIGKILL) the child gets SIGTERM. Linux fires it
  when the *thread* that forked dies: start servers from a thread that lives as
  long as they should (the main thread, normally);
* when we are root the child runs as an unprivileged user through
  ``runuser -u USER --`` (PostgreSQL and PgBouncer refuse root). runuser stays
  as the parent: it turns its own SIGTERM into SIGTERM (and 2 s later SIGKILL)
  for the server, but ignores SIGINT, so :meth:`ManagedProcess.stop` signals the
  server itself (:attr:`ManagedProcess.server_pid`).

>>> with ManagedProcess("sleeper", ["sleep", "60"], log_path=Path("/tmp/s.log")) as p:
...     p.wait_ready(lambda: True, timeout_s=1)
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

from connstorm.errors import StackError
from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.local_stack.resource import Resource
from connstorm.run_folder import log_tail
from connstorm.signals import held_while_forking

log = logging.getLogger(__name__)

_RUNUSER = "/usr/sbin/runuser"


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


_keeper_lock = threading.Lock()
_keeper_jobs: queue.Queue[tuple[Callable[[], object], Future[object]]] = queue.Queue()
_keeper: threading.Thread | None = None


def _keep() -> None:
    while True:
        job, future = _keeper_jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)


def start_in_keeper(process: ManagedProcess) -> None:
    """``process.start()`` from a thread that lives as long as this process.

    The parent-death signal fires when the *thread* that forked dies: a server
    restarted from a short-lived thread (a timeline action) would get SIGTERM
    as soon as that thread ended. Forking from this one thread, which ends only
    with the process, gives it the main thread's lifetime instead.
    """
    global _keeper
    with _keeper_lock:
        if _keeper is None or not _keeper.is_alive():
            _keeper = threading.Thread(target=_keep, name="process-keeper", daemon=True)
            _keeper.start()
    future: Future[object] = Future()
    _keeper_jobs.put((process.start, future))
    future.result()


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children, their children...), parents first."""
    found: list[int] = []
    todo = _children(pid)
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(_children(child))
    return found


class ManagedProcess(Resource):
    """One long-running child process with its log file.

    ``run_as`` names an OS user to run the command as (via runuser); ``None``
    runs it as ourselves. ``name`` appears in every error message.
    """

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path,
                 run_as: str | None = None, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.run_as = run_as
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._server_pid: int | None = None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the command; returns at once (see :meth:`wait_ready`)."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        argv = self.argv
        if self.run_as is not None:
            argv = [_RUNUSER, "-u", self.run_as, "--", *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        log.debug("starting %s: %s", self.name, " ".join(argv))
        try:
            with held_while_forking():
                self._popen = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                    env=self.env, cwd=self.cwd, start_new_session=True, close_fds=True,
                    preexec_fn=preexec_death_signal)
        except OSError as exc:
            self._log.close()
            self._log = None
            raise StackError(f"{self.name}: cannot run {argv[0]}: {exc.strerror}") from None

    @property
    def pid(self) -> int | None:
        """Pid of our direct child (runuser when ``run_as`` is set), or None."""
        return self._popen.pid if self._popen is not None else None

    @property
    def server_pid(self) -> int | None:
        """Pid of the server itself: the child of runuser, or our child."""
        if self._popen is None:
            return None
        if self.run_as is None:
            return self._popen.pid
        if self._server_pid is None or not pid_alive(self._server_pid):
            kids = _children(self._popen.pid)
            self._server_pid = kids[0] if kids else None
        return self._server_pid

    def running(self) -> bool:
        """True while the child (and, through runuser, the server) is alive."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once the child has ended."""
        return self._popen.poll() if self._popen is not None else None

    def wait_ready(self, check: Callable[[], bool], timeout_s: float,
                   interval_s: float = 0.05) -> None:
        """Poll ``check`` until it returns True; raise StackError if the process
        ends first or ``timeout_s`` passes. Exceptions from ``check`` count as
        "not yet"."""
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while True:
            if not self.running():
                raise self.failure(f"exited with status {self.returncode} before it was ready")
            try:
                if check():
                    return
            except Exception as exc:
                last_error = f" (last check: {exc})".replace("\n", " ")
            if time.monotonic() >= deadline:
                raise self.failure(f"not ready after {timeout_s:g} s{last_error}")
            time.sleep(interval_s)

    def failure(self, what: str, lines: int = 15) -> StackError:
        """A StackError saying ``what`` happened, carrying the log's tail."""
        tail = self.log_tail(lines)
        detail = f"; last lines of {self.log_path}:\n{tail}" if tail else ""
        return StackError(f"{self.name} {what}{detail}")

    def send_signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the server itself (not to runuser)."""
        pid = self.server_pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def terminate(self, sig: signal.Signals, timeout_s: float) -> bool:
        """Send ``sig`` and wait up to ``timeout_s`` for the child to end."""
        if self._popen is None or self._popen.poll() is not None:
            return True
        if self.run_as is not None and self.server_pid is None:
            # runuser has not forked yet (or its server is gone): let runuser
            # pass SIGTERM on, the one signal it forwards.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._popen.pid, signal.SIGTERM)
        else:
            self.send_signal(sig)
        try:
            self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop politely with ``sig``; after ``timeout_s``, SIGKILL. Idempotent."""
        if self._popen is None:
            return
        try:
            if not self.terminate(sig, timeout_s):
                log.warning("%s did not stop within %g s of %s; killing it",
                            self.name, timeout_s, sig.name)
                self.kill()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def kill(self) -> None:
        """SIGKILL the server and its process group, then reap the child."""
        if self._popen is None:
            return
        server = self.server_pid
        for pid in (server, self._popen.pid):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the process wrote."""
        return log_tail(self.log_path, lines)

