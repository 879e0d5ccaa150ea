"""The emulator server as a process the stack owns: :class:`EmulatorProcess`.

The stack (``local_stack/stack.py``) uses it like every other server::

    with EmulatorProcess(scenario, run_dir, {"api": {"DB_HOST": "127.0.0.1"}}) as emu:
        boto3.client("lambda", endpoint_url=emu.invoke_url)

It writes the :class:`~connstorm.local_stack.lambda_.config.EmulatorConfig` into the run
folder (0600: it holds the functions' database passwords), starts
``python -m connstorm.local_stack.lambda_`` in its own session with output to
``logs/emulator.log``, and waits until ``/_connstorm/health`` answers. The
server dies with this process even when it is SIGKILLed: it runs with
``PR_SET_PDEATHSIG`` = SIGTERM (and shuts its environments down), its zygotes
with SIGKILL on the server, and every environment with SIGKILL on its zygote.
Linux fires the death signal when the *thread* that started the server exits,
so call :meth:`start` from a thread that lives as long as the stack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from connstorm.errors import StackError
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.provisioning import init_limit_s
from connstorm.local_stack.resource import Resource
from connstorm.run_folder import EMULATOR_CONFIG_FILE, EMULATOR_LOG, EMULATOR_READY_FILE, log_tail
from connstorm.scenario import Scenario

log = logging.getLogger(__name__)


class EmulatorProcess(Resource):
    """Start, wait for and stop the emulator server; exposes its three URLs."""

    def __init__(self, scenario: Scenario, run_dir: str | Path,
                 function_env: Mapping[str, Mapping[str, str]] | None = None, *,
                 startup_timeout_s: float = 30.0, base_dir: str | Path | None = None,
                 vanished_lingers: Mapping[str, float | None] | None = None) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.config = EmulatorConfig.from_scenario(scenario, self.run_dir, function_env,
                                                   base_dir=base_dir,
                                                   vanished_lingers=vanished_lingers)
        # Provisioned environments are initialised before the server reports ready,
        # after a hyperplane VPC function's Pending window: wait for those too.
        provisioned = [fn for fn in self.config.functions if fn.provisioned_concurrency]
        pending_s = max((fn.vpc.eni_attach_ms / 1000 for fn in provisioned
                         if fn.vpc is not None), default=0.0)
        init_s = max((init_limit_s(self.config.account, fn, provisioned=True)
                      for fn in provisioned), default=0.0)
        self.startup_timeout_s = startup_timeout_s + (pending_s + init_s if provisioned else 0.0)
        self.config_path = self.run_dir / EMULATOR_CONFIG_FILE
        self.ready_path = self.run_dir / EMULATOR_READY_FILE
        self.log_path = self.run_dir / EMULATOR_LOG
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._log_file: IO[bytes] | None = None

    # ------------------------------------------------------------ URLs

    @property
    def api_url(self) -> str:
        """Base URL of the API Gateway front."""
        if self.port is None:
            raise RuntimeError("EmulatorProcess not started")
        return f"http://{self.config.host}:{self.port}"

    @property
    def invoke_url(self) -> str:
        """boto3's ``endpoint_url`` for the Lambda Invoke API (same server)."""
        return self.api_url

    @property
    def stats_url(self) -> str:
        """``GET`` it for the emulator's counters (the ``emulator`` sample row)."""
        return f"{self.api_url}/_connstorm/stats"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.proc.pid if self.proc is not None else None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Write the config, start the server, wait for health; StackError with log tail."""
        self.config.write(self.config_path)
        self.ready_path.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            # -P: the working folder is not put on sys.path (nothing there may shadow).
            [sys.executable, "-P", "-m", "connstorm.local_stack.lambda_",
             "--config", str(self.config_path),
             "--ready-file", str(self.ready_path), "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("emulator ready at %s (pid %s)", self.api_url, self.pid)
        if self.config.account.cpu_shares and not self._stats().get("cpu_shares", False):
            log.warning("cpu_shares: off, no writable cgroup with a CPU controller here; "
                        "environments get whole CPUs (%s says why)", EMULATOR_LOG)

    def _stats(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.stats_url, timeout=5) as resp:
                doc = json.loads(resp.read())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._failure(f"exited with status {self.proc.returncode} during startup")
            if self.ready_path.exists():
                try:
                    self.port = int(json.loads(self.ready_path.read_text())["port"])
                except (ValueError, KeyError, OSError):
                    self.port = None
                if self.port is not None and self._healthy():
                    return
            time.sleep(0.02)
        raise self._failure(f"did not answer /_connstorm/health within "
                            f"{self.startup_timeout_s:.0f} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/_connstorm/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _failure(self, what: str) -> StackError:
        tail = log_tail(self.log_path)
        return StackError(f"Lambda emulator {what}; last lines of {self.log_path}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM (the server shuts its environments down), SIGKILL if it lingers."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            grace_s = self.config.account.shutdown_timeout_s + 8.0
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("emulator did not stop within %.0f s: SIGKILL", grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.ready_path.unlink(missing_ok=True)

