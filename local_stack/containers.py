"""The docker backend of the local stack: PostgreSQL and PgBouncer as containers.

:class:`PostgresContainer` and :class:`PgBouncerContainer` offer the same
properties and lifecycle as :class:`~connstorm.local_stack.postgres.PostgresServer` and
:class:`~connstorm.local_stack.pgbouncer.PgBouncerServer` (``host``, ``port``,
``admin_dsn``, ``app_dsn``/``dsn``, ``role_secret``, ``running``, ``log_path``),
so :class:`~connstorm.local_stack.stack.Stack` picks them for ``[postgres] backend = "docker"``.
They run the connstorm image (``Dockerfile``) through testcontainers, with
``python -m connstorm.cli.container_entry`` rendering the configuration with the
native stack's functions.

Containers use host networking and listen on 127.0.0.1 on a free port: the same
as the native servers, and the only networking some engines allow. Passwords
are generated here and handed over in the container's environment.

testcontainers' reaper (Ryuk) needs an image from a registry; where there is
none, set ``TESTCONTAINERS_RYUK_DISABLED=true``. Cleanup does not depend on it:
``stop()`` removes the container, and every container carries the pid of the
process that made it, so the next start removes those of dead processes
(:func:`remove_orphans`).

>>> with PostgresContainer(PostgresConfig(max_connections=10), Path("runs/x")) as pg:
...     psycopg.connect(pg.app_dsn).execute("select 1")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connstorm.errors import EnvironmentProblemError, StackError
from connstorm.local_stack.credentials import make_dsn, new_password
from connstorm.local_stack.pgbouncer import ADMIN_DB, ADMIN_USER, Upstream
from connstorm.local_stack.ports import HOST, claim_port
from connstorm.local_stack.postgres import APP_DB, APP_USER, SUPERUSER
from connstorm.local_stack.resource import Resource
from connstorm.run_folder import PGBOUNCER_LOG, POSTGRES_LOG
from connstorm.scenario import PgBouncerConfig, PostgresConfig

log = logging.getLogger(__name__)

#: The image both containers run; build it with ``docker build -t connstorm:latest .``.
DEFAULT_IMAGE = "connstorm:latest"
#: Engine calls can be slow: with vfs storage, creating or removing a container
#: copies or deletes the whole image (seconds to minutes on a busy machine).
ENGINE_TIMEOUT_S = 600
OWNER_LABEL = "io.connstorm.owner-pid"
ROLE_LABEL = "io.connstorm.role"


def image_name() -> str:
    """``$CONNSTORM_IMAGE``, else ``connstorm:latest``."""
    return os.environ.get("CONNSTORM_IMAGE") or DEFAULT_IMAGE


#: The one line a plain ``pip install connstorm`` gets for the docker backend.
MISSING_EXTRA = ("the docker backend needs the testcontainers and docker packages: "
                 "pip install 'connstorm[docker]'")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An engine error as one short line: docker SDK messages span lines and URLs."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def require_backend_packages() -> None:
    """Raise EnvironmentProblemError naming the extra when its packages are missing.

    They are an optional dependency group (``connstorm[docker]``): the native
    backend, the default, needs neither.
    """
    try:
        import docker  # noqa: F401
        import testcontainers.core.container  # noqa: F401
    except ImportError:
        raise EnvironmentProblemError(MISSING_EXTRA) from None


def docker_client() -> Any:
    """A docker SDK client that has answered a ping; EnvironmentProblemError otherwise."""
    require_backend_packages()
    import docker

    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
        client.ping()
    except Exception as exc:
        raise EnvironmentProblemError(f"no Docker engine answers ({one_line(exc)}); start one, "
                                      "or use [postgres] backend = \"native\"") from None
    return client


def start_reaper() -> None:
    """Start testcontainers' reaper (Ryuk) unless disabled; one line when it cannot.

    Its image comes from a registry, so an engine without one fails here with a
    pull error deep in testcontainers. Cleanup does not depend on the reaper
    (``stop()`` and :func:`remove_orphans` remove containers), so the fix named is
    to switch it off.
    """
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import Reaper

    if testcontainers_config.ryuk_disabled:
        return
    try:
        Reaper.get_instance()
    except Exception as exc:
        with contextlib.suppress(Exception):
            Reaper.delete_instance()
        raise EnvironmentProblemError(
            f"testcontainers' reaper (image {testcontainers_config.ryuk_image}) did not start "
            f"({one_line(exc)}); set TESTCONTAINERS_RYUK_DISABLED=true: connstorm removes "
            "its containers without it") from None


def remove_orphans(client: Any) -> int:
    """Remove connstorm containers whose owning process is gone; returns how many."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        try:
            pid = int(container.labels.get(OWNER_LABEL, "0"))
        except ValueError:
            continue
        if pid > 0 and _alive(pid):
            continue
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _ServiceContainer(Resource):
    """One service of the connstorm image in a container, with readiness and logs."""

    role = ""

    def __init__(self, run_dir: Path, *, port: int | None, startup_timeout_s: float,
                 log: str) -> None:
        self.run_dir = Path(run_dir)
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.run_dir / log
        self._requested_port = port
        self._port: int | None = None
        self._container: Any = None

    @property
    def host(self) -> str:
        """Always 127.0.0.1: host networking, loopback only."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port the service listens on."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._port

    @property
    def container_id(self) -> str | None:
        """The container's id while it exists."""
        wrapped = self._wrapped()
        return str(wrapped.id) if wrapped is not None else None

    def _wrapped(self) -> Any:
        """The docker SDK container, or None when none was created (a half start).

        testcontainers raises "Container is not started" there instead; every
        caller (``stop()``, ``running()``, the logs of a failure) must work then.
        """
        if self._container is None:
            return None
        try:
            return self._container.get_wrapped_container()
        except Exception:
            return None

    def _environment(self) -> dict[str, str]:
        raise NotImplementedError

    def _ready(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Start the container and wait until the service answers (StackError with logs)."""
        client = docker_client()
        from testcontainers.core.container import DockerContainer

        with contextlib.suppress(Exception):
            remove_orphans(client)
        image = image_name()
        try:
            client.images.get(image)
        except Exception:
            raise EnvironmentProblemError(
                f"docker image {image} not found; build it with: docker build -t {image} . "
                "(see docs/containers.md)") from None
        start_reaper()
        self._port = claim_port(self._requested_port)
        env = {"CONNSTORM_LISTEN_ADDR": HOST, **self._environment()}
        container = DockerContainer(image, env=env,
                                    docker_client_kw={"timeout": ENGINE_TIMEOUT_S})
        container.with_command(["python", "-m", "connstorm.cli.container_entry", self.role])
        container.with_kwargs(network_mode="host",
                              labels={OWNER_LABEL: str(os.getpid()), ROLE_LABEL: self.role})
        self._container = container
        try:
            container.start()
        except Exception as exc:
            raise self._failure(f"did not start ({one_line(exc)})") from None
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            try:
                self._ready()
                break
            except Exception as exc:
                if not self.running():
                    raise self._failure(f"exited during startup ({one_line(exc)})") from None
                if time.monotonic() > deadline:
                    raise self._failure(f"did not answer within {self.startup_timeout_s:.0f} s "
                                        f"({one_line(exc)})") from None
                time.sleep(0.2)
        log.info("%s container ready on %s:%d", self.role, self.host, self.port)

    def _failure(self, what: str) -> StackError:
        self._save_logs()
        tail = "\n".join(self._logs().splitlines()[-15:])
        if not tail:
            return StackError(f"{self.role} container {what}")
        return StackError(f"{self.role} container {what}; last lines of {self.log_path}:\n{tail}")

    def _logs(self) -> str:
        wrapped = self._wrapped()
        if wrapped is None:
            return ""
        try:
            return bytes(wrapped.logs(stdout=True, stderr=True)).decode("utf-8", "replace")
        except Exception:
            return ""

    def _save_logs(self) -> None:
        text = self._logs()
        if text:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_text(text, encoding="utf-8")

    def running(self) -> bool:
        """True while the container runs."""
        wrapped = self._wrapped()
        if wrapped is None:
            return False
        try:
            wrapped.reload()
        except Exception:
            return False
        return bool(wrapped.status == "running")

    def stop(self) -> None:
        """Stop the service (its own shutdown signal, then SIGKILL), keep its log, remove it."""
        container = self._container
        if container is None:
            return
        try:
            wrapped = self._wrapped()
            if wrapped is not None:
                with contextlib.suppress(Exception):
                    wrapped.stop(timeout=5)
                self._save_logs()
        finally:
            self._container = None
            with contextlib.suppress(Exception):
                container.stop(force=True, delete_volume=True)


class PostgresContainer(_ServiceContainer):
    """PostgreSQL 15 in a container, as a drop-in for PostgresServer.

    ``scratch_dir`` is accepted for the Stack's sake and not used: the data lives
    in the container and goes with it.
    """

    role = "postgres"

    def __init__(self, config: PostgresConfig, run_dir: Path, *, scratch_dir: Path | None = None,
                 port: int | None = None, source: str = "scenario",
                 startup_timeout_s: float = 90.0) -> None:
        super().__init__(run_dir, port=port, startup_timeout_s=startup_timeout_s,
                         log=POSTGRES_LOG)
        self.config = config
        self.source = source
        self.admin_password = new_password()
        self.app_password = new_password()
        self.app_user = APP_USER
        self.app_dbname = APP_DB

    @property
    def admin_dsn(self) -> str:
        """URL of the superuser ``postgres`` on database ``postgres``."""
        return make_dsn(SUPERUSER, self.admin_password, self.host, self.port, "postgres")

    @property
    def app_dsn(self) -> str:
        """URL of the ordinary application role on its database."""
        return make_dsn(self.app_user, self.app_password, self.host, self.port, self.app_dbname)

    def _environment(self) -> dict[str, str]:
        return {
            "CONNSTORM_PG_PORT": str(self.port),
            "CONNSTORM_POSTGRES_PASSWORD": self.admin_password,
            "CONNSTORM_APP_PASSWORD": self.app_password,
            "CONNSTORM_POSTGRES_SETTINGS_JSON": json.dumps(dict(self.config.settings)),
            "CONNSTORM_SCENARIO_SOURCE": self.source,
        }

    def _ready(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def role_secret(self, role: str) -> str:
        """The role's SCRAM verifier from ``pg_authid`` (for PgBouncer's auth file)."""
        import psycopg

        with psycopg.connect(self.admin_dsn, connect_timeout=5) as conn:
            row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                               (role,)).fetchone()
        if row is None or row[0] is None:
            raise StackError(f"postgres: role {role!r} has no password")
        return str(row[0])


class PgBouncerContainer(_ServiceContainer):
    """PgBouncer 1.18 in a container in front of ``postgres`` (any Upstream)."""

    role = "pgbouncer"

    def __init__(self, config: PgBouncerConfig, postgres: Upstream, run_dir: Path, *,
                 scratch_dir: Path | None = None, port: int | None = None,
                 startup_timeout_s: float = 60.0) -> None:
        super().__init__(run_dir, port=port, startup_timeout_s=startup_timeout_s,
                         log=PGBOUNCER_LOG)
        self.config = config
        self.postgres = postgres
        self.admin_user = ADMIN_USER
        self.admin_password = new_password()

    @property
    def dsn(self) -> str:
        """URL of the application role through the pooler."""
        return make_dsn(self.postgres.app_user, self.postgres.app_password, self.host,
                        self.port, self.postgres.app_dbname)

    @property
    def admin_dsn(self) -> str:
        """URL of the admin console (use ``prepare_threshold=None``)."""
        return make_dsn(self.admin_user, self.admin_password, self.host, self.port, ADMIN_DB)

    def console(self) -> Any:
        """A new autocommit connection to the admin console (``SHOW POOLS``...)."""
        import psycopg

        return psycopg.connect(self.admin_dsn, autocommit=True, prepare_threshold=None,
                               connect_timeout=5)

    def _environment(self) -> dict[str, str]:
        return {
            "CONNSTORM_PG_HOST": self.postgres.host,
            "CONNSTORM_PG_PORT": str(self.postgres.port),
            "CONNSTORM_PGBOUNCER_PORT": str(self.port),
            "CONNSTORM_PGBOUNCER_ADMIN_PASSWORD": self.admin_password,
            # A SCRAM verifier, not a password: PgBouncer logs in with the client's own.
            "CONNSTORM_APP_SECRET": self.postgres.role_secret(self.postgres.app_user),
            "CONNSTORM_PGBOUNCER_SETTINGS_JSON": json.dumps(_settings(self.config.settings)),
        }

    def _ready(self) -> None:
        with self.console() as conn:
            conn.execute("SHOW VERSION")


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in settings.items()}
