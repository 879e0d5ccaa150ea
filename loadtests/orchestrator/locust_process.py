"""Locust as a child process of connstorm: started in its own process group, always stopped.

connstorm runs Locust as a subprocess rather than in-process: Locust
monkey-patches the whole standard library with gevent on import, which the
stack's servers and the live terminal view must not inherit. Promises:

* the child gets ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` before exec, so it dies
  with connstorm even when connstorm is SIGKILLed;
* it leads its own process group (own session), so ``--processes`` workers it
  forks are stopped with it, and a Ctrl-C in the terminal reaches connstorm
  only, which then stops Locust politely (SIGTERM: Locust writes its final CSV
  rows and quits) and SIGKILLs the group after a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.run_folder import log_tail
from connstorm.signals import held_while_forking

log = logging.getLogger(__name__)



class LocustProcess:
    """``python -m locust ...`` with its output in ``log_path``.

    >>> with LocustProcess(["-f", str(WORKLOAD_LOCUSTFILE), "--headless", ...], log) as p:
    ...     p.wait(timeout_s=120)
    """

    def __init__(self, args: Sequence[str], log_path: Path, *,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 python: str | None = None) -> None:
        self.argv = [python or sys.executable, "-m", "locust", *args]
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The Locust master's (or local runner's) pid."""
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start Locust; its stdout and stderr go to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        log.debug("starting %s", " ".join(self.argv))
        with held_while_forking():
            self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                         start_new_session=True,
                                         preexec_fn=preexec_death_signal)

    def poll(self) -> int | None:
        """Exit code, or None while running."""
        return self.proc.poll() if self.proc is not None else None

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for Locust to end; its exit code, or None if still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (Locust quits cleanly), then SIGKILL the whole process group."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("locust did not stop within %.0f s; killing it", timeout_s)
        # Whatever is left of the group (workers forked by --processes) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def tail(self, lines: int = 15) -> str:
        """The end of Locust's output, for error messages."""
        return log_tail(self.log_path, lines)

    def __enter__(self) -> LocustProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_until(check: Any, deadline_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``check()`` until it is true or ``deadline_s`` seconds pass."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(interval_s)
    return bool(check())
