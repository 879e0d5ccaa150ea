"""The REPORT-line parser on real Lambda lines and on the emulator's own."""

from __future__ import annotations

import pytest

from connstorm.loadtests.orchestrator.lambda_report_line import parse_report_line
from connstorm.local_stack.lambda_.log_stream import end_lines, init_report_line, start_line

# As AWS's Python logging guide prints it: a cold start (Init Duration) with X-Ray fields.
DOCS_COLD = ("REPORT RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95\tDuration: 15.74 ms\t"
             "Billed Duration: 16 ms\tMemory Size: 128 MB\tMax Memory Used: 56 MB\t"
             "Init Duration: 130.49 ms\t\nXRAY TraceId: 1-5e34a614-10bdxmplf1fb44f07bc535a1\t"
             "SegmentId: 07f5xmpl2d1f6f85\tSampled: true\t\n")
# A warm invocation, as copied with spaces (no Init Duration).
WARM_SPACES = ("REPORT RequestId: a0537bcb-712d-11e4-8c97-af075a3c0929 Duration: 718.65 ms "
               "Billed Duration: 800 ms Memory Size: 128 MB Max Memory Used: 14 MB")
COLD_SPACES = ("REPORT RequestId: bf5f58db-ef7d-4cb2-b3c6-266eba1bbedb Duration: 395.99 ms "
               "Billed Duration: 662 ms Memory Size: 512 MB Max Memory Used: 301 MB "
               "Init Duration: 265.72 ms")
TIMEOUT = ("REPORT RequestId: 3a1f0c2e-9d7b-4c55-8e0a-5b6f1d2c3e4f\tDuration: 3000.00 ms\t"
           "Billed Duration: 3000 ms\tMemory Size: 128 MB\tMax Memory Used: 42 MB\t"
           "Status: timeout\n")


def test_real_cold_start_line_with_init_duration_and_xray() -> None:
    r = parse_report_line(DOCS_COLD)
    assert r is not None
    assert r.request_id == "8f507cfc-xmpl-4697-b07a-ac58fc914c95"
    assert (r.duration_ms, r.billed_duration_ms) == (15.74, 16.0)
    assert (r.memory_size_mb, r.max_memory_used_mb) == (128, 56)
    assert r.init_duration_ms == 130.49
    assert r.cold_start
    assert not r.timed_out


@pytest.mark.parametrize(("line", "init"), [(WARM_SPACES, None), (COLD_SPACES, 265.72)])
def test_lines_separated_by_spaces(line: str, init: float | None) -> None:
    r = parse_report_line(line)
    assert r is not None
    assert r.init_duration_ms == init
    assert r.cold_start is (init is not None)
    assert r.max_memory_used_mb in (14, 301)


def test_timeout_status() -> None:
    r = parse_report_line(TIMEOUT)
    assert r is not None
    assert r.timed_out
    assert r.duration_ms == 3000.0
    assert not r.cold_start


@pytest.mark.parametrize("text", ["START RequestId: x Version: $LATEST", "END RequestId: x",
                                  "REPORT RequestId: x\tDuration: soon", "", "hello REPORT"])
def test_other_lines_are_not_reports(text: str) -> None:
    assert parse_report_line(text) is None


def test_the_emulators_lines_parse_the_same_way() -> None:
    cold = end_lines("req-1", duration_ms=12.345, memory_mb=256, max_memory_mb=61,
                     init_ms=321.5).splitlines()[1]
    r = parse_report_line(cold)
    assert r is not None
    assert (r.request_id, r.duration_ms, r.billed_duration_ms) == ("req-1", 12.35, 13.0)
    assert (r.memory_size_mb, r.max_memory_used_mb, r.init_duration_ms) == (256, 61, 321.5)
    timeout = end_lines("req-2", duration_ms=3000.5, memory_mb=128, max_memory_mb=40,
                        status="timeout", error_type="Sandbox.Timedout").splitlines()[1]
    t = parse_report_line(timeout)
    assert t is not None
    assert t.timed_out
    assert t.error_type == "Sandbox.Timedout"
    assert not t.cold_start
    assert parse_report_line(start_line("req-3")) is None
    assert parse_report_line(init_report_line(10.0, "error", "Runtime.Unknown")) is None
