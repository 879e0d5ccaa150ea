"""Faults injected into a running stack: the actions of a scenario's ``[[timeline]]``.

Each is what a production incident does to the handlers' connections, done to
the real servers of a :class:`~connstorm.local_stack.stack.Stack`:

=====================  =====================================================================
``restart_postgres``   shutdown (``mode`` fast: SIGINT, clients cut at once; smart: SIGTERM,
                       waits for clients, fast after 10 s) and start again, same port and data:
                       a failover or maintenance restart
``restart_pgbouncer``  SIGKILL PgBouncer and start it again on the same port: a pooler crash
``restart_rds_proxy``  the same for the RDS Proxy stand-in, when the stack has one
``terminate_backends`` ``pg_terminate_backend`` of every backend of the application role: an
                       idle timeout, an operator, a failover that keeps the server
``kill_environments``  SIGKILL ``count`` environments of function ``target`` (the emulator's
                       ``POST /_connstorm/functions/{name}/kill``)
``freeze_database``    SIGSTOP the postmaster and its backends for ``seconds``, then SIGCONT:
                       a stalled host (I/O freeze, VM pause); connections stay open, nothing
                       answers
``network_latency``    ``ms`` more each way between handlers and the database for ``seconds``
                       (a full stall when ``ms`` covers the window), through the stack's
                       :class:`~connstorm.local_stack.tcp_proxy.TcpProxy`
``deploy``             publish a new version of function ``target`` (the emulator's deploy)
=====================  =====================================================================

Every action returns a small dict of what it did (it becomes the timeline
row's ``result``). Actions that last (freeze, latency) block for their
``seconds`` but end early when ``stop`` is set, and always undo themselves: a
frozen database is continued even when the run is interrupted mid-freeze
(``PostgresServer.stop`` continues it too, so a stack can always be stopped).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

import psycopg

from connstorm.errors import StackError

log = logging.getLogger(__name__)

#: How long a smart shutdown waits for clients before it turns into a fast one.
SMART_TIMEOUT_S = 10.0

#: A freeze's watchdog fires this long after the freeze should have ended.
WATCHDOG_SLACK_S = 2.0

_TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE usename = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


class TimelineEntry(Protocol):
    """What an action needs of a ``[[timeline]]`` entry (``TimelineAction``)."""

    @property
    def at_s(self) -> float: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def count(self) -> int | None: ...
    @property
    def seconds(self) -> float | None: ...
    @property
    def ms(self) -> float | None: ...
    @property
    def mode(self) -> str | None: ...


class Faults:
    """The fault actions against one started stack (anything with the Stack's attributes)."""

    def __init__(self, stack: Any, *, smart_timeout_s: float = SMART_TIMEOUT_S) -> None:
        self.stack = stack
        self.smart_timeout_s = smart_timeout_s

    # ------------------------------------------------------------ dispatch

    def apply(self, entry: TimelineEntry, stop: threading.Event | None = None) -> dict[str, Any]:
        """Run one timeline entry's action; raises StackError when it cannot be done."""
        stop = stop or threading.Event()
        action = entry.action
        if action == "restart_postgres":
            return self.restart_postgres(entry.mode or "fast")
        if action == "restart_pgbouncer":
            return self.restart_pgbouncer()
        if action == "restart_rds_proxy":
            return self.restart_rds_proxy()
        if action == "terminate_backends":
            return self.terminate_backends()
        if action == "kill_environments":
            return self.kill_environments(str(entry.target), int(entry.count or 1))
        if action == "freeze_database":
            return self.freeze_database(float(entry.seconds or 0), stop)
        if action == "network_latency":
            return self.network_latency(float(entry.ms or 0), float(entry.seconds or 0), stop)
        if action == "deploy":
            return self.deploy(str(entry.target))
        raise StackError(f"unknown timeline action {action!r}")

    # ------------------------------------------------------------ servers

    def _postgres(self) -> Any:
        pg = self.stack.postgres
        if pg is None or not hasattr(pg, "restart"):
            raise StackError("this stack's PostgreSQL is not one connstorm runs "
                             "(an external server or a container): it cannot be restarted "
                             "or frozen")
        return pg

    def restart_postgres(self, mode: str = "fast") -> dict[str, Any]:
        """Shut PostgreSQL down (``fast`` or ``smart``) and start it again, same port."""
        if mode not in ("fast", "smart"):
            raise StackError(f"restart_postgres: mode must be fast or smart, not {mode!r}")
        started = time.monotonic()
        self._postgres().restart(mode, smart_timeout_s=self.smart_timeout_s)
        return {"mode": mode, "down_s": round(time.monotonic() - started, 3)}

    def restart_pgbouncer(self) -> dict[str, Any]:
        """SIGKILL PgBouncer and start it again on the same port."""
        pb = self.stack.pgbouncer
        if pb is None or not hasattr(pb, "restart"):
            raise StackError("restart_pgbouncer: this stack's PgBouncer cannot be restarted "
                             "(PgBouncer disabled, or run as a container)")
        started = time.monotonic()
        pb.restart()
        return {"down_s": round(time.monotonic() - started, 3)}

    def restart_rds_proxy(self) -> dict[str, Any]:
        """Restart the RDS Proxy stand-in (its ``restart()``), when the stack has one."""
        proxy = getattr(self.stack, "rds_proxy", None)
        if proxy is None or not hasattr(proxy, "restart"):
            raise StackError("restart_rds_proxy: the stack has no restartable RDS Proxy stand-in")
        started = time.monotonic()
        proxy.restart()
        return {"down_s": round(time.monotonic() - started, 3)}

    def terminate_backends(self) -> dict[str, Any]:
        """``pg_terminate_backend`` of every backend of the application role."""
        pg = self.stack.postgres
        if pg is None:
            raise StackError("terminate_backends: the stack has no PostgreSQL")
        with psycopg.connect(pg.admin_dsn, autocommit=True, connect_timeout=5,
                             application_name="connstorm-timeline") as conn:
            row = conn.execute(_TERMINATE, (pg.app_user,)).fetchone()
        return {"terminated": int(row[0]) if row else 0}

    def freeze_database(self, seconds: float, stop: threading.Event | None = None
                        ) -> dict[str, Any]:
        """SIGSTOP the postmaster and its backends for ``seconds`` (less if ``stop`` is set)."""
        pg = self._postgres()
        started = time.monotonic()
        try:
            # The watchdog continues the database even if this process is killed meanwhile.
            frozen = pg.freeze(watchdog_s=seconds + WATCHDOG_SLACK_S)
            (stop or threading.Event()).wait(seconds)
        finally:
            pg.thaw()
        return {"processes": len(frozen), "frozen_s": round(time.monotonic() - started, 3)}

    def network_latency(self, ms: float, seconds: float, stop: threading.Event | None = None
                        ) -> dict[str, Any]:
        """``ms`` each way (a stall when ``ms`` >= the window) for ``seconds``, every db proxy."""
        proxies = list(getattr(self.stack, "db_proxies", {}).values())
        if not proxies:
            raise StackError("network_latency: the stack has no proxy in front of the database "
                             "(it starts one when the scenario's timeline has this action)")
        started = time.monotonic()
        try:
            for proxy in proxies:
                proxy.impair(ms=ms, seconds=seconds)
            (stop or threading.Event()).wait(seconds)
        finally:
            for proxy in proxies:
                proxy.clear()
        return {"ms": ms, "stall": ms >= seconds * 1000,
                "lasted_s": round(time.monotonic() - started, 3)}

    # ------------------------------------------------------------ the emulator

    def _emulator_post(self, path: str) -> dict[str, Any]:
        emulator = self.stack.emulator
        url = getattr(emulator, "api_url", None)
        if not url:
            raise StackError("the stack runs no Lambda emulator")
        request = urllib.request.Request(f"{url}{path}", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                doc = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            raise StackError(f"emulator answered {exc.code} to POST {path}: {body}") from None
        except OSError as exc:
            raise StackError(f"emulator did not answer POST {path}: {exc}") from None
        return doc if isinstance(doc, dict) else {}

    def kill_environments(self, target: str, count: int) -> dict[str, Any]:
        """SIGKILL ``count`` environments of function ``target`` through the emulator."""
        return self._emulator_post(f"/_connstorm/functions/{target}/kill?count={count}")

    def deploy(self, target: str) -> dict[str, Any]:
        """Publish a new version of function ``target`` through the emulator."""
        return self._emulator_post(f"/_connstorm/functions/{target}/deploy")
