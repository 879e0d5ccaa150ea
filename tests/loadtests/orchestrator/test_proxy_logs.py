"""RDS Proxy's log group of a live run read into the pinning audit (moto in server mode)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from connstorm.loadtests.orchestrator.proxy_logs import (
    log_group,
    parse_pin_line,
    read_proxy_pins,
)
from connstorm.local_stack.rds_proxy import pinning
from connstorm.local_stack.rds_proxy.proxy import PIN_LOG
from tests.moto_server import client, moto_server

SETTINGS = ("SQL changed session settings that the proxy doesn't track. Consider moving "
            "session configuration to the proxy's initialization query.")
#: Pin lines as RDS Proxy writes them (enhanced logging on), from users' published logs.
AWS_LINES = [
    ('2024-10-12T17:20:40 [WARN] [proxyEndpoint=default] [clientConnection=2125203372] The '
     'client session was pinned to the database connection [dbConnection=1953961465] for the '
     "remainder of the session. The proxy can't reuse this connection until the session ends. "
     f'Reason: {SETTINGS} Digest: "set search_path to $1,$2,$3".',
     (SETTINGS, "set search_path to $1,$2,$3")),
    ("The client session was pinned to the database connection [dbConnection=1189232136] for "
     "the remainder of the session. The proxy can't reuse this connection until the session "
     f'ends. Reason: {SETTINGS} Digest: "set client_encoding to $1".',
     (SETTINGS, "set client_encoding to $1")),
    ("[WARN] [proxyEndpoint=default] [clientConnection=1] The client session was pinned to the "
     "database connection [dbConnection=2] for the remainder of the session. The proxy can't "
     "reuse this connection until the session ends. Reason: A parse message was detected.",
     ("A parse message was detected.", "")),
]
OTHER_LINES = [
    "[INFO] [default] A new client connected from 10.0.1.5:40112.",
    "[INFO] [default] If this prepared statement runs, the client session will be pinned... "
    "Reason: SQL changed session settings that the proxy doesn't track.",
    "[INFO] The database connection closed. Reason: The client connection that borrowed this "
    "database connection from the connection pool was closed in the middle of a request.",
]


@pytest.mark.parametrize(("line", "parsed"), AWS_LINES)
def test_rds_proxys_pin_lines_give_reason_and_digest(line: str, parsed: tuple[str, str]) -> None:
    assert parse_pin_line(line) == parsed


def test_other_lines_are_not_pins() -> None:
    assert [parse_pin_line(line) for line in OTHER_LINES] == [None] * len(OTHER_LINES)


def test_the_stand_ins_own_line_parses_the_same_way() -> None:
    line = PIN_LOG.format(client=7, conn=3000000001, reason=pinning.SESSION_SETTINGS,
                          digest=pinning.digest("SET statement_timeout = 5000; SET x = 'y'"))
    assert parse_pin_line(line) == (pinning.SESSION_SETTINGS,
                                    "SET statement_timeout = $1; SET x = $2")


def test_the_log_group_is_named_after_the_proxy() -> None:
    assert log_group("connstorm-proxy") == "/aws/rds/proxy/connstorm-proxy"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_pins_are_read_over_pages_by_reason_and_a_missing_group_says_so(moto: str) -> None:
    logs = client(moto, "logs")
    group = log_group("proxy-logs-test")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="proxy-instance-1")
    start = int(time.time()) - 600
    lines = [line for line, _ in AWS_LINES] * 20 + OTHER_LINES * 30  # 150 events
    logs.put_log_events(logGroupName=group, logStreamName="proxy-instance-1", logEvents=[
        {"timestamp": (start + i) * 1000, "message": m} for i, m in enumerate(lines)])
    pins = read_proxy_pins(logs, group, start, start + len(lines), page_size=25)
    assert pins.found
    assert pins.pages >= 3  # 60 pin lines, 25 a page: the filter kept only those
    assert pins.events == 60
    assert pins.pin_reasons == {SETTINGS: 40, "A parse message was detected.": 20}
    assert pins.pin_samples == {SETTINGS: "set search_path to $1,$2,$3"}
    before = read_proxy_pins(logs, group, start - 600, start - 1)
    assert (before.found, before.events, before.pin_reasons) == (True, 0, {})
    missing = read_proxy_pins(logs, log_group("never-logged"), start, start + 10)
    assert (missing.found, missing.events) == (False, 0)
    assert missing.figures()["found"] is False
