"""The Logs collector against moto's CloudWatch Logs: pages, REPORT lines, errors by kind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from connstorm import error_kinds
from connstorm.loadtests.orchestrator.cloudwatch_logs import findings_rows, read_logs
from connstorm.local_stack.lambda_.log_stream import end_lines, timeout_line
from tests.loadtests.orchestrator.test_lambda_report_line import DOCS_COLD, WARM_SPACES
from tests.moto_server import client, moto_server


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_logs_over_several_pages_are_read_and_classified(moto: str) -> None:
    logs = client(moto, "logs")
    group = "/aws/lambda/logs-test-fn"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2026/12/03/[$LATEST]abc")
    start = int(time.time()) - 600
    messages: list[str] = []
    for i in range(120):  # 120 warm invocations, then the failures
        messages += [f"START RequestId: w{i} Version: $LATEST", f"END RequestId: w{i}",
                     WARM_SPACES.replace("a0537bcb", f"w{i:07d}")]
    messages += [
        DOCS_COLD,
        "[ERROR] OperationalError: connection failed: connection to server at "
        "\"10.0.1.5\", port 5432 failed: FATAL:  sorry, too many clients already",
        "[ERROR] OperationalError: Timed-out waiting to acquire database connection",
        "[ERROR] ConnectionTimeout: connection timeout expired",
        timeout_line("req-t", 3.0).strip(),
        end_lines("req-t", duration_ms=3000.2, memory_mb=128, max_memory_mb=50,
                  status="timeout", error_type="Sandbox.Timedout").splitlines()[1],
        "an ordinary line of the handler",
    ]
    events = [{"timestamp": (start + i) * 1000, "message": m} for i, m in enumerate(messages)]
    logs.put_log_events(logGroupName=group, logStreamName="2026/12/03/[$LATEST]abc",
                        logEvents=events)
    findings = read_logs(logs, [group, "/aws/lambda/never-invoked"], start, start + len(events),
                         page_size=100)
    assert findings.pages >= 4  # 367 events, 100 a page
    assert findings.events == len(events)
    assert findings.invocations == 122
    assert findings.cold_starts == 1
    kinds = findings.errors_by_kind()
    assert kinds == {error_kinds.TOO_MANY_CONNECTIONS: 1, error_kinds.PROXY_BORROW_TIMEOUT: 1,
                     error_kinds.CONNECT_TIMEOUT: 1, error_kinds.LAMBDA_TIMEOUT: 1}
    figures = findings.figures()
    assert figures["max_init_duration_ms"] == 130.49
    assert figures["max_memory_used_mb"] == 56
    assert figures["timeouts"] == 1

    table = findings_rows(findings, start, start + len(events), 60)
    assert table[0][0] == start - start % 60
    last = table[-1][1]
    assert last["invocations"] == 122
    assert last["cold_starts"] == 1
    assert last["errors_by_kind"] == kinds  # cumulative: the last row holds the totals
    assert all(row["source"] == "cloudwatch_logs" for _, row in table)
