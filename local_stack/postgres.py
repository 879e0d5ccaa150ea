"""A private PostgreSQL cluster per stack (an existing server: :mod:`.external_postgres`).

:class:`PostgresServer` starts a real ``postgres`` from Debian's binaries (found
off ``PATH``) with exactly the settings a scenario asks for, on 127.0.0.1 and a
free port, with ``scram-sha-256`` and generated passwords: a superuser
``postgres`` and an ordinary application role ``app`` owning database ``app``.
As root it runs the server as an unprivileged user (PostgreSQL refuses root).

``initdb`` costs about a second and ``connstorm repro`` starts several stacks in
a row, so one initdb'd template cluster per PostgreSQL version is cached
(``~/.cache/connstorm/pg<version>-template-v<format>``) and copied. The template's
superuser password is replaced on every start, so no two stacks share one.

>>> from connstorm.scenario import PostgresConfig
>>> with PostgresServer(PostgresConfig(max_connections=10), Path("runs/x")) as pg:
...     psycopg.connect(pg.app_dsn).execute("select 1")
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from connstorm.errors import StackError
from connstorm.local_stack.cache import cache_root
from connstorm.local_stack.credentials import make_dsn, new_password, scram_verifier
from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.local_stack.os_user import TMPFS, chown_tree, server_user, shared_scratch_root
from connstorm.local_stack.ports import HOST, PORT_ATTEMPTS, claim_port, lost_port_race
from connstorm.local_stack.postgres_binaries import (
    INSTALL_HINT,
    PostgresBinaries,
    find_binaries,
    known_settings,
    validate_settings,
)
from connstorm.local_stack.process import ManagedProcess, descendants, start_in_keeper
from connstorm.local_stack.resource import Resource
from connstorm.local_stack.scratch import create_scratch, remove_scratch
from connstorm.run_folder import POSTGRES_LOG, POSTGRES_SCRATCH_LINK
from connstorm.scenario import PostgresConfig, SettingValue
from connstorm.signals import held_while_forking

__all__ = [
    "APP_DB", "APP_ROLE_COMMENT", "APP_USER", "INSTALL_HINT", "SUPERUSER", "PostgresBinaries",
    "PostgresServer", "cache_root", "find_binaries", "known_settings", "render_conf",
    "template_cluster", "validate_settings",
]

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
APP_USER = "app"
APP_DB = "app"
APP_ROLE_COMMENT = "connstorm application role"


def render_conf(settings: Mapping[str, SettingValue]) -> str:
    """postgresql.conf lines for ``settings``, values quoted as PostgreSQL wants."""
    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, int | float):
            text = str(value)
        else:
            text = "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- template cluster

#: Bumped whenever what the template holds changes, so old caches are not used.
TEMPLATE_FORMAT = 2
_TEMPLATE_SQL = (
    f"CREATE ROLE {APP_USER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE\n"
    f"COMMENT ON ROLE {APP_USER} IS '{APP_ROLE_COMMENT}'\n"
    f"CREATE DATABASE {APP_DB} OWNER {APP_USER}\n"
)


def _run_as(user: str | None, argv: list[str], *, cwd: Path, what: str,
            stdin: str | None = None) -> None:
    if user is not None:
        argv = ["/usr/sbin/runuser", "-u", user, "--", *argv]
    with held_while_forking():
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                                cwd=cwd, input=stdin, preexec_fn=preexec_death_signal)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise StackError(f"{what} failed (status {result.returncode}):\n{tail}")



@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def template_cluster(binaries: PostgresBinaries, user: str | None) -> tuple[Path, str]:
    """The cached initdb'd cluster for this version and its superuser's password.

    Built once (under a lock, so parallel starts wait rather than race) in a
    folder the server user can reach, then kept in the cache folder.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"pg{binaries.version}-template-v{TEMPLATE_FORMAT}"
    target, pwfile = root / name, root / f"{name}.password"
    with _locked(root / ".lock"):
        if (target / "PG_VERSION").is_file() and pwfile.is_file():
            return target, pwfile.read_text(encoding="utf-8").strip()
        password = new_password()
        work = shared_scratch_root() / f"initdb-{secrets.token_hex(6)}"
        work.mkdir(mode=0o700)
        try:
            (work / "pwfile").write_text(password + "\n", encoding="utf-8")
            chown_tree(work, user)
            argv = [binaries.path("initdb"), "-D", str(work / "data"), "--auth=scram-sha-256",
                    f"--username={SUPERUSER}", f"--pwfile={work / 'pwfile'}",
                    "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
                    # 1 MB WAL segments instead of 16: every stack copies the template.
                    "--wal-segsize=1"]
            _run_as(user, argv, cwd=work, what="initdb")
            # The application role and database are made here once, in single-user
            # mode: CREATE DATABASE per stack would cost more than the whole copy.
            _run_as(user, [binaries.path("postgres"), "--single", "-D", str(work / "data"),
                           "postgres"], cwd=work, what="postgres --single",
                    stdin=_TEMPLATE_SQL)
            shutil.rmtree(target, ignore_errors=True)
            staging = root / f".template-{secrets.token_hex(4)}"
            shutil.copytree(work / "data", staging, symlinks=True)
            staging.rename(target)
            pwfile.write_text(password + "\n", encoding="utf-8")
            pwfile.chmod(0o600)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("built template cluster %s", target)
        return target, password


# ---------------------------------------------------------------- the server


def _stopped(pid: int) -> bool:
    """True when the process is stopped (state T) by a signal."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


class PostgresServer(Resource):
    """A PostgreSQL cluster of our own, as a context manager.

    ``scratch_dir`` is the stack's private folder for the data; without it the
    server makes (and deletes) its own inside ``run_dir``. ``source`` names the
    scenario file in errors about settings.
    """

    def __init__(self, config: PostgresConfig, run_dir: Path, *, scratch_dir: Path | None = None,
                 port: int | None = None, source: str = "scenario",
                 startup_timeout_s: float = 30.0, stop_timeout_s: float = 10.0) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.source = source
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._requested_port = port
        self._scratch = scratch_dir
        self._owns_scratch = scratch_dir is None
        self._process: ManagedProcess | None = None
        self._port: int | None = None
        self.admin_password = new_password()
        self.app_password = new_password()
        self.app_user = APP_USER
        self.app_dbname = APP_DB
        self.log_path = self.run_dir / POSTGRES_LOG
        self.binaries: PostgresBinaries | None = None
        self._frozen: list[int] = []
        self._watchdog: subprocess.Popen[bytes] | None = None

    # ---------------------------------------------------------- properties

    @property
    def host(self) -> str:
        """Always 127.0.0.1: the cluster is reachable from this machine only."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("PostgresServer not started")
        return self._port

    @property
    def admin_dsn(self) -> str:
        """URL of the superuser ``postgres`` on database ``postgres``."""
        return make_dsn(SUPERUSER, self.admin_password, self.host, self.port, "postgres")

    @property
    def app_dsn(self) -> str:
        """URL of the ordinary application role on its database."""
        return make_dsn(self.app_user, self.app_password, self.host, self.port, self.app_dbname)

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder (inside the scratch folder)."""
        if self._scratch is None:
            raise RuntimeError("PostgresServer not started")
        return self._scratch / "postgres"

    @property
    def process(self) -> ManagedProcess | None:
        """The managed server process (None before start)."""
        return self._process

    # ---------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Copy the template, configure, start, wait until it answers, make the roles."""
        binaries = find_binaries()
        self.binaries = binaries
        validate_settings(self.config.settings, binaries, self.source)
        user = server_user()
        template, template_password = template_cluster(binaries, user)
        if self._scratch is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._scratch = create_scratch(self.run_dir, user, POSTGRES_SCRATCH_LINK)
        data, sockets = self.data_dir, self._scratch / "postgres-socket"
        shutil.copytree(template, data, symlinks=True)
        sockets.mkdir(mode=0o700)
        data.chmod(0o700)
        (data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            f"host all all {HOST}/32 scram-sha-256\n", encoding="utf-8")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

        def answers() -> bool:
            with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER,
                                 password=template_password, dbname="postgres",
                                 connect_timeout=2):
                return True

        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._port = claim_port(self._requested_port)
            managed: dict[str, SettingValue] = {
                "listen_addresses": HOST,
                "port": self._port,
                "unix_socket_directories": str(sockets),
                "password_encryption": "scram-sha-256",
                "logging_collector": False,
            }
            if data.resolve().is_relative_to(TMPFS):
                # Dynamic shared memory as files in the data folder, not /dev/shm
                # segments: a killed server then leaves nothing outside its folder.
                managed["dynamic_shared_memory_type"] = "mmap"
            (data / "postgresql.conf").write_text(
                "# written by connstorm: managed settings, then the scenario's\n"
                + render_conf(managed) + render_conf(self.config.settings), encoding="utf-8")
            chown_tree(data, user)
            chown_tree(sockets, user)
            self._process = ManagedProcess(
                "postgres", [binaries.path("postgres"), "-D", str(data)],
                log_path=self.log_path, run_as=user, cwd=self._scratch)
            self._process.start()
            try:
                self._process.wait_ready(answers, self.startup_timeout_s)
                break
            except StackError:
                if not lost_port_race(self._process, self._requested_port, attempt):
                    raise
        self._set_passwords(template_password)
        log.info("postgres ready on %s:%d (data %s)", self.host, self.port, data)

    def _set_passwords(self, template_password: str) -> None:
        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER,
                             password=template_password, dbname="postgres",
                             autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(scram_verifier(self.admin_password))))
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.app_user), sql.Literal(scram_verifier(self.app_password))))

    def role_secret(self, role: str) -> str:
        """The role's SCRAM verifier from ``pg_authid`` (for PgBouncer's auth file)."""
        with psycopg.connect(self.admin_dsn, connect_timeout=5) as conn:
            row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                               (role,)).fetchone()
        if row is None or row[0] is None:
            raise StackError(f"postgres: role {role!r} has no password")
        return str(row[0])

    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.running()

    # ------------------------------------------------------------------ faults (.faults)

    def restart(self, mode: str = "fast", smart_timeout_s: float = 10.0) -> None:
        """Shut down (``fast``: SIGINT, disconnects clients; ``smart``: SIGTERM, waits
        for them up to ``smart_timeout_s``, then fast) and start again on the same
        port and data, as a failover or a maintenance restart does to clients."""
        proc = self._process
        if proc is None:
            raise RuntimeError("PostgresServer not started")
        self.thaw()
        if mode == "smart" and not proc.terminate(signal.SIGTERM, smart_timeout_s):
            log.info("postgres: smart shutdown still waiting after %g s; fast shutdown",
                     smart_timeout_s)
        if not proc.terminate(signal.SIGINT, self.stop_timeout_s):
            proc.stop(signal.SIGQUIT, 5.0)
        proc.stop()
        fresh = ManagedProcess(proc.name, proc.argv, log_path=self.log_path,
                               run_as=proc.run_as, cwd=proc.cwd)
        self._process = fresh
        start_in_keeper(fresh)  # not the caller's thread: see start_in_keeper

        def answers() -> bool:
            with psycopg.connect(self.admin_dsn, connect_timeout=2):
                return True

        fresh.wait_ready(answers, self.startup_timeout_s)
        log.info("postgres restarted (%s shutdown) on %s:%d", mode, self.host, self.port)

    def freeze(self, watchdog_s: float | None = None) -> list[int]:
        """SIGSTOP the postmaster, then every process under it (its backends).

        The postmaster first, so that it forks no new backend meanwhile. The pids
        are remembered until :meth:`thaw`, which :meth:`stop` and :meth:`restart`
        call first, so a frozen server can always be stopped. With ``watchdog_s``
        a detached ``sh`` continues them after that long even if this process is
        SIGKILLed mid-freeze (:meth:`thaw` ends the watchdog).
        """
        pid = self._process.server_pid if self._process is not None else None
        if pid is None:
            return []
        frozen = [pid]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        for child in descendants(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)
            frozen.append(child)
        self._frozen = frozen
        if watchdog_s is not None:
            runuser = self._process.pid if self._process is not None else None
            pids = " ".join(str(p) for p in [*reversed(frozen), runuser] if p is not None)
            # Detached on purpose (own session, no parent-death signal): it must
            # outlive us. It continues these pids; if we are gone by then, it also
            # gives runuser the parent-death SIGTERM again. The one the kernel sent
            # when we died reached a stopped runuser and was handled as it resumed,
            # before runuser went back to waiting for the server, so it was lost and
            # the server outlived us.
            term = f"kill -0 {os.getpid()} 2>/dev/null || kill -TERM {runuser} 2>/dev/null; " \
                if runuser is not None else ""
            self._watchdog = subprocess.Popen(
                ["/bin/sh", "-c", f"sleep {watchdog_s:.3f}; kill -CONT {pids} 2>/dev/null; "
                                  f"sleep 0.5; kill -CONT {pids} 2>/dev/null; {term}true"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        return frozen

    def thaw(self) -> None:
        """SIGCONT what :meth:`freeze` stopped (backends first, the postmaster last).

        runuser, our direct child, stops itself when it sees its child stop (su's
        job control) and would then never reap the server: it is continued too,
        until nothing of the server is left stopped (a second at most).
        """
        frozen, self._frozen = self._frozen, []
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
        if not frozen:
            return
        runuser = self._process.pid if self._process is not None else None
        pids = [*reversed(frozen), *([runuser] if runuser is not None else [])]
        deadline = time.monotonic() + 1.0
        while True:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            if time.monotonic() > deadline or not any(_stopped(pid) for pid in pids):
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; delete the data."""
        self.thaw()
        try:
            if self._process is not None:
                proc = self._process
                if not proc.terminate(signal.SIGINT, self.stop_timeout_s):
                    log.warning("postgres: fast shutdown took over %g s; immediate shutdown",
                                self.stop_timeout_s)
                    proc.stop(signal.SIGQUIT, 5.0)
                else:
                    proc.stop()
        finally:
            if self._scratch is not None:
                if self._owns_scratch:
                    remove_scratch(self.run_dir, self._scratch, POSTGRES_SCRATCH_LINK)
                    self._scratch = None
                else:
                    shutil.rmtree(self._scratch / "postgres", ignore_errors=True)
                    shutil.rmtree(self._scratch / "postgres-socket", ignore_errors=True)

