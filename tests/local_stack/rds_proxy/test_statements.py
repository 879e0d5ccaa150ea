"""Named prepared statements through the stand-in: multiplexed, isolated, failing as PG does.

Drivers first (psycopg 3 with its defaults), then raw protocol scripts run
against PostgreSQL itself and through the stand-in, whose answers must match.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from connstorm.local_stack.pgbouncer import PgBouncerServer
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.rds_proxy import server_statements, statements
from connstorm.local_stack.rds_proxy.proxy import RdsProxy
from tests.local_stack.rds_proxy.conftest import client_dsn
from tests.local_stack.rds_proxy.wire import (
    SYNC,
    Answer,
    WireClient,
    bind,
    close,
    describe,
    execute,
    parse,
    query,
)

pytestmark = pytest.mark.slow

MakeProxy = Callable[..., RdsProxy]
CLIENTS, QUERIES = 6, 50
#: What psycopg's own errors say when a named statement is not where it was prepared.
LOST_STATEMENT = (psycopg.errors.InvalidSqlStatementName,
                  psycopg.errors.DuplicatePreparedStatement)


def _six_clients(dsn: str) -> tuple[list[list[int]], list[BaseException]]:
    """6 clients, psycopg's defaults (prepare_threshold=5), 50 identical queries each."""
    results: list[list[int]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def client(k: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            start.wait(30)
            for i in range(QUERIES):
                try:
                    row = conn.execute("select %s::int + %s::int", (k * 1000, i)).fetchone()
                    results[k].append(row[0] if row else -1)
                except psycopg.Error as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_psycopg_defaults_multiplex_through_the_stand_in_without_pinning(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    # GIVEN a pool of 2 and 6 psycopg clients with its defaults: from the 6th run
    # on, every query is a named prepared statement (_pg3_0)
    proxy = make_proxy(pg, pool_size=2)
    results, errors = _six_clients(client_dsn(proxy, pg))
    # THEN every answer is right, nothing pinned, and no "prepared statement does not exist"
    assert errors == []
    assert results == [[k * 1000 + i for i in range(QUERIES)] for k in range(CLIENTS)]
    metrics = proxy.metrics()
    assert proxy.pins == []
    assert metrics["pin_reasons"] == {}
    assert metrics["DatabaseConnections"] <= 2
    assert metrics["ClientConnections"] == 0
    assert proxy.core is not None
    assert len(proxy.core.statements) <= 1  # one text: one entry, whatever the clients


def test_a_statement_is_prepared_again_on_the_next_connection_lent(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, pool_size=2)
    dsn = client_dsn(proxy, pg)
    with psycopg.connect(dsn, autocommit=True) as client, psycopg.connect(dsn) as blocker:
        first = client.execute("select pg_backend_pid(), %s::int", (1,), prepare=True).fetchone()
        # The pool lends the connection given back last: the blocker takes the client's.
        held = blocker.execute("select pg_backend_pid()").fetchone()
        assert first is not None
        assert held == (first[0],)
        second = client.execute("select pg_backend_pid(), %s::int", (2,), prepare=True).fetchone()
        assert second is not None
        assert second[0] != first[0]
        assert second[1] == 2
        blocker.rollback()
    assert proxy.metrics()["PreparedStatementsInjected"] == 1
    assert proxy.pins == []


def test_the_same_through_pgbouncer_1_18_transaction_mode_fails_as_in_life(
        pg: PostgresServer, pgbouncer_factory: Callable[..., PgBouncerServer]) -> None:
    # PgBouncer before 1.21 does not track prepared statements: a client's _pg3_0
    # lives on one server connection, and 6 clients' _pg3_0 meet on 2 of them. By
    # the pigeonhole principle at least 4 of the 6 first Parses hit a server that
    # has one already ("already exists"), or a later Bind lands where it is not.
    bouncer = pgbouncer_factory(pg, pool_mode="transaction", default_pool_size=2)
    assert bouncer.binary is not None
    assert not bouncer.binary.tracks_prepared_statements, bouncer.version  # Debian 12's 1.18
    _, errors = _six_clients(bouncer.dsn)
    assert errors
    assert all(isinstance(e, LOST_STATEMENT) for e in errors), errors[:3]
    assert any("_pg3_" in str(e) for e in errors)


def test_psycopg_pipelines_of_prepared_statements_share_one_connection(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    # Both clients name their statement _pg3_0, with different texts, over one connection.
    proxy = make_proxy(pg, pool_size=1)
    dsn = client_dsn(proxy, pg)
    with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
        for _ in range(3):
            with a.pipeline():
                doubled = [a.execute("select %s::int * 2", (i,), prepare=True) for i in range(20)]
            with b.pipeline():
                tagged = [b.execute("select %s::text || 'b'", (i,), prepare=True)
                          for i in range(20)]
            assert [c.fetchone() for c in doubled] == [(i * 2,) for i in range(20)]
            assert [c.fetchone() for c in tagged] == [(f"{i}b",) for i in range(20)]
    assert proxy.pins == []


def test_sql_level_prepare_still_pins(pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, pool_size=2)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        conn.execute("prepare rdsp_sql_q as select 41 + 1")
        assert conn.execute("execute rdsp_sql_q").fetchone() == (42,)
        assert proxy.metrics()["DatabaseConnectionsCurrentlySessionPinned"] == 1
    assert [p.reason for p in proxy.pins] == [statements_reason()]


def statements_reason() -> str:
    from connstorm.local_stack.rds_proxy import pinning

    return pinning.PREPARED_STATEMENT


# ------------------------------------------------------------ raw protocol, against PostgreSQL

Script = Callable[[WireClient], Any]


async def _app_client(pg: PostgresServer, host: str, port: int) -> WireClient:
    """A wire client logged in as the application role, to ``host:port``."""
    return await WireClient.connect(host, port, pg.app_user, pg.app_password or "",
                                    pg.app_dbname)


def _compare(pg: PostgresServer, proxy: RdsProxy, script: Callable[[WireClient],
             Any], *, between: Callable[[], Any] | None = None) -> list[list[Answer]]:
    """Run ``script`` against PostgreSQL and through ``proxy``; both answer lists."""

    async def run(host: str, port: int) -> list[list[Answer]]:
        client = await _app_client(pg, host, port)
        try:
            return [answers async for answers in script(client)]  # type: ignore[attr-defined]
        finally:
            await client.close()

    direct = asyncio.run(run(pg.host, pg.port))
    proxied = asyncio.run(run(proxy.host, proxy.port))
    assert proxied == direct
    return direct


async def _unknown_statement(client: WireClient) -> Any:
    yield await client.run(bind("never_parsed"), execute(), SYNC)
    yield await client.run(describe("never_parsed"), SYNC)
    yield await client.run(parse("s1", "select 1"), bind("s1"), execute(), SYNC)


async def _close_twice(client: WireClient) -> Any:
    yield await client.run(parse("s1", "select 'one'"), SYNC)
    yield await client.run(close("s1"), SYNC)
    yield await client.run(close("s1"), close("never_parsed"), SYNC)
    yield await client.run(bind("s1"), execute(), SYNC)
    yield await client.run(parse("s1", "select 'again'"), bind("s1"), execute(), SYNC)


async def _duplicate_parse(client: WireClient) -> Any:
    yield await client.run(parse("s1", "select 'first'"), SYNC)
    yield await client.run(parse("s1", "select 'second'"), bind("s1"), execute(), SYNC)
    yield await client.run(bind("s1"), execute(), SYNC)


async def _failed_parse_is_not_kept(client: WireClient) -> Any:
    yield await client.run(parse("bad", "selec 1"), SYNC)
    yield await client.run(bind("bad"), execute(), SYNC)
    # An error earlier in the batch: the server skips the Parse, so it is not kept either.
    yield await client.run(bind("nope"), parse("skipped", "select 2"), SYNC)
    yield await client.run(bind("skipped"), execute(), SYNC)


async def _transaction_that_fails(client: WireClient) -> Any:
    yield await client.run(query("begin"))
    yield await client.run(parse("s2", "select 2"), bind("s2"), execute(), SYNC)
    yield await client.run(parse("s3", "select no_such_column"), SYNC)
    yield await client.run(bind("s2"), execute(), SYNC)  # aborted transaction: 25P02
    yield await client.run(query("rollback"))
    # Prepared statements outlive a rollback in PostgreSQL; the failed one never was.
    yield await client.run(bind("s2"), execute(), bind("s3"), execute(), SYNC)
    yield await client.run(describe("s2"), SYNC)


@pytest.mark.parametrize("script", [_unknown_statement, _close_twice, _duplicate_parse,
                                    _failed_parse_is_not_kept, _transaction_that_fails],
                         ids=lambda f: f.__name__.strip("_"))
def test_bad_input_is_answered_as_postgresql_answers_it(
        pg: PostgresServer, make_proxy: MakeProxy, script: Script) -> None:
    proxy = make_proxy(pg, pool_size=1)
    answers = _compare(pg, proxy, script)
    assert any(kind == "E" for batch in answers for kind, _ in batch)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as other:  # others go on
        assert other.execute("select 7").fetchone() == (7,)


def test_two_clients_same_name_different_text_on_one_connection(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(pg, pool_size=1)

    async def both() -> tuple[list[Answer], list[Answer], list[Answer]]:
        a = await _app_client(pg, proxy.host, proxy.port)
        b = await _app_client(pg, proxy.host, proxy.port)
        first = await a.run(parse("s1", "select 'a'"), bind("s1"), execute(), SYNC)
        second = await b.run(parse("s1", "select 'b'"), bind("s1"), execute(), SYNC)
        again = await a.run(bind("s1"), execute(), SYNC)
        await a.close()
        await b.close()
        return first, second, again

    first, second, again = asyncio.run(both())
    assert ("D", "a") in first
    assert ("D", "b") in second
    assert ("D", "a") in again
    assert not [x for x in first + second + again if x[0] == "E"]


@pytest.fixture
def small_client_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(statements, "MAX_CLIENT_STATEMENTS", 300)
    return 300


def test_a_client_preparing_thousands_is_served_and_bounded(
        pg: PostgresServer, make_proxy: MakeProxy, small_client_limit: int) -> None:
    # GIVEN one database connection, shared by two clients that each prepare far more
    # statements than a connection keeps (200): evicted ones are prepared again on use
    proxy = make_proxy(pg, pool_size=1)
    count = small_client_limit

    async def client(tag: str) -> list[Answer]:
        c = await _app_client(pg, proxy.host, proxy.port)
        out: list[Answer] = []
        for first in range(0, count, 100):
            out += await c.run(*[parse(f"s{i}", f"select '{tag}{i}'")
                                 for i in range(first, first + 100)], SYNC)
        for first in range(0, count, 100):
            msgs = [m for i in range(first, first + 100) for m in (bind(f"s{i}"), execute())]
            out += await c.run(*msgs, SYNC)
        # One more than the limit: PostgreSQL would take it; the stand-in says why not.
        out += await c.run(parse("one_too_many", "select 1"), SYNC)
        out += await c.run(bind("s0"), execute(), SYNC)
        await c.close()
        return out

    async def both() -> list[list[Answer]]:
        return list(await asyncio.gather(client("a"), client("b")))

    for tag, answers in zip("ab", asyncio.run(both()), strict=True):
        rows = [value for kind, value in answers if kind == "D"]
        assert rows == [f"{tag}{i}" for i in range(count)] + [f"{tag}0"]
        refused = [value for kind, value in answers if kind == "E"]
        assert len(refused) == 1
        assert refused[0].startswith("53400 RDS Proxy stand-in: this client holds 300")
    assert proxy.core is not None
    deadline = time.monotonic() + 10
    while proxy.metrics()["ClientConnections"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.metrics()["PreparedStatementsInjected"] > 0  # evicted, then used again
    # The clients are gone: only what the connection keeps prepared is remembered.
    assert len(proxy.core.statements) <= server_statements.MAX_SERVER_STATEMENTS
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as other:
        rows = other.execute("select count(*) from pg_prepared_statements").fetchone()
    assert rows is not None
    assert rows[0] <= server_statements.MAX_SERVER_STATEMENTS


def test_the_unnamed_statement_stays_the_clients_across_batches(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    # pg8000's way: Parse the unnamed statement in one batch, Bind it in a later one.
    # Over one connection, another client's unnamed Parse comes in between.
    proxy = make_proxy(pg, pool_size=1)

    async def clients(host: str, port: int) -> list[list[Answer]]:
        a, b, c = [await _app_client(pg, host, port) for _ in range(3)]
        out = [await a.run(parse("", "select 'a'"), describe(""), SYNC),
               await b.run(parse("", "select 'b'"), bind(""), execute(), SYNC),
               await a.run(bind(""), execute(), SYNC),
               await a.run(describe(""), SYNC),
               await c.run(bind(""), execute(), SYNC),  # never prepared one
               await b.run(bind(""), execute(), SYNC)]
        for client in (a, b, c):
            await client.close()
        return out

    proxied = asyncio.run(clients(proxy.host, proxy.port))
    direct = asyncio.run(clients(pg.host, pg.port))  # each its own session: the reference
    assert proxied == direct
    assert ("D", "a") in proxied[2]
    assert ("D", "b") in proxied[5]
    assert proxied[4][0] == ("E", "26000 unnamed prepared statement does not exist")
    assert proxy.metrics()["PreparedStatementsInjected"] >= 2


def test_a_simple_query_drops_the_unnamed_statement_as_postgresql_does(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    # pg8000 sends START TRANSACTION and parameterless statements as simple Queries,
    # which drop the unnamed statement on the connection they run on: the next client
    # whose unnamed statement lived there must get its Parse injected again (found by
    # the drivers matrix: pg8000 on rds_proxy failed with 26000, then hung).
    proxy = make_proxy(pg, pool_size=1)

    async def clients(host: str, port: int) -> list[list[Answer]]:
        a, b = [await _app_client(pg, host, port) for _ in range(2)]
        out = [await a.run(parse("", "select 'a'"), SYNC),
               await b.run(query("select 'b'")),
               await a.run(bind(""), execute(), SYNC),
               await a.run(query("select 'a again'")),
               await a.run(bind(""), execute(), SYNC)]  # its own Query dropped it
        for client in (a, b):
            await client.close()
        return out

    proxied = asyncio.run(clients(proxy.host, proxy.port))
    direct = asyncio.run(clients(pg.host, pg.port))
    assert proxied == direct
    assert ("D", "a") in proxied[2]
    assert proxied[4][0] == ("E", "26000 unnamed prepared statement does not exist")


def test_pg8000_through_the_stand_in_gets_its_own_rows(
        pg: PostgresServer, make_proxy: MakeProxy) -> None:
    pg8000 = pytest.importorskip("pg8000.native")
    proxy = make_proxy(pg, pool_size=2)
    errors: list[BaseException] = []
    results: list[list[Any]] = [[] for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def client(k: int) -> None:
        conn = pg8000.Connection(pg.app_user, password=pg.app_password, host=proxy.host,
                                 port=proxy.port, database=pg.app_dbname)
        try:
            start.wait(30)
            for i in range(QUERIES):
                try:  # a different query per client: a mix-up shows as a wrong row
                    rows = conn.run(f"select {k} * 1000 + :i as n, '{k}' as who", i=i)
                    results[k].append(tuple(rows[0]))
                except Exception as exc:
                    errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert results == [[(k * 1000 + i, str(k)) for i in range(QUERIES)] for k in range(CLIENTS)]
    assert proxy.pins == []
