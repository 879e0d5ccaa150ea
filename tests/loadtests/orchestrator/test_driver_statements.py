"""Reading stranded named statements off PostgreSQL's log (pure logic, real log lines).

The lines are as PostgreSQL 15 writes them with the drivers stack's
``log_line_prefix = '%m [%p] %d %v '`` and ``log_min_duration_statement = 0``.
"""

from __future__ import annotations

from connstorm.loadtests.orchestrator.driver_statements import stranded

T = "2026-12-07 21:36:59.543 GMT"
INSERT = ("INSERT INTO order_items (order_id, product_id, quantity, price_cents) "
          "VALUES ($1, $2, $3, $4)")


def _line(pid: int, db: str, vxid: str, what: str) -> str:
    return f"{T} [{pid}] {db} {vxid} LOG:  duration: 0.021 ms  {what}"


def test_a_named_statement_seen_in_a_later_transaction_of_its_backend_is_stranded() -> None:
    lines = [
        _line(7, "cell_001", "6/26", f"parse _pg3_0: {INSERT}"),
        _line(7, "cell_001", "6/26", f"bind _pg3_0: {INSERT}"),
        _line(7, "cell_001", "6/0", "statement: COMMIT"),       # ended with it prepared
        _line(7, "cell_001", "6/27", "parse <unnamed>: SELECT 1"),  # the next one, any client's
    ]
    found = stranded(lines, {"cell_001"})
    assert found["cell_001"].count == 1
    assert found["cell_001"].names == {"_pg3_0"}
    assert found["cell_001"].first.startswith(
        'prepared statement "_pg3_0" outlived its transaction')
    assert "INSERT INTO order_items" in found["cell_001"].first


def test_deallocated_in_its_own_transaction_unnamed_and_other_databases_are_fine() -> None:
    lines = [
        _line(8, "cell_001", "7/3", "parse stmt_a: SELECT 1"),
        _line(8, "cell_001", "7/3", 'statement: DEALLOCATE "stmt_a"'),
        _line(8, "cell_001", "7/0", "statement: COMMIT"),
        _line(8, "cell_001", "7/4", "parse <unnamed>: SELECT 1"),
        _line(8, "cell_001", "7/0", "statement: COMMIT"),
        _line(9, "cell_002", "8/1", f"parse _pg3_0: {INSERT}"),  # a database not asked about
        _line(9, "cell_002", "8/0", "statement: COMMIT"),
        f"{T} [7] LOG:  checkpoint starting: time",              # other lines are skipped
    ]
    assert stranded(lines, {"cell_001"}) == {}


def test_rollback_then_deallocate_all_strands_it_a_transaction_of_its_own() -> None:
    # psycopg's rollback(): ROLLBACK, then DEALLOCATE ALL as a transaction of its own,
    # which PgBouncer 1.18 may run on another server connection: stranded at ROLLBACK
    lines = [
        _line(7, "cell_001", "6/26", f"parse _pg3_0: {INSERT}"),
        _line(7, "cell_001", "6/0", "statement: ROLLBACK"),
        _line(7, "cell_001", "6/0", "statement: DEALLOCATE ALL"),
        _line(7, "cell_001", "6/27", "parse <unnamed>: SELECT 1"),
    ]
    assert stranded(lines, {"cell_001"})["cell_001"].count == 1


def test_deallocate_all_on_another_backend_leaves_the_statement_where_it_was() -> None:
    # psycopg's DEALLOCATE ALL after a rollback is a transaction of its own: behind
    # PgBouncer 1.18 it may run on another server connection than the PREPARE did
    lines = [
        _line(7, "cell_001", "6/26", f"parse _pg3_0: {INSERT}"),
        _line(8, "cell_001", "7/0", "statement: DEALLOCATE ALL"),
        _line(7, "cell_001", "6/30", "parse <unnamed>: SELECT 1"),
    ]
    assert stranded(lines, {"cell_001"})["cell_001"].names == {"_pg3_0"}
