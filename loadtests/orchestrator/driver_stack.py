"""The stack of ``connstorm drivers``: one PostgreSQL, every path in front of it, one emulator.

One PostgreSQL serves every path (direct, each PgBouncer, the RDS Proxy
stand-in), so the matrix costs one server start, not one per cell. What keeps
the cells apart is that each (configuration, path) has **a database of its own**,
copied from the seeded workload database:

* a pooler keeps one pool per database (PgBouncer per ``[databases]`` entry, here
  the ``*`` fallback; RDS Proxy per user and database), so one driver's prepared
  statements, reset queries or pins never reach another's server connections;
* ``pg_stat_activity.datname`` names the cell each database connection serves,
  whichever path opened it, so peak connections are counted per cell;
* ``CONNECTION LIMIT`` bounds each cell (``too many connections for database``),
  so a handler that leaks connections exhausts its own cell and no other.

Each configuration gets its own RDS Proxy stand-in (its pins are then its own);
each PgBouncer version is one process whose pools are the cells' databases.
A path whose server does not start is left out with one line saying why; the
others run.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from connstorm.errors import ConnstormError
from connstorm.loadtests.orchestrator.driver_statements import LOG_SETTINGS
from connstorm.local_stack.pgbouncer import PgBouncerServer
from connstorm.local_stack.pgbouncer_binaries import PgBouncerBinary
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.resource import Resource
from connstorm.scenario import Scenario, parse_scenario

log = logging.getLogger(__name__)

DIRECT, RDS_PROXY = "direct", "rds_proxy"


def pgbouncer_path(version: str) -> str:
    """``pgbouncer-1.18.0``: a PgBouncer path as ``summary.json`` names it."""
    return f"pgbouncer-{version}"


@dataclass(frozen=True)
class Subject:
    """What runs in a row of the matrix: a built-in configuration or the user's handler."""

    name: str
    driver: str
    config: str
    handler: str
    code_dir: str
    preload: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One (subject, path): a Lambda function, a database of its own."""

    subject: Subject
    path: str
    database: str
    function: str


@dataclass(frozen=True)
class StackPlan:
    """Sizes: ``users`` environments per cell, the poolers' pools, the cells' budget."""

    users: int
    pgbouncer_pool: int
    proxy_pool: int
    borrow_timeout_s: float
    query_wait_timeout_s: int
    function_timeout_s: float

    @property
    def reserved_concurrency(self) -> int:
        """Each cell's function may run this many environments: the users, and two spare.

        Lambda counts an environment busy until its runtime asks for the next event,
        a moment after the client has its answer; without headroom a user's next
        request can find every environment still busy and be throttled.
        """
        return self.users + 2

    @property
    def cell_connection_limit(self) -> int:
        """Each cell's database connection budget: one per environment, and two spare."""
        return self.reserved_concurrency + 2


def _function_name(subject: str, path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{subject}--{path}")[:64]


class DriverStack(Resource):
    """PostgreSQL, the per-cell databases, the poolers, the emulator: started in order."""

    def __init__(self, subjects: Sequence[Subject], pgbouncers: Sequence[PgBouncerBinary],
                 run_dir: Path, plan: StackPlan, *, seed_products: int = 1000,
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.subjects = list(subjects)
        self.pgbouncers = list(pgbouncers)
        self.run_dir = run_dir
        self.plan = plan
        self.seed_products = seed_products
        self.say = say
        self.postgres: PostgresServer | None = None
        self.poolers: dict[str, PgBouncerServer] = {}
        self.proxies: dict[str, Any] = {}  # subject name -> RdsProxy
        self.emulator: Any = None
        #: Paths left out, with the one line that says why.
        self.unavailable: dict[str, str] = {}
        self.cells: list[Cell] = []
        self._stops: list[Callable[[], None]] = []

    @property
    def paths(self) -> list[str]:
        """Every path the matrix has a column for, in order."""
        return [DIRECT, *(pgbouncer_path(b.version) for b in self.pgbouncers), RDS_PROXY]

    # ------------------------------------------------------------ start

    def start(self) -> None:
        from connstorm.handlers.workload import schema

        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        cells = len(self.subjects) * len(self.paths)
        config = parse_scenario({"name": "drivers", "postgres": {
            "max_connections": cells * self.plan.cell_connection_limit + 10,
            "superuser_reserved_connections": 3, **LOG_SETTINGS},
            "pgbouncer": {"enabled": False}},
            source="connstorm drivers").postgres
        pg = PostgresServer(config, self.run_dir, source="connstorm drivers")
        self.postgres = pg
        self._stops.append(pg.stop)
        pg.start()
        schema.install(pg.app_dsn, self.seed_products)
        self.cells = [Cell(s, path, f"cell_{i:03d}", _function_name(s.name, path))
                      for i, (s, path) in enumerate(
                          (s, p) for s in self.subjects for p in self.paths)]
        self._create_databases(pg)
        for binary in self.pgbouncers:
            self._start_pgbouncer(pg, binary)
        for subject in self.subjects:
            self._start_proxy(pg, subject)
        self._start_emulator(pg)

    def _create_databases(self, pg: PostgresServer) -> None:
        """A copy of the seeded ``app`` database per cell, with its connection budget."""
        with psycopg.connect(pg.admin_dsn, autocommit=True, connect_timeout=10) as conn:
            for cell in self.cells:
                conn.execute(sql.SQL(
                    "CREATE DATABASE {} TEMPLATE {} OWNER {} CONNECTION LIMIT {}").format(
                    sql.Identifier(cell.database), sql.Identifier(pg.app_dbname),
                    sql.Identifier(pg.app_user), sql.Literal(self.plan.cell_connection_limit)))

    def _start_pgbouncer(self, pg: PostgresServer, binary: PgBouncerBinary) -> None:
        path = pgbouncer_path(binary.version)
        config = parse_scenario({"name": "drivers", "postgres": {"max_connections": 1000},
                                 "pgbouncer": {
            "binary": str(binary.path), "pool_mode": "transaction",
            "default_pool_size": self.plan.pgbouncer_pool, "max_client_conn": 1000,
            "query_wait_timeout": self.plan.query_wait_timeout_s}},
            source="connstorm drivers").pgbouncer
        server = PgBouncerServer(config, pg, self.run_dir / path, db_name="*")
        try:
            server.start()
        except ConnstormError as exc:
            server.stop()
            self._leave_out(path, f"PgBouncer {binary.version} did not start: {exc}")
            return
        self.poolers[path] = server
        self._stops.append(server.stop)

    def _start_proxy(self, pg: PostgresServer, subject: Subject) -> None:
        """The configuration's own stand-in, in a process of its own.

        A process each, not a thread of this one: the load's threads run here, and
        a proxy sharing their interpreter lock would add their waits to its latency.
        """
        from connstorm.local_stack.rds_proxy.process import RdsProxyProcess
        from connstorm.sections.rds_proxy import RdsProxyConfig

        # Absolute: the stand-in runs in its work folder, and the default run folder
        # (runs/<time>-drivers) is relative to the user's, not to that one.
        proxy = RdsProxyProcess(
            RdsProxyConfig(connection_borrow_timeout_s=self.plan.borrow_timeout_s),
            upstream_host=pg.host, upstream_port=pg.port, user=pg.app_user,
            password=pg.app_password or "",
            work_dir=(self.run_dir / RDS_PROXY / subject.name).absolute(),
            pool_size=self.plan.proxy_pool)
        self._stops.append(proxy.stop)
        try:
            proxy.start()
        except ConnstormError as exc:
            self._leave_out(RDS_PROXY, f"the RDS Proxy stand-in did not start: {exc}")
            return
        self.proxies[subject.name] = proxy

    def _leave_out(self, path: str, why: str) -> None:
        line = " ".join(why.split())[:300]
        self.unavailable.setdefault(path, line)
        self.say(f"{path}: {line}; its column is left out, the rest of the matrix runs")

    def target(self, cell: Cell) -> tuple[str, int] | None:
        """Host and port the cell's function connects to (None: its path is out)."""
        if cell.path in self.unavailable:
            return None
        assert self.postgres is not None
        if cell.path == DIRECT:
            return self.postgres.host, self.postgres.port
        if cell.path == RDS_PROXY:
            proxy = self.proxies.get(cell.subject.name)
            return (proxy.host, proxy.port) if proxy is not None else None
        pooler = self.poolers.get(cell.path)
        return (pooler.host, pooler.port) if pooler is not None else None

    def runnable(self) -> list[Cell]:
        """The cells whose path is up."""
        return [c for c in self.cells if self.target(c) is not None]

    def _scenario(self) -> Scenario:
        cells = self.runnable()
        return parse_scenario({
            "name": "drivers",
            "lambda": {"concurrency_limit": len(cells) * self.plan.reserved_concurrency + 100,
                       "freeze": True},
            "pgbouncer": {"enabled": False},
            "functions": [{
                "name": c.function, "handler": c.subject.handler, "code_dir": c.subject.code_dir,
                "database": "none", "timeout_s": self.plan.function_timeout_s,
                "memory_mb": 256, "reserved_concurrency": self.plan.reserved_concurrency,
                "idle_lifetime_s": 600.0, "preload": list(c.subject.preload)}
                for c in cells]}, source="connstorm drivers")

    def _start_emulator(self, pg: PostgresServer) -> None:
        from connstorm.local_stack.lambda_.process import EmulatorProcess

        env: dict[str, dict[str, str]] = {}
        for cell in self.runnable():
            target = self.target(cell)
            assert target is not None
            env[cell.function] = {
                "DB_HOST": target[0], "DB_PORT": str(target[1]), "DB_NAME": cell.database,
                "DB_USER": pg.app_user, "DB_PASSWORD": pg.app_password or "",
                "DB_CONNECT_TIMEOUT_S": "5", "DB_SSLMODE": "disable",
                "DB_APPLICATION_NAME": cell.function}
        emulator = EmulatorProcess(self._scenario(), self.run_dir, env,
                                   startup_timeout_s=60.0 + 2.5 * len(env))
        self.emulator = emulator
        self._stops.append(emulator.stop)
        emulator.start()

    # ------------------------------------------------------------ what the cells did

    def pins(self, subject: str) -> Mapping[str, Any]:
        """The stand-in's pin reasons for one configuration (reason -> count, sample)."""
        proxy = self.proxies.get(subject)
        if proxy is None:
            return {}
        try:
            with urllib.request.urlopen(proxy.metrics_url, timeout=10) as answer:
                metrics = json.loads(answer.read())
        except (OSError, ValueError) as exc:
            log.warning("RDS Proxy stand-in of %s: no metrics: %s", subject, exc)
            return {}
        reasons = metrics.get("pin_reasons") if isinstance(metrics, Mapping) else None
        return dict(reasons) if isinstance(reasons, Mapping) else {}

    # ------------------------------------------------------------ stop

    def stop(self) -> None:
        first: BaseException | None = None
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except BaseException as exc:
                log.error("stopping a part of the drivers stack failed: %s", exc)
                first = first or exc
        if first is not None:
            raise first


class PeakConnections:
    """Samples ``pg_stat_activity`` per database while the load runs; keeps each peak."""

    def __init__(self, admin_dsn: str, interval_s: float = 0.1) -> None:
        self.admin_dsn = admin_dsn
        self.interval_s = interval_s
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakConnections:
        self._thread = threading.Thread(target=self._run, name="drivers-peaks", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True, prepare_threshold=None,
                                 connect_timeout=5) as conn:
                while True:
                    rows = conn.execute(
                        "SELECT datname, count(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' AND datname LIKE 'cell\\_%' "
                        "GROUP BY datname").fetchall()
                    for name, count in rows:
                        self.peaks[name] = max(self.peaks.get(name, 0), int(count))
                    if self._stop.wait(self.interval_s):
                        return
        except psycopg.Error as exc:
            log.warning("peak connections: sampling stopped: %s", exc)
