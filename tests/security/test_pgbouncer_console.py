"""PgBouncer's admin console refuses the application role, whatever it asks.

The console (``dbname=pgbouncer``) can PAUSE, KILL and SHUTDOWN the pooler: a
handler's credentials must not reach it. Real PostgreSQL and PgBouncer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connstorm.local_stack.credentials import make_dsn
from connstorm.local_stack.pgbouncer import ADMIN_DB

pytestmark = pytest.mark.slow


def test_pgbouncer_console_refuses_the_app_role(postgres_factory: Callable[..., Any],
                                                pgbouncer_factory: Callable[..., Any]) -> None:
    postgres = postgres_factory()
    pgbouncer = pgbouncer_factory(postgres)
    # GIVEN the app role's own, right password, through the pooler it works ...
    with psycopg.connect(pgbouncer.dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (postgres.app_user,)
    # ... but the admin console refuses it, for admin and for stats commands alike
    console_as_app = make_dsn(postgres.app_user, postgres.app_password, pgbouncer.host,
                              pgbouncer.port, ADMIN_DB)
    with pytest.raises(psycopg.OperationalError, match="FATAL:  not allowed"):
        psycopg.connect(console_as_app, autocommit=True, prepare_threshold=None,
                        connect_timeout=5)
    # AND the console's own user still gets in (the refusal is about the role)
    with pgbouncer.console() as conn:
        assert conn.execute("SHOW VERSION").fetchone()
