"""The RDS Proxy stand-in as a resource: listener, pools, timers and metrics on one loop.

:class:`RdsProxy` listens on a free 127.0.0.1 port and runs a uvloop event
loop on a thread of its own (it can never outlive the stack that started it).
Settings are the ``[rds_proxy]`` section's, RDS Proxy's own
(:class:`connstorm.sections.rds_proxy.RdsProxyConfig`).

Pool bound: at :meth:`RdsProxy.start` the proxy asks the server for
``max_connections`` and allows ``max_connections_percent`` of it
(:func:`.pool.pool_limit`), as RDS computes MaxConnectionsPercent (AWS, "RDS
Proxy connection considerations", section "MaxConnectionsPercent"). When that
is more than the app role can open (``max_connections`` minus the
``superuser_reserved_connections``), the start says so, and the proxy's own
logins beyond it fail as on AWS (``DatabaseConnectionsSetupFailed``; see
:mod:`.pool`). One pool per (user, database), each with that bound: the stack
has one role.

Pins are logged (logger ``connstorm.local_stack.rds_proxy.pins``, WARNING; the
stack writes ``logs/rds_proxy.log``) as RDS Proxy logs them with its enhanced
logging on: "[proxyEndpoint=default] [clientConnection=N] The client session
was pinned to the database connection [dbConnection=N] for the remainder of
the session. The proxy can't reuse this connection until the session ends.
Reason: ... Digest: "..."." (the statement with its literals replaced by
``$n``, as RDS Proxy's digests are), so one parser
(:mod:`connstorm.loadtests.orchestrator.proxy_logs`) reads a local log and a
live one.

Scheduling: the loop thread asks for ``SCHED_FIFO`` 1, as the emulator's does
(:mod:`connstorm.local_stack.priority`; ``[rds_proxy] realtime_priority
= false`` turns it off). RDS Proxy is a managed service on hosts of its own (AWS,
"Amazon RDS Proxy"): it never waits for CPU behind the Lambda environments,
Locust or PostgreSQL. Here it shares their cores, and at the ordinary priority
each hop through it waited for a turn: with 4 clients on 2 cores it made 0.61 of
PgBouncer's queries per second (load average 15), 1.42 at real-time priority in
the same run (``benchmarks/rds_proxy_throughput.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from connstorm import metric_names as names
from connstorm.errors import StackError
from connstorm.local_stack import pg_wire
from connstorm.local_stack.credentials import make_dsn
from connstorm.local_stack.priority import NORMAL, raise_priority
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.rds_proxy.auth import ClientAuth, IamSettings
from connstorm.local_stack.rds_proxy.metrics import MetricsEndpoint, mean_recent
from connstorm.local_stack.rds_proxy.pool import IDLE_AFTER_S, Pool, pool_limit
from connstorm.local_stack.rds_proxy.session import ClientSession
from connstorm.local_stack.rds_proxy.statements import StatementRegistry
from connstorm.local_stack.resource import Resource
from connstorm.sections.rds_proxy import RdsProxyConfig

_log = logging.getLogger("connstorm.local_stack.rds_proxy")
#: The pin log, RDS Proxy's CloudWatch log lines (the stack writes it to logs/rds_proxy.log).
_pin_log = logging.getLogger("connstorm.local_stack.rds_proxy.pins")

PIN_LOG = ("[proxyEndpoint=default] [clientConnection={client}] The client session was pinned "
           "to the database connection [dbConnection={conn}] for the remainder of the session. "
           "The proxy can't reuse this connection until the session ends. Reason: {reason} "
           "Digest: \"{digest}\".")
#: Longest sample statement kept per pin reason.
SAMPLE_CHARS = 300


@dataclass(frozen=True)
class Pin:
    """One pinning event, as logged."""

    db_connection: int
    reason: str
    statement: str


class ProxyCore:
    """Everything the sessions share; lives on the proxy's loop (no locks needed)."""

    def __init__(self, config: RdsProxyConfig, *, host: str, port: int,
                 passwords: Mapping[str, str], limit: int, iam: IamSettings | None,
                 idle_after_s: float = IDLE_AFTER_S) -> None:
        self.config = config
        self.upstream = (host, port)
        self._passwords = dict(passwords)
        self.limit = limit
        self.idle_limit = limit * config.idle_percent // max(1, config.max_connections_percent)
        self.idle_after_s = idle_after_s
        self.sweeps = 0
        self.auth = ClientAuth(passwords, iam)
        self.pools: dict[tuple[str, str], Pool] = {}
        self.statements = StatementRegistry()
        self.sessions: set[ClientSession] = set()
        self.by_key: dict[tuple[int, bytes], ClientSession] = {}
        self.queries = 0
        self.failed_auth = 0
        self.setup_succeeded = 0
        self.borrow_timeouts = 0
        self.idle_closed = 0
        self.cancels_ignored = 0
        self.pins: list[Pin] = []
        self.pin_reasons: dict[str, dict[str, Any]] = {}

    def pool(self, user: str, database: str) -> Pool:
        """The pool of (user, database), made on first use."""
        key = (user, database)
        if key not in self.pools:
            self.pools[key] = Pool(
                host=self.upstream[0], port=self.upstream[1], user=user, database=database,
                password=self._passwords[user], limit=self.limit, idle_limit=self.idle_limit,
                borrow_timeout_s=self.config.connection_borrow_timeout_s,
                init_query=self.config.init_query, idle_after_s=self.idle_after_s)
        return self.pools[key]

    # ------------------------------------------------------------ events from sessions

    def session_ready(self, session: ClientSession) -> None:
        self.setup_succeeded += 1
        self.by_key[session.backend_key] = session

    def session_ended(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        self.by_key.pop(session.backend_key, None)

    def auth_failed(self, user: str, why: str) -> None:
        self.failed_auth += 1
        _log.info("RDS Proxy stand-in: authentication failed for %r: %s", user, why)

    def pinned(self, session: ClientSession, conn: Any, reason: str, sql: str) -> None:
        sample = " ".join(sql.split())[:SAMPLE_CHARS]
        self.pins.append(Pin(conn.id, reason, sample))
        del self.pins[:-1000]
        entry = self.pin_reasons.setdefault(reason, {"count": 0, "sample": sample})
        entry["count"] += 1
        _pin_log.warning(PIN_LOG.format(client=session.backend_key[0], conn=conn.id,
                                        reason=reason, digest=pinning.digest(sql)))

    def cancel(self, packet: bytes) -> None:
        """A client's CancelRequest: ignored, and said so in the log.

        AWS, "Limitations for RDS Proxy", section "Additional limitations for
        RDS for PostgreSQL": "For PostgreSQL, RDS Proxy doesn't currently
        support canceling a query from a client by issuing a CancelRequest"
        (psql's Ctrl+C, a driver's ``cancel()``). PostgreSQL never answers a
        CancelRequest, so the client cannot tell: its query runs to the end.
        """
        pid, key = pg_wire.length_of(packet, 8), packet[12:16]
        session = self.by_key.get((pid, key))
        self.cancels_ignored += 1
        _log.warning("RDS Proxy stand-in: a client asked to cancel its running query "
                     "(CancelRequest%s); ignored, as RDS Proxy for PostgreSQL does not "
                     "support canceling a query from a client: the query runs to its end",
                     "" if session is not None else " for no known client")

    # ------------------------------------------------------------ timers and metrics

    def sweep(self, now: float) -> None:
        """Close idle clients past the idle timeout; trim idle database connections."""
        timeout = self.config.idle_client_timeout_s
        for session in list(self.sessions):
            if session.idle() and now - session.last_active > timeout:
                self.idle_closed += 1
                session.close_idle()
        for pool in self.pools.values():
            pool.trim()
        self.sweeps += 1

    def snapshot(self) -> dict[str, Any]:
        """The metrics dict (see :mod:`.metrics`)."""
        lent = [s for s in self.sessions if s.server is not None]
        latencies = [x for p in self.pools.values() for x in p.borrow_latencies]
        return {
            names.CLIENT_CONNECTIONS: sum(1 for s in self.sessions if s.ready),
            names.DATABASE_CONNECTIONS: sum(p.opened for p in self.pools.values()),
            names.DATABASE_CONNECTIONS_BORROWED: sum(p.borrowed for p in self.pools.values()),
            names.DATABASE_CONNECTIONS_IN_TRANSACTION: sum(1 for s in lent if s.status != b"I"),
            names.DATABASE_CONNECTIONS_PINNED: sum(1 for s in lent if s.pinned is not None),
            names.BORROW_LATENCY: mean_recent(latencies, time.monotonic()),
            names.SETUP_FAILED_AUTH: self.failed_auth,
            names.SETUP_SUCCEEDED: self.setup_succeeded,
            names.QUERY_REQUESTS: self.queries,
            names.MAX_DATABASE_CONNECTIONS: self.limit,
            names.DATABASE_CONNECTION_REQUESTS: sum(p.setup_requests
                                                    for p in self.pools.values()),
            names.DATABASE_SETUP_SUCCEEDED: sum(p.setup_succeeded for p in self.pools.values()),
            names.DATABASE_SETUP_FAILED: sum(p.setup_failed for p in self.pools.values()),
            names.BORROW_TIMEOUTS: self.borrow_timeouts,
            names.IDLE_CLIENTS_CLOSED: self.idle_closed,
            names.PREPARED_STATEMENTS_INJECTED: self.statements.injected,
            names.CANCEL_REQUESTS_IGNORED: self.cancels_ignored,
            names.PIN_REASONS: {k: dict(v) for k, v in self.pin_reasons.items()},
        }


class RdsProxy(Resource):
    """The RDS Proxy stand-in in front of one PostgreSQL server.

    >>> with RdsProxy(RdsProxyConfig(), upstream_host="127.0.0.1", upstream_port=5432,
    ...               passwords={"app": "pw"}) as proxy:
    ...     psycopg.connect(proxy.dsn("app", "pw", "app")).execute("select 1")
    ...     proxy.metrics()["DatabaseConnections"]

    ``passwords`` are the proxy's secrets (user -> password): what it logs in to
    the database with, and what it checks clients' SCRAM proofs against.
    ``iam_keys`` (access key -> secret key) are required when
    ``config.iam_auth == "required"``. ``pool_size`` overrides the bound read
    from the server, ``idle_after_s`` AWS's five minutes before a pooled
    connection counts as idle (tests and benchmarks only).
    """

    def __init__(self, config: RdsProxyConfig, *, upstream_host: str, upstream_port: int,
                 passwords: Mapping[str, str], iam_keys: Mapping[str, str] | None = None,
                 region: str = "us-east-1", pool_size: int | None = None,
                 start_timeout_s: float = 15.0, idle_after_s: float = IDLE_AFTER_S) -> None:
        if config.iam_auth == "required" and not iam_keys:
            raise ValueError("iam_auth = required needs iam_keys")
        self.config = config
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self._passwords = dict(passwords)
        self._iam_keys = dict(iam_keys or {})
        self.region = region
        self.pool_size = pool_size
        self.idle_after_s = idle_after_s
        self.host = "127.0.0.1"
        self.port = 0
        self.metrics_port = 0
        self.core: ProxyCore | None = None
        self._start_timeout_s = start_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        #: The loop thread's scheduling (``realtime`` or ``normal``) and its thread id.
        self.scheduling = NORMAL
        self.native_id = 0

    @property
    def metrics_url(self) -> str:
        """Where the collector (``locust_plugin.collectors.rds_proxy``) reads the metrics."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def dsn(self, user: str, password: str | None, dbname: str) -> str:
        """A client URL through the proxy."""
        return make_dsn(user, password, self.host, self.port, dbname)

    def function_env(self) -> dict[str, str]:
        """What an ``iam_token`` function needs with ``iam_auth = "required"``: no password."""
        return {"DB_HOST": self.host, "DB_PORT": str(self.port), "DB_IAM_AUTH": "true"}

    def _read_limit(self) -> int:
        if self.pool_size is not None:
            return self.pool_size
        user, password = next(iter(self._passwords.items()))
        with psycopg.connect(host=self.upstream_host, port=self.upstream_port, user=user,
                             password=password, dbname="postgres", connect_timeout=5,
                             autocommit=True) as conn:
            rows = conn.execute("select name, setting from pg_settings where name in "
                                "('max_connections', 'superuser_reserved_connections')")
            settings = {name: int(value) for name, value in rows}
        limit = pool_limit(settings["max_connections"], self.config.max_connections_percent)
        usable = settings["max_connections"] - settings.get("superuser_reserved_connections", 0)
        if limit > usable:
            _log.warning("RDS Proxy stand-in: a pool of %d (%d %% of max_connections %d) is "
                         "more than the %d connections %s can open; the proxy's logins beyond "
                         "them will fail (DatabaseConnectionsSetupFailed), as on AWS", limit,
                         self.config.max_connections_percent, settings["max_connections"],
                         usable, user)
        return limit

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Read the pool bound from the server, listen; returns once accepting."""
        try:
            limit = self._read_limit()
        except (psycopg.Error, StopIteration) as exc:
            raise StackError(f"RDS Proxy stand-in cannot read max_connections from "
                             f"{self.upstream_host}:{self.upstream_port}: {exc}") from exc
        self._thread = threading.Thread(target=self._serve, args=(limit,),
                                        name="rds-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout_s) or self._failure is not None:
            self.stop()
            raise StackError(f"RDS Proxy stand-in did not start: {self._failure or 'timeout'}")
        _log.info("RDS Proxy stand-in on %s:%d -> %s:%d, pool of %d, metrics on port %d",
                  self.host, self.port, self.upstream_host, self.upstream_port, limit,
                  self.metrics_port)

    def restart(self) -> None:
        """Stop and start again on the same ports (the ``restart_rds_proxy`` fault).

        Every client connection is dropped, as when RDS Proxy fails over; the
        counters start again from zero.
        """
        self.stop()
        self._ready.clear()
        self._failure = None
        self.start()

    def running(self) -> bool:
        """True while the proxy's loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Close the listener, every client and every database connection; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._request_stop)
            thread.join(timeout=10)
        self._thread = None

    def metrics(self) -> dict[str, Any]:
        """A snapshot of the metrics, taken on the proxy's loop."""
        core, loop = self.core, self._loop
        if core is None or loop is None or not loop.is_running():
            return {}

        async def take() -> dict[str, Any]:
            return core.snapshot()
        return asyncio.run_coroutine_threadsafe(take(), loop).result(timeout=10)

    @property
    def pins(self) -> list[Pin]:
        """Every pin logged so far (the last 1000)."""
        return list(self.core.pins) if self.core is not None else []

    def _request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _serve(self, limit: int) -> None:
        import uvloop

        if self.config.realtime_priority:
            # This thread only: the stack's other threads, and what they start, stay normal.
            self.scheduling = raise_priority("RDS Proxy stand-in", "its clients and the database")
        self.native_id = threading.get_native_id()
        loop = uvloop.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(limit))
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._failure = self._failure or exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self, limit: int) -> None:
        self._stopping = asyncio.Event()
        iam = None
        if self.config.iam_auth == "required":
            iam = IamSettings(self.host, 0, self.region, self._iam_keys)
        core = ProxyCore(self.config, host=self.upstream_host, port=self.upstream_port,
                         passwords=self._passwords, limit=limit, iam=iam,
                         idle_after_s=self.idle_after_s)
        tasks: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            session = ClientSession(core, reader, writer)
            session.task = asyncio.current_task()  # type: ignore[assignment]
            core.sessions.add(session)
            with contextlib.suppress(asyncio.CancelledError):
                await session.run()

        def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.get_running_loop().create_task(accept(reader, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            server = await asyncio.start_server(track, self.host, self.port)
            endpoint = MetricsEndpoint(core.snapshot)
            await endpoint.start(self.host, self.metrics_port)
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            return
        self.port = int(server.sockets[0].getsockname()[1])
        if iam is not None:
            core.auth.iam = IamSettings(self.host, self.port, self.region, self._iam_keys)
        self.metrics_port = endpoint.port
        self.core = core
        self._ready.set()
        tick = min(1.0, self.config.idle_client_timeout_s / 4)
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), tick)
            core.sweep(loop.time())
        server.close()
        endpoint.close()
        # Sessions first, then whatever else runs (logins, borrows, pool openings).
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(list(tasks), timeout=5)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=5)
        for pool in core.pools.values():
            pool.close_all()
        await asyncio.sleep(0)
