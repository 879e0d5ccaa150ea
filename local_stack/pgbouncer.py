"""PgBouncer in front of the stack's PostgreSQL: the local stand-in for RDS Proxy.

:func:`render_ini` and :func:`render_auth_file` are pure, so the container stack
can reuse them; :class:`PgBouncerServer` runs a real ``pgbouncer`` with them on
127.0.0.1 and a free port, as an unprivileged user when we are root.

Authentication is ``scram-sha-256`` end to end: the auth file holds the
application role's SCRAM verifier copied from ``pg_authid``, which lets
PgBouncer log in to PostgreSQL with the client's own SCRAM exchange, and a
verifier for the console's admin user ``pgbouncer_admin``. No clear-text
password is written anywhere.

>>> with PostgresServer(pg_config, run_dir) as pg, PgBouncerServer(pb_config, pg, run_dir) as pb:
...     psycopg.connect(pb.dsn).execute("select 1")
"""

from __future__ import annotations

import logging
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import psycopg

from connstorm.errors import EnvironmentProblemError, StackError
from connstorm.local_stack.credentials import make_dsn, new_password, scram_verifier
from connstorm.local_stack.os_user import chown_tree, server_user
from connstorm.local_stack.pgbouncer_binaries import PgBouncerBinary, resolve
from connstorm.local_stack.ports import HOST, PORT_ATTEMPTS, claim_port, lost_port_race
from connstorm.local_stack.process import ManagedProcess, start_in_keeper
from connstorm.local_stack.resource import Resource
from connstorm.local_stack.scratch import create_scratch, remove_scratch
from connstorm.run_folder import PGBOUNCER_LOG, PGBOUNCER_SCRATCH_LINK
from connstorm.scenario import PgBouncerConfig, SettingValue

log = logging.getLogger(__name__)

ADMIN_USER = "pgbouncer_admin"
ADMIN_DB = "pgbouncer"
INSTALL_HINT = "pgbouncer not found; install it with: apt-get install -y pgbouncer"
#: Startup parameters common drivers send that PgBouncer would otherwise refuse.
DEFAULT_IGNORED_STARTUP_PARAMETERS = "extra_float_digits"


class Upstream(Protocol):
    """What PgBouncer needs of the database behind it (PostgresServer, ExternalPostgres)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...

    app_user: str
    app_dbname: str

    @property
    def app_password(self) -> str | None: ...

    def role_secret(self, role: str) -> str: ...


def find_pgbouncer() -> str:
    """Path of the pgbouncer program (Debian puts it in /usr/sbin, often off PATH)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if found is None:
        raise EnvironmentProblemError(INSTALL_HINT)
    return found


def runnable_copy(binary: PgBouncerBinary, folder: Path, user: str | None) -> str:
    """The program as the server user can run it.

    A PgBouncer built into connstorm's cache lives under the caller's home
    (``/root`` is mode 0700), where the unprivileged server user cannot reach
    it: that one is copied into the server's private folder (about 1 MB).
    """
    if user is None or binary.installed_by_system:
        return str(binary.path)
    copy = folder / "pgbouncer"
    shutil.copy2(binary.path, copy)
    copy.chmod(0o755)
    return str(copy)


def _ini_value(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def render_ini(settings: Mapping[str, SettingValue], *, listen_port: int, db_host: str,
               db_port: int, db_name: str, auth_file: str, admin_user: str = ADMIN_USER,
               listen_addr: str = HOST, pidfile: str | None = None) -> str:
    """The text of ``pgbouncer.ini``: managed settings first, then ``settings``.

    ``db_name`` is the one database clients may use, or ``*`` for any (a pool
    per database); PgBouncer logs in with the client's own user and SCRAM
    credentials.
    """
    managed: dict[str, SettingValue] = {
        "listen_addr": listen_addr,
        "listen_port": listen_port,
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": auth_file,
        "admin_users": admin_user,
    }
    if pidfile is not None:
        managed["pidfile"] = pidfile
    merged: dict[str, SettingValue] = {
        **managed, "ignore_startup_parameters": DEFAULT_IGNORED_STARTUP_PARAMETERS,
        **settings,
    }
    lines = [
        ";; written by connstorm: managed settings, then the scenario's",
        "[databases]",
        # "*": PgBouncer's fallback entry, a pool per database the clients name.
        f"{db_name} = host={db_host} port={db_port}"
        + ("" if db_name == "*" else f" dbname={db_name}"),
        "",
        "[pgbouncer]",
    ]
    lines += [f"{key} = {_ini_value(value)}" for key, value in merged.items()]
    return "\n".join(lines) + "\n"


def render_auth_file(secrets_by_user: Mapping[str, str]) -> str:
    """The auth file: one ``"user" "secret"`` line per user (SCRAM verifier or password)."""

    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return "".join(f"{quoted(u)} {quoted(s)}\n" for u, s in secrets_by_user.items())


def immediate_shutdown_signal(version: str | None) -> signal.Signals:
    """The signal of PgBouncer's immediate shutdown: SIGQUIT since 1.23, SIGTERM before.

    PgBouncer 1.23's changelog: "SIGTERM doesn't cause immediate shutdown of the
    PgBouncer process anymore. It now does a 'super safe shutdown'", and "use
    SIGQUIT" for the old behaviour (https://www.pgbouncer.org/changelog.html,
    "PgBouncer 1.23.x"; signals: https://www.pgbouncer.org/usage.html#signals).
    """
    try:
        major, minor = (int(part) for part in (version or "").split(".")[:2])
    except ValueError:
        return signal.SIGTERM
    return signal.SIGQUIT if (major, minor) >= (1, 23) else signal.SIGTERM


class PgBouncerServer(Resource):
    """A PgBouncer of our own in front of ``postgres``, as a context manager.

    ``scratch_dir`` is the stack's private folder; without one the server makes
    (and deletes) its own inside ``run_dir``. ``db_name`` ``"*"`` serves every
    database of the server, each with a pool of its own (``connstorm drivers``).
    """

    def __init__(self, config: PgBouncerConfig, postgres: Upstream, run_dir: Path, *,
                 scratch_dir: Path | None = None, port: int | None = None,
                 db_name: str | None = None,
                 startup_timeout_s: float = 15.0, stop_timeout_s: float = 5.0) -> None:
        self.config = config
        self.postgres = postgres
        self.run_dir = Path(run_dir)
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._requested_port = port
        self.db_name = db_name or postgres.app_dbname
        self._scratch = scratch_dir
        self._owns_scratch = scratch_dir is None
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self.admin_user = ADMIN_USER
        self.admin_password = new_password()
        self.log_path = self.run_dir / PGBOUNCER_LOG
        #: The program run, found at start from ``[pgbouncer] binary``.
        self.binary: PgBouncerBinary | None = None

    @property
    def version(self) -> str | None:
        """The running PgBouncer's version (``1.18.0``), None before start."""
        return self.binary.version if self.binary is not None else None

    @property
    def host(self) -> str:
        """Always 127.0.0.1."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port PgBouncer listens on."""
        if self._port is None:
            raise RuntimeError("PgBouncerServer not started")
        return self._port

    @property
    def dsn(self) -> str:
        """URL of the application role through the pooler."""
        return make_dsn(self.postgres.app_user, self.postgres.app_password, self.host,
                        self.port, self.postgres.app_dbname)

    @property
    def admin_dsn(self) -> str:
        """URL of the admin console (database ``pgbouncer``); use the simple query
        protocol with it (psycopg: ``prepare_threshold=None``)."""
        return make_dsn(self.admin_user, self.admin_password, self.host, self.port, ADMIN_DB)

    @property
    def process(self) -> ManagedProcess | None:
        """The managed pgbouncer process (None before start)."""
        return self._process

    def console(self) -> psycopg.Connection[tuple[object, ...]]:
        """A new autocommit connection to the admin console (``SHOW POOLS``...)."""
        return psycopg.connect(self.admin_dsn, autocommit=True, prepare_threshold=None,
                               connect_timeout=5)

    def start(self) -> None:
        """Write the ini and auth file, start pgbouncer, wait until the console answers."""
        self.binary = resolve(self.config.binary, announce=lambda line: log.warning("%s", line))
        user = server_user()
        if self._scratch is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._scratch = create_scratch(self.run_dir, user, PGBOUNCER_SCRATCH_LINK)
        folder = self._scratch / "pgbouncer"
        folder.mkdir(mode=0o700)
        program = runnable_copy(self.binary, folder, user)
        auth_file, ini = folder / "userlist.txt", folder / "pgbouncer.ini"
        app_secret = self.postgres.role_secret(self.postgres.app_user)
        auth_file.write_text(render_auth_file({
            self.postgres.app_user: app_secret,
            self.admin_user: scram_verifier(self.admin_password),
        }), encoding="utf-8")
        auth_file.chmod(0o600)

        def answers() -> bool:
            with self.console() as conn:
                conn.execute("SHOW VERSION")
            return True

        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._port = claim_port(self._requested_port)
            ini.write_text(render_ini(
                self.config.settings, listen_port=self._port, db_host=self.postgres.host,
                db_port=self.postgres.port, db_name=self.db_name,
                auth_file=str(auth_file), admin_user=self.admin_user), encoding="utf-8")
            chown_tree(folder, user)
            self._process = ManagedProcess("pgbouncer", [program, str(ini)],
                                           log_path=self.log_path, run_as=user,
                                           cwd=self._scratch)
            self._process.start()
            try:
                self._process.wait_ready(answers, self.startup_timeout_s)
                break
            except StackError:
                if not lost_port_race(self._process, self._requested_port, attempt):
                    raise
        log.info("pgbouncer %s ready on %s:%d", self.binary.version, self.host, self._port)

    def running(self) -> bool:
        """True while pgbouncer is alive."""
        return self._process is not None and self._process.running()

    def restart(self) -> None:
        """SIGKILL pgbouncer and start it again on the same port with the same files.

        What a crashed or replaced pooler does to its clients: every client and
        server connection drops at once, and new ones are accepted once it is back.
        """
        proc = self._process
        if proc is None:
            raise RuntimeError("PgBouncerServer not started")
        proc.kill()
        proc.stop()
        fresh = ManagedProcess(proc.name, proc.argv, log_path=self.log_path, run_as=proc.run_as,
                               cwd=proc.cwd)
        self._process = fresh
        start_in_keeper(fresh)  # not the caller's thread: see start_in_keeper

        def answers() -> bool:
            with self.console() as conn:
                conn.execute("SHOW VERSION")
            return True

        fresh.wait_ready(answers, self.startup_timeout_s)
        log.info("pgbouncer restarted on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Immediate shutdown (:func:`immediate_shutdown_signal`); SIGKILL if it lingers.

        The stack stops its functions first, so no client is left to be polite to; a
        safe shutdown (SIGINT) only waited for PgBouncer's next maintenance pass,
        up to a third of a second at the end of every run (measured 0.12-0.35 s).
        """
        try:
            if self._process is not None:
                self._process.stop(immediate_shutdown_signal(self.version), self.stop_timeout_s)
        finally:
            if self._scratch is not None:
                if self._owns_scratch:
                    remove_scratch(self.run_dir, self._scratch, PGBOUNCER_SCRATCH_LINK)
                    self._scratch = None
                else:
                    shutil.rmtree(self._scratch / "pgbouncer", ignore_errors=True)

