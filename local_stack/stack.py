"""The whole local stack of a scenario, started in order and stopped in reverse.

PostgreSQL (or the server at ``[postgres] url``; containers of the connstorm
image when ``[postgres] backend = "docker"``, see :mod:`connstorm.local_stack.containers`),
then PgBouncer when
``[pgbouncer] enabled``, then the RDS Proxy stand-in when ``[rds_proxy] enabled``
(or a function has ``database = "rds_proxy"``), then the workload schema, then
the Lambda emulator when the scenario has functions. ``stack.json`` in the run folder says where
everything is (keys in ``docs/run-folder.md``; mode 0600: it holds passwords).

A start that fails half way stops what it had started and raises StackError
carrying the last lines of the failing server's log. Server data lives in a
private scratch folder (see :mod:`connstorm.local_stack.scratch`) deleted on stop; the
scratch folders of crashed runs are cleaned at the next start.

>>> with Stack(load_scenario("pgbouncer-transaction"), Path("runs/demo")) as stack:
...     psycopg.connect(stack.pgbouncer.dsn).execute("select 1")
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from connstorm.errors import ConnstormError, StackError
from connstorm.local_stack.external_postgres import ExternalPostgres
from connstorm.local_stack.os_user import server_user
from connstorm.local_stack.pgbouncer import PgBouncerServer
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.resource import Resource
from connstorm.local_stack.scratch import clean_stale, create_scratch, remove_scratch
from connstorm.local_stack.tcp_proxy import TcpProxy
from connstorm.run_folder import (
    EMULATOR_LOG,
    LOGS_DIR,
    PGBOUNCER_LOG,
    POSTGRES_LOG,
    RDS_PROXY_LOG,
    SCENARIO_FILE,
    STACK_FILE,
    create_run_dir,
    log_tail,
    write_json,
    write_private_json,
)
from connstorm.scenario import FunctionConfig, Scenario

log = logging.getLogger(__name__)

#: What every function's handlers get besides the database variables.
DB_CONNECT_TIMEOUT_S = "5"
DB_SSLMODE = "disable"


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class Stack(Resource):
    """Every server of one scenario, as one context manager.

    ``with_schema`` and ``with_emulator`` let tests leave parts out; by default
    both are used when the scenario needs them.
    """

    def __init__(self, scenario: Scenario, run_dir: Path | str, *, with_schema: bool = True,
                 with_emulator: bool = True) -> None:
        self.scenario = scenario
        self.run_dir = Path(run_dir).resolve()
        self.with_schema = with_schema
        self.with_emulator = with_emulator
        self.postgres: PostgresServer | ExternalPostgres | None = None
        self.pgbouncer: PgBouncerServer | None = None
        self.rds_proxy: Any = None
        self.emulator: Any = None
        #: Loopback proxies between handlers and the database, by "host:port" of
        #: the server behind (only when the timeline has ``network_latency``).
        self.db_proxies: dict[str, TcpProxy] = {}
        self._scratch: Path | None = None
        self._started: list[tuple[str, Callable[[], None]]] = []

    # ---------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start every part in order; on failure stop what started and raise."""
        create_run_dir(self.run_dir)
        write_json(self.run_dir / SCENARIO_FILE, _jsonable(dict(self.scenario.raw)))
        with contextlib.suppress(OSError):
            clean_stale(self.run_dir.parent)
        user = server_user()
        self._scratch = create_scratch(self.run_dir, user)
        self._step("postgres", self._start_postgres)
        if self.scenario.pgbouncer.enabled:
            self._step("pgbouncer", self._start_pgbouncer)
        if self.scenario.rds_proxy.enabled:
            self._step("RDS Proxy stand-in", self._start_rds_proxy)
        if self.with_schema:
            self._step("workload schema", self._install_schema)
        if self.with_emulator and self.scenario.functions:
            if any(a.action == "network_latency" for a in self.scenario.timeline):
                self._step("database proxy", self._start_db_proxies)
            self._step("Lambda emulator", self._start_emulator)
        write_private_json(self.run_dir / STACK_FILE, self.info())
        log.info("stack %s ready in %s", self.scenario.name, self.run_dir)

    def _step(self, name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except ConnstormError:
            raise
        except Exception as exc:
            raise StackError(f"{name} failed to start: {str(exc).strip()}"
                             + self._log_hint(name)) from exc

    def _log_hint(self, name: str) -> str:
        logs = {"postgres": POSTGRES_LOG, "pgbouncer": PGBOUNCER_LOG,
                "Lambda emulator": EMULATOR_LOG}
        if name not in logs:
            return ""
        path = self.run_dir / logs[name]
        tail = log_tail(path, 15)
        return f"; last lines of {path}:\n{tail}" if tail else ""

    def _start_postgres(self) -> None:
        config = self.scenario.postgres
        if config.url is not None:
            external = ExternalPostgres(config, self.run_dir)
            self.postgres = external
            external.start()
            self._started.append(("postgres", external.stop))
            return
        postgres_class: Any = PostgresServer
        if config.backend == "docker":
            from connstorm.local_stack.containers import PostgresContainer

            postgres_class = PostgresContainer
        server = postgres_class(config, self.run_dir, scratch_dir=self._scratch,
                                source=self.scenario.source)
        self.postgres = server
        self._started.append(("postgres", server.stop))
        server.start()

    def _start_pgbouncer(self) -> None:
        assert self.postgres is not None
        pgbouncer_class: Any = PgBouncerServer
        if self.scenario.postgres.backend == "docker":
            from connstorm.local_stack.containers import PgBouncerContainer

            pgbouncer_class = PgBouncerContainer
        server = pgbouncer_class(self.scenario.pgbouncer, self.postgres, self.run_dir,
                                 scratch_dir=self._scratch)
        self.pgbouncer = server
        self._started.append(("pgbouncer", server.stop))
        server.start()

    def _start_rds_proxy(self) -> None:
        """The RDS Proxy stand-in before the database, with the app role as its secret."""
        from connstorm.local_stack.aws_credentials import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
        from connstorm.local_stack.rds_proxy.proxy import RdsProxy

        pg = self.postgres
        assert pg is not None
        proxy = RdsProxy(self.scenario.rds_proxy, upstream_host=pg.host, upstream_port=pg.port,
                         passwords={pg.app_user: pg.app_password or ""},
                         iam_keys={DUMMY_ACCESS_KEY: DUMMY_SECRET_KEY},
                         region=self.scenario.lambda_.region)
        self.rds_proxy = proxy
        # Its log (pins in RDS Proxy's words, auth failures) as RDS Proxy's CloudWatch log:
        # in the run folder, not on the terminal.
        (self.run_dir / LOGS_DIR).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.run_dir / RDS_PROXY_LOG, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        proxy_log = logging.getLogger("connstorm.local_stack.rds_proxy")
        level, propagate = proxy_log.level, proxy_log.propagate

        def stop() -> None:
            try:
                proxy.stop()
            finally:
                proxy_log.removeHandler(handler)
                proxy_log.setLevel(level)
                proxy_log.propagate = propagate
                handler.close()

        self._started.append(("RDS Proxy stand-in", stop))
        proxy_log.addHandler(handler)
        proxy_log.setLevel(logging.INFO)
        proxy_log.propagate = False
        proxy.start()

    def _install_schema(self) -> None:
        from connstorm.handlers.workload import schema

        assert self.postgres is not None
        schema.install(self.postgres.app_dsn, self.scenario.postgres.seed_products)

    def _start_db_proxies(self) -> None:
        """A :class:`TcpProxy` in front of each database server functions connect to."""
        for fn in self.scenario.functions:
            target: Any = {"direct": self.postgres, "pgbouncer": self.pgbouncer,
                           "rds_proxy": self.rds_proxy}.get(fn.database)
            if target is None:
                continue
            key = f"{target.host}:{target.port}"
            if key not in self.db_proxies:
                proxy = TcpProxy(target.host, target.port)
                self._started.append(("database proxy", proxy.stop))
                proxy.start()
                self.db_proxies[key] = proxy

    def _start_emulator(self) -> None:
        from connstorm.local_stack.lambda_.process import EmulatorProcess

        env = {fn.name: self.function_env(fn) for fn in self.scenario.functions}
        direct = {name: dict(fn_env) for name, fn_env in env.items()}
        self._start_credential_stand_ins(env)
        emulator = EmulatorProcess(self.scenario, self.run_dir, env,
                                   vanished_lingers=self._vanished_lingers(direct, env))
        self.emulator = emulator
        self._started.append(("Lambda emulator", emulator.stop))
        emulator.start()

    def _vanished_lingers(self, *envs: Mapping[str, Mapping[str, str]]
                          ) -> dict[str, float | None]:
        """How long each server a function reaches keeps a vanished client (``host:port``).

        Computed from the servers' own settings (:mod:`.keepalive`); the address a
        function's handler dials (``DB_HOST``/``DB_PORT``, also a latency proxy's or
        the IAM auth proxy's in front) gets the linger of the server behind it.
        Skipped, with a warning, when ``[lambda] vanished_linger_s`` decides anyway
        or a server cannot tell (its connections then close at once).
        """
        from connstorm.local_stack import keepalive

        if self.scenario.lambda_.vanished_linger_s is not None:
            return {}
        by_path: dict[str, float | None] = {}
        servers: dict[str, Any] = {"direct": self.postgres, "pgbouncer": self.pgbouncer,
                                   "rds_proxy": self.rds_proxy}
        lingers: dict[str, float | None] = {}
        for path, server in servers.items():
            if server is None:
                continue
            try:
                if path == "direct":
                    by_path[path] = keepalive.postgres_linger_s(server.admin_dsn)
                elif path == "pgbouncer":
                    by_path[path] = keepalive.pgbouncer_linger_s(
                        keepalive.pgbouncer_config(server.console()))
                else:
                    by_path[path] = float(self.scenario.rds_proxy.idle_client_timeout_s)
            except Exception as exc:  # a server that cannot tell: no linger, say so
                log.warning("%s: cannot read its keepalive settings (%s); vanished "
                            "environments' connections to it close at once", path, exc)
                continue
            lingers[keepalive.endpoint(server.host, server.port)] = by_path[path]
        for fn in self.scenario.functions:
            if fn.database not in by_path:
                continue
            for env in envs:
                fn_env = env.get(fn.name, {})
                if "DB_HOST" in fn_env and "DB_PORT" in fn_env:
                    lingers[keepalive.endpoint(fn_env["DB_HOST"], fn_env["DB_PORT"])] = \
                        by_path[fn.database]
        return lingers

    def _start_credential_stand_ins(self, env: dict[str, dict[str, str]]) -> None:
        """Local Secrets Manager and IAM token verifier for the patterns that need them.

        Started only when a function uses ``secrets_cached`` or ``iam_token``; each
        rewrites that function's environment so it can log in only through the
        stand-in (its ``DB_PASSWORD`` is removed), as on AWS.
        """
        from connstorm.local_stack.aws_credentials import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
        from connstorm.local_stack.iam_auth_proxy import IamAuthProxy, iam_token_env
        from connstorm.local_stack.secrets_manager import SecretsManagerServer, secrets_cached_env

        pg = self.postgres
        assert pg is not None
        region = self.scenario.lambda_.region
        secrets: SecretsManagerServer | None = None
        proxies: dict[tuple[str, str], IamAuthProxy] = {}
        for fn in self.scenario.functions:
            fn_env = env[fn.name]
            if fn.pattern == "secrets_cached":
                if secrets is None:
                    secrets = SecretsManagerServer(
                        username=pg.app_user, password=pg.app_password or "",
                        host=fn_env.get("DB_HOST", pg.host),
                        port=int(fn_env.get("DB_PORT", pg.port)),
                        dbname=pg.app_dbname, region=region)
                    self._started.append(("Secrets Manager", secrets.stop))
                    secrets.start()
                env[fn.name] = secrets_cached_env(fn_env, secrets)
            elif (fn.pattern == "iam_token" and fn.database == "rds_proxy"
                  and self.scenario.rds_proxy.iam_auth == "required"):
                # The stand-in verifies the tokens itself, as RDS Proxy with IAMAuth REQUIRED.
                env[fn.name] = iam_token_env(fn_env, self.rds_proxy)
            elif fn.pattern == "iam_token" and "DB_HOST" in fn_env:
                target = (fn_env["DB_HOST"], fn_env["DB_PORT"])
                if target not in proxies:
                    proxy = IamAuthProxy(upstream_host=target[0], upstream_port=int(target[1]),
                                         upstream_password=pg.app_password or "",
                                         keys={DUMMY_ACCESS_KEY: DUMMY_SECRET_KEY},
                                         region=region)
                    self._started.append(("IAM auth proxy", proxy.stop))
                    proxy.start()
                    proxies[target] = proxy
                env[fn.name] = iam_token_env(fn_env, proxies[target])

    def stop(self) -> None:
        """Stop everything that started, in reverse order; delete the scratch folder.

        Keeps going when one part fails to stop, and raises the first error at the end.
        """
        first: BaseException | None = None
        while self._started:
            name, stop = self._started.pop()
            try:
                stop()
            except BaseException as exc:
                log.error("stopping %s failed: %s", name, exc)
                first = first or exc
        if self._scratch is not None:
            remove_scratch(self.run_dir, self._scratch)
            self._scratch = None
        if first is not None:
            raise first


    # ---------------------------------------------------------- what it offers

    def function_env(self, fn: FunctionConfig) -> dict[str, str]:
        """The environment a function's handlers get, as on AWS: DB_* by its path."""
        env: dict[str, str] = {}
        target: Any = None
        if fn.database == "direct":
            target = self.postgres
        elif fn.database == "pgbouncer":
            target = self.pgbouncer
            if target is None:
                raise StackError(f"function {fn.name} uses PgBouncer, which is not running")
        elif fn.database == "rds_proxy":
            target = self.rds_proxy
            if target is None:
                raise StackError(f"function {fn.name} uses the RDS Proxy stand-in, "
                                 "which is not running")
        if target is not None:
            assert self.postgres is not None
            target = self.db_proxies.get(f"{target.host}:{target.port}", target)
            env.update({
                "DB_HOST": target.host, "DB_PORT": str(target.port),
                "DB_NAME": self.postgres.app_dbname, "DB_USER": self.postgres.app_user,
                "DB_PASSWORD": self.postgres.app_password or "",
            })
        env.update({"DB_CONNECT_TIMEOUT_S": DB_CONNECT_TIMEOUT_S, "DB_SSLMODE": DB_SSLMODE})
        env.update(fn.env)
        return env

    def info(self) -> dict[str, Any]:
        """The content of ``stack.json`` (passwords in clear: keep it private)."""
        pg, pb, emu, rp = self.postgres, self.pgbouncer, self.emulator, self.rds_proxy
        cfg = self.scenario
        return {
            "scenario": cfg.name,
            "run_dir": str(self.run_dir),
            "pid": os.getpid(),
            "postgres_dsn": pg.app_dsn if pg is not None else None,
            "postgres_admin_dsn": pg.admin_dsn if pg is not None else None,
            "pgbouncer_dsn": pb.dsn if pb is not None else None,
            "pgbouncer_admin_dsn": pb.admin_dsn if pb is not None else None,
            "rds_proxy_dsn": (rp.dsn(pg.app_user, pg.app_password, pg.app_dbname)
                              if rp is not None and pg is not None else None),
            "rds_proxy_metrics_url": rp.metrics_url if rp is not None else None,
            "rds_proxy_log": (str(self.run_dir / RDS_PROXY_LOG)
                              if rp is not None else None),
            "rds_proxy_max_connections": (rp.metrics().get("MaxDatabaseConnectionsAllowed")
                                          if rp is not None else None),
            "api_url": emu.api_url if emu is not None else None,
            "invoke_url": emu.invoke_url if emu is not None else None,
            "stats_url": emu.stats_url if emu is not None else None,
            "max_connections": cfg.postgres.max_connections,
            "superuser_reserved_connections": cfg.postgres.superuser_reserved_connections,
            "pgbouncer_version": getattr(pb, "version", None) if pb is not None else None,
            "pool_mode": cfg.pgbouncer.pool_mode if pb is not None else None,
            "default_pool_size": cfg.pgbouncer.default_pool_size if pb is not None else None,
            "postgres_log": str(pg.log_path) if pg is not None and pg.log_path else None,
            "pgbouncer_log": str(pb.log_path) if pb is not None else None,
            "db_proxies": {key: f"{p.host}:{p.port}" for key, p in self.db_proxies.items()},
        }

    def check_alive(self) -> None:
        """Raise StackError (with the log tail) if a server of the stack has died."""
        for name, server in (("postgres", self.postgres), ("pgbouncer", self.pgbouncer),
                             ("RDS Proxy stand-in", self.rds_proxy)):
            if server is not None and not server.running():
                raise StackError(f"{name} died" + self._log_hint(name))
        emu = self.emulator
        proc = getattr(emu, "proc", None)
        if proc is not None and proc.poll() is not None:
            raise StackError(f"Lambda emulator died (status {proc.returncode})"
                             + self._log_hint("Lambda emulator"))
