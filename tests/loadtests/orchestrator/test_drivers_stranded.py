"""SQLAlchemy's QueuePool(pool_size=1) over psycopg 3: fails behind PgBouncer 1.18, works on 1.24.

Its requests alone used to decide, and they met the broken statement by luck
(2 of 6 runs failed): psycopg prepares each order's ``executemany()`` as
``_pg3_N`` and keeps it past the ``COMMIT``; the next rollback's ``DEALLOCATE
ALL`` runs as a transaction of its own, on whatever server connection PgBouncer
1.18 hands out. A request fails only when another environment prepares the same
``_pg3_N`` on the connection it was left on, or the same one binds it on another.

Why this test is deterministic: the verdict also reads PostgreSQL's log, where
each order's ``_pg3_N`` is still prepared when its ``COMMIT`` ends the
transaction, after which PgBouncer 1.18 may hand that server connection to any
client (:mod:`connstorm.loadtests.orchestrator.driver_statements`). That
depends on no interleaving: every order strands its statement, and each cell's
load is the same seeded sequence of requests, with orders in it, in every run.
"""

from __future__ import annotations

from typing import Any

import pytest

from connstorm.loadtests.orchestrator.drivers import STRANDED, DriversOptions, run_drivers
from connstorm.local_stack.pgbouncer_binaries import available
from connstorm.local_stack.scratch import processes_in

pytestmark = pytest.mark.slow

CONFIGS = ("sqlalchemy_queuepool_1", "sqlalchemy_queuepool_1_pre_ping")


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pgbouncers = available()
    assert any(not b.tracks_prepared_statements for b in pgbouncers), "PgBouncer 1.18"
    assert any(b.tracks_prepared_statements for b in pgbouncers), "run scripts/bootstrap.sh"
    out = tmp_path_factory.mktemp("drivers") / "run"
    done = run_drivers(DriversOptions(out=out, only=CONFIGS, pgbouncers=tuple(pgbouncers)))
    assert processes_in(out) == []
    return done


@pytest.mark.parametrize("config", CONFIGS)
def test_queuepool_fails_on_pgbouncer_1_18_and_works_on_1_24(
        summary: dict[str, Any], config: str) -> None:
    cells = {("old" if e["path"].startswith("pgbouncer-1.1") else e["path"]): e
             for e in summary["drivers"] if e["name"] == config}
    old = cells.pop("old")
    new = [e for path, e in cells.items() if path.startswith("pgbouncer-")]
    # THEN on 1.18 the order's statement outlived its transaction: fails, with the
    # statement named, whether or not one of this run's requests met it
    assert old["verdict"] == "fails"
    assert old["errors"][STRANDED]["count"] >= 1
    assert old["errors"][STRANDED]["first"].startswith('prepared statement "_pg3_')
    assert "INSERT INTO order_items" in old["errors"][STRANDED]["first"]
    assert set(old["errors"]) <= {STRANDED, "prepared_statement"}
    # ... and 1.24 (max_prepared_statements) carries it: every request answered
    assert [e["verdict"] for e in new] == ["works"]
    assert new[0]["failures"] == 0
    assert cells["direct"]["verdict"] == "works"
