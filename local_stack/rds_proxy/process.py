"""The RDS Proxy stand-in in a child process (``python -m connstorm.local_stack.rds_proxy``).

Same proxy as :class:`.proxy.RdsProxy`, run as a
:class:`~connstorm.local_stack.process.ManagedProcess`:
its own session, a parent-death signal, SIGTERM then SIGKILL on stop, a log file
whose tail explains a failed start. Used where the proxy must not share the
caller's GIL (the throughput benchmark) and to show that the collector reads a
proxy in another process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from connstorm.local_stack.credentials import make_dsn
from connstorm.local_stack.process import ManagedProcess
from connstorm.local_stack.resource import Resource
from connstorm.run_folder import RDS_PROXY_LOG
from connstorm.sections.rds_proxy import RdsProxyConfig


class RdsProxyProcess(Resource):
    """``python -m connstorm.local_stack.rds_proxy`` in front of ``upstream_host:upstream_port``."""

    def __init__(self, config: RdsProxyConfig, *, upstream_host: str, upstream_port: int,
                 user: str, password: str, work_dir: Path, pool_size: int | None = None,
                 start_timeout_s: float = 20.0) -> None:
        self.work_dir = work_dir
        self.ready_file = work_dir / "rds_proxy.ready.json"
        keys: dict[str, Any] = {k: getattr(config, k) for k in (
            "max_connections_percent", "max_idle_connections_percent",
            "connection_borrow_timeout_s", "idle_client_timeout_s", "init_query", "iam_auth",
            "realtime_priority")}
        argv = [sys.executable, "-P", "-m", "connstorm.local_stack.rds_proxy",
                "--upstream-host", upstream_host,
                "--upstream-port", str(upstream_port), "--user", user,
                "--ready-file", str(self.ready_file), "--config", json.dumps(keys)]
        if pool_size is not None:
            argv += ["--pool-size", str(pool_size)]
        env = {**os.environ, "RDS_PROXY_PASSWORD": password}
        self.process = ManagedProcess("RDS Proxy stand-in", argv, env=env,
                                      log_path=work_dir / Path(RDS_PROXY_LOG).name, cwd=work_dir)
        self.start_timeout_s = start_timeout_s
        self.host = "127.0.0.1"
        self.port = 0
        self.metrics_url = ""

    def start(self) -> None:
        """Start the process; returns once it listens."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        self.process.start()
        self.process.wait_ready(self.ready_file.exists, self.start_timeout_s)
        info = json.loads(self.ready_file.read_text(encoding="utf-8"))
        self.host, self.port, self.metrics_url = info["host"], info["port"], info["metrics_url"]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; idempotent."""
        self.process.stop()

    def dsn(self, user: str, password: str | None, dbname: str) -> str:
        """A client URL through the proxy."""
        return make_dsn(user, password, self.host, self.port, dbname)
