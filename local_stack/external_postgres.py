"""An existing PostgreSQL server given by URL (``[postgres] url``), used in place
of a private cluster: a shared test server, a container, an RDS instance
reached through a tunnel.

Connecting as a superuser, it makes sure the application role ``app`` and its
database exist (creating them with a generated password when missing). A role
``app`` that connstorm did not create (no connstorm comment) is left alone and
the URL is used as it is; so is everything when the URL's user is no superuser.
Nothing is started or stopped: the server belongs to someone else.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from connstorm.errors import StackError
from connstorm.local_stack.credentials import make_dsn, mask_dsn, new_password, scram_verifier
from connstorm.local_stack.postgres import APP_DB, APP_ROLE_COMMENT, APP_USER
from connstorm.local_stack.resource import Resource
from connstorm.scenario import PostgresConfig

log = logging.getLogger(__name__)


class ExternalPostgres(Resource):
    """The server at ``config.url``, with the same properties as PostgresServer."""

    def __init__(self, config: PostgresConfig, run_dir: Path | None = None, *,
                 connect_timeout_s: float = 10.0) -> None:
        if config.url is None:
            raise ValueError("ExternalPostgres needs [postgres] url")
        self.config = config
        self.run_dir = run_dir
        self.connect_timeout_s = connect_timeout_s
        self.admin_dsn = config.url
        params = conninfo_to_dict(config.url)
        self.host = str(params.get("host") or "127.0.0.1")
        self.port = int(params.get("port") or 5432)
        self.admin_user = str(params.get("user") or "postgres")
        self._admin_password = params.get("password")
        self.app_user = self.admin_user
        self.app_password: str | None = (str(self._admin_password)
                                         if self._admin_password is not None else None)
        self.app_dbname = str(params.get("dbname") or self.admin_user)
        self.superuser = False
        self.log_path: Path | None = None

    @property
    def app_dsn(self) -> str:
        """URL of the application role (the given URL when no role was made)."""
        if self.app_user == self.admin_user and self.app_dbname == self._admin_db():
            return self.admin_dsn
        return make_dsn(self.app_user, self.app_password, self.host, self.port, self.app_dbname)

    def _admin_db(self) -> str:
        return str(conninfo_to_dict(self.admin_dsn).get("dbname") or self.admin_user)

    def start(self) -> None:
        """Connect, and prepare the application role and database when allowed."""
        try:
            conn = psycopg.connect(self.admin_dsn, autocommit=True,
                                   connect_timeout=int(self.connect_timeout_s))
        except psycopg.Error as exc:
            raise StackError(f"postgres at {mask_dsn(self.admin_dsn)}: cannot connect: "
                             f"{str(exc).strip()}") from None
        with conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                               ).fetchone()
            self.superuser = bool(row and row[0])
            if not self.superuser:
                log.info("not a superuser at %s: using the URL as it is",
                         mask_dsn(self.admin_dsn))
                return
            role = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles "
                                "WHERE rolname = %s", (APP_USER,)).fetchone()
            password = new_password()
            verifier = sql.Literal(scram_verifier(password))
            if role is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                    sql.Identifier(APP_USER), verifier))
                conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                    sql.Identifier(APP_USER), sql.Literal(APP_ROLE_COMMENT)))
            elif role[0] == APP_ROLE_COMMENT:
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(APP_USER), verifier))
            else:
                log.warning("role %s exists and was not made by connstorm: using the URL "
                            "as it is", APP_USER)
                return
            has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (APP_DB,)).fetchone()
            if has_db is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(APP_DB), sql.Identifier(APP_USER)))
        self.app_user, self.app_password, self.app_dbname = APP_USER, password, APP_DB

    def role_secret(self, role: str) -> str:
        """The role's SCRAM verifier (superuser), else its clear password from the URL."""
        if self.superuser:
            with psycopg.connect(self.admin_dsn, connect_timeout=5) as conn:
                row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                   (role,)).fetchone()
            if row is not None and row[0] is not None:
                return str(row[0])
        if role == self.app_user and self.app_password is not None:
            return self.app_password
        raise StackError(f"postgres at {mask_dsn(self.admin_dsn)}: no password known for "
                         f"role {role!r}")

    def running(self) -> bool:
        """Always True: someone else runs this server."""
        return True

    def stop(self) -> None:
        """Nothing to stop."""

