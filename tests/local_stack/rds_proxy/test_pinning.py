"""What pins, decided from the SQL text alone (pure logic: no server needed)."""

from __future__ import annotations

import struct

import pytest

from connstorm.local_stack.rds_proxy import pinning

PINS = [
    ("SET search_path = app, public", pinning.SESSION_SETTINGS),
    ("set time zone 'UTC'", pinning.SESSION_SETTINGS),
    ("SET SESSION statement_timeout = 1000", pinning.SESSION_SETTINGS),
    ("RESET ALL", pinning.SESSION_SETTINGS),
    ("select set_config('search_path', 'x', false)", pinning.SESSION_SETTINGS),
    ("PREPARE q AS select 1", pinning.PREPARED_STATEMENT),
    ("EXECUTE q", pinning.PREPARED_STATEMENT),
    ("deallocate all", pinning.PREPARED_STATEMENT),
    ("DISCARD ALL", pinning.DISCARD),
    ("create temp table t (x int)", pinning.TEMPORARY_OBJECT),
    ("CREATE LOCAL TEMPORARY TABLE t (x int)", pinning.TEMPORARY_OBJECT),
    ("create temporary sequence s", pinning.TEMPORARY_OBJECT),
    ("create or replace temp view v as select 1", pinning.TEMPORARY_OBJECT),
    ("select * into temp t2 from t", pinning.TEMPORARY_OBJECT),
    ("declare c cursor with hold for select 1", pinning.CURSOR),
    ("LISTEN jobs", pinning.LISTEN),
    ("select pg_advisory_lock(1)", pinning.ADVISORY_LOCK),
    ("select pg_try_advisory_lock_shared(1, 2)", pinning.ADVISORY_LOCK),
    ("select nextval('s')", pinning.SEQUENCE_FUNCTION),
    ("SELECT setval ('s', 10)", pinning.SEQUENCE_FUNCTION),
    ("load 'auto_explain'", pinning.LOAD),
    ("select 1; set search_path = x", pinning.SESSION_SETTINGS),
    ("/* orm */ SET search_path TO app", pinning.SESSION_SETTINGS),
]

NO_PINS = [
    "select 1",
    "update t set x = 1 where y = 2",
    "insert into t (note) values ('set search_path = x; listen y')",
    "select 'nextval(' || name from t",
    "-- set search_path = x\nselect 1",
    "SET LOCAL statement_timeout = 1000",
    "set transaction isolation level serializable",
    "SET CONSTRAINTS ALL DEFERRED",
    "select set_config('search_path', 'x', true)",
    "select pg_advisory_xact_lock(1)",
    "PREPARE TRANSACTION 'x'",
    "create table t (x int)",
    "create table settings (temp int)",
    "begin; select 1; commit",
]


@pytest.mark.parametrize(("sql", "reason"), PINS)
def test_statement_pins_with_its_reason(sql: str, reason: str) -> None:
    assert pinning.pin_reason(sql) == reason


@pytest.mark.parametrize("sql", NO_PINS)
def test_statement_does_not_pin(sql: str) -> None:
    assert pinning.pin_reason(sql) is None


def _parse(name: bytes, sql: bytes) -> bytes:
    return name + b"\0" + sql + b"\0" + b"\0\0"


def test_named_and_unnamed_parses_are_judged_by_their_text_alone() -> None:
    # AWS multiplexes the extended protocol's prepared statements since November 2023.
    assert pinning.message_reason(b"P", _parse(b"_pg3_0", b"select 1")) == (None, "")
    assert pinning.message_reason(b"P", _parse(b"_pg3_1", b"set search_path = x")) == (
        pinning.SESSION_SETTINGS, "set search_path = x")
    assert pinning.message_reason(b"P", _parse(b"", b"select $1")) == (None, "")
    assert pinning.message_reason(b"P", _parse(b"", b"select nextval($1)"))[0] == (
        pinning.SEQUENCE_FUNCTION)


def test_statements_over_16_kb_pin_and_others_never_do() -> None:
    big = b"select '" + b"x" * (16 * 1024) + b"'\0"
    assert pinning.message_reason(b"Q", big)[0] == pinning.LARGE_STATEMENT
    assert pinning.message_reason(b"Q", b"select 1\0") == (None, "")
    assert pinning.message_reason(b"Q", b"update t set x = 1\0") == (None, "update t set x = 1")
    assert pinning.message_reason(b"B", b"whatever") == (None, "")


def test_every_reason_is_listed_once() -> None:
    assert len(set(pinning.ALL_REASONS)) == len(pinning.ALL_REASONS) == 10


@pytest.mark.parametrize(("sql", "clears"), [
    ("DEALLOCATE ALL", True), ("deallocate prepare all", True), ("DISCARD ALL", True),
    ("select 1; discard all", True), ("DEALLOCATE _pg3_0", False), ("DISCARD PLANS", False),
    ("select 'discard all'", False),
])
def test_statements_that_drop_every_prepared_statement(sql: str, clears: bool) -> None:
    assert pinning.clears_statements(sql) is clears


@pytest.mark.parametrize(("sql", "scopes"), [
    ("select set_config('search_path', 'x', false)", ["false"]),
    ("SELECT set_config($1, $2, $3)", ["$3"]),
    ("select set_config('a', 'b', 'off'::boolean), set_config('c', upper('d'), (true))",
     ["off", "true"]),
    ("select set_config('a', 'x,y', $2::bool)", ["$2"]),
    ("select 'set_config(a, b, false)' -- set_config(a, b, false)", []),
])
def test_set_config_scopes_are_read_with_literals_casts_and_parameters(
        sql: str, scopes: list[str]) -> None:
    assert pinning.set_config_scopes(sql) == scopes


@pytest.mark.parametrize(("fmt", "value", "false"), [
    (0, b"false", True), (0, b"f", True), (0, b" OFF ", True), (0, b"0", True),
    (0, b"no", True), (0, b"true", False), (0, b"t", False), (0, b"on", False),
    (1, b"\0", True), (1, b"\1", False), (0, None, False),
])
def test_a_bound_scope_is_false_as_postgresql_reads_booleans(
        fmt: int, value: bytes | None, false: bool) -> None:
    assert pinning.bound_false(fmt, value) is false


def _bind(name: bytes, fmt: int, *values: bytes | None) -> memoryview:
    body = b"\0" + name + b"\0" + struct.pack("!hh", 1, fmt) + struct.pack("!h", len(values))
    for value in values:
        body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    return memoryview(body + b"\0\0")


def test_a_parse_with_a_parameter_scope_pins_at_the_bind_that_gives_it_false() -> None:
    watch = pinning.SessionWatch()
    sql = b"select set_config($1, $2, $3)"
    assert watch.message(80, memoryview(_parse(b"s1", sql)), True) is None
    assert watch.message(80, memoryview(_parse(b"", sql)), True) is None
    assert watch.bind(_bind(b"s1", 0, b"search_path", b"x", b"true")) is None
    assert watch.bind(_bind(b"s1", 0, b"search_path", b"x", b"false")) == (
        pinning.SESSION_SETTINGS, sql.decode())
    assert watch.bind(_bind(b"", 1, b"search_path", b"x", b"\0")) == (
        pinning.SESSION_SETTINGS, sql.decode())
    assert watch.bind(_bind(b"", 1, b"search_path", b"x", None)) is None
    assert watch.bind(_bind(b"other", 0, b"a", b"b", b"false")) is None
    assert watch.bind(memoryview(b"\0s1\0\0")) is None  # malformed: the server refuses it
    # A new unnamed Parse replaces the unnamed statement: nothing to watch there any more.
    assert watch.message(80, memoryview(_parse(b"", b"select 1")), True) is None
    assert watch.bind(_bind(b"", 0, b"a", b"b", b"false")) is None
