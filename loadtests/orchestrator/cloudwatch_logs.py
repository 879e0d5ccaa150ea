"""The functions' CloudWatch Logs over a run's window: REPORT lines and database errors.

Read with ``filter_log_events`` (every page, ``nextToken``) on each function's
log group, after the load: Lambda delivers log events within seconds, but the
REPORT line of the last invocations may still be on its way, so the live
command reads them once it has waited for the metrics. Each event is one of:

- a REPORT line (:mod:`connstorm.loadtests.orchestrator.lambda_report_line`): an invocation, a cold
  start when it shows ``Init Duration``, a timeout when ``Status: timeout``;
- ``Task timed out after N seconds`` (older runtimes' only timeout line);
- anything else whose text the existing classifier
  (:func:`connstorm.error_kinds.classify_message`) puts in a kind: "too many
  clients already", connection timeouts, RDS Proxy's "Timed-out waiting to
  acquire database connection", ... A timeout is counted once per request even
  when both lines say so.

:func:`findings_rows` turns the findings into one ``lambda_logs`` row per
period (cumulative counts, like the emulator's), so the report charts them on
the same time axis as the metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connstorm import error_kinds
from connstorm.loadtests.orchestrator.cloudwatch import floor_to
from connstorm.loadtests.orchestrator.lambda_report_line import ReportLine, parse_report_line

SOURCE = "cloudwatch_logs"
COLLECTOR = "lambda_logs"

_SKIP_PREFIXES = ("START RequestId:", "END RequestId:", "INIT_START", "EXTENSION", "TELEMETRY")


@dataclass
class LogFindings:
    """What the log events of a window say; times are Unix seconds."""

    reports: list[tuple[float, ReportLine]] = field(default_factory=list)
    #: (time, kind) of every classified error line (timeouts included).
    errors: list[tuple[float, str]] = field(default_factory=list)
    events: int = 0
    pages: int = 0

    @property
    def invocations(self) -> int:
        """REPORT lines seen: invocations that ended."""
        return len(self.reports)

    @property
    def cold_starts(self) -> int:
        """REPORT lines with Init Duration."""
        return sum(1 for _, r in self.reports if r.cold_start)

    def errors_by_kind(self) -> dict[str, int]:
        """Classified error lines by kind."""
        return dict(sorted(Counter(kind for _, kind in self.errors).items()))

    def figures(self) -> dict[str, Any]:
        """The totals summary.json keeps under ``cloudwatch.logs``."""
        inits = [r.init_duration_ms for _, r in self.reports if r.init_duration_ms is not None]
        return {"events": self.events, "pages": self.pages, "invocations": self.invocations,
                "cold_starts": self.cold_starts,
                "timeouts": sum(1 for _, k in self.errors if k == error_kinds.LAMBDA_TIMEOUT),
                "max_memory_used_mb": max((r.max_memory_used_mb for _, r in self.reports),
                                          default=None),
                "memory_size_mb": max((r.memory_size_mb for _, r in self.reports), default=None),
                "max_init_duration_ms": max(inits, default=None),
                "max_duration_ms": max((r.duration_ms for _, r in self.reports), default=None),
                "errors_by_kind": self.errors_by_kind()}


def classify_event(t: float, message: str, findings: LogFindings,
                   timed_out: set[str]) -> None:
    """Add one log event to ``findings`` (a REPORT line, a timeout, a database error)."""
    text = message.strip()
    if not text or text.startswith(_SKIP_PREFIXES):
        return
    report = parse_report_line(text)
    if report is not None:
        findings.reports.append((t, report))
        if report.timed_out and report.request_id not in timed_out:
            timed_out.add(report.request_id)
            findings.errors.append((t, error_kinds.LAMBDA_TIMEOUT))
        return
    kind = error_kinds.classify_message(text)
    if kind == error_kinds.OTHER:
        return
    if kind == error_kinds.LAMBDA_TIMEOUT:
        # "<time> <request id> Task timed out after 3.00 seconds": count it once
        # even when the REPORT line says Status: timeout too.
        parts = text.split()
        request_id = parts[1] if len(parts) > 2 else text
        if request_id in timed_out:
            return
        timed_out.add(request_id)
    findings.errors.append((t, kind))


def log_pages(client: Any, group: str, start_t: float, end_t: float, *,
              page_size: int | None = None,
              filter_pattern: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """The events of one log group in [start_t, end_t], a page at a time (``nextToken``).

    Yields nothing when the group does not exist (a function never invoked, a
    proxy that never logged). ``filter_pattern`` is CloudWatch Logs' own (a
    quoted phrase matches it exactly), applied on the service's side.
    """
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": int(start_t * 1000),
                              "endTime": int(end_t * 1000)}
    if page_size:
        kwargs["limit"] = page_size
    if filter_pattern:
        kwargs["filterPattern"] = filter_pattern
    token: str | None = None
    while True:
        if token:
            kwargs["nextToken"] = token
        try:
            page = client.filter_log_events(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            return
        events = list(page.get("events", []))
        yield events
        token = page.get("nextToken")
        if not token or not events:
            return


def read_logs(client: Any, log_groups: Iterable[str], start_t: float, end_t: float,
              *, page_size: int | None = None) -> LogFindings:
    """Every event of ``log_groups`` in [start_t, end_t], all pages, classified.

    A log group that does not exist yet (a function never invoked) has no events.
    """
    findings = LogFindings()
    timed_out: set[str] = set()
    for group in log_groups:
        for events in log_pages(client, group, start_t, end_t, page_size=page_size):
            findings.pages += 1
            for event in events:
                findings.events += 1
                classify_event(float(event.get("timestamp", 0)) / 1000.0,
                               str(event.get("message", "")), findings, timed_out)
    findings.reports.sort(key=lambda item: item[0])
    findings.errors.sort(key=lambda item: item[0])
    return findings


def findings_rows(findings: LogFindings, start_t: float, end_t: float,
                  period_s: int) -> list[tuple[float, dict[str, Any]]]:
    """One row per period: invocations, cold starts and errors so far (cumulative).

    Cumulative like the emulator's counters, so the last row holds the totals
    and the report's errors chart reads both the same way.
    """
    out: list[tuple[float, dict[str, Any]]] = []
    t = floor_to(start_t, period_s)
    while t < end_t:
        upto = t + period_s
        in_period = [r for ts, r in findings.reports if t <= ts < upto]
        reports = [r for ts, r in findings.reports if ts < upto]
        kinds = Counter(kind for ts, kind in findings.errors if ts < upto)
        row: dict[str, Any] = {"ok": True, "source": SOURCE, "period_s": period_s,
                               "invocations": len(reports),
                               "cold_starts": sum(1 for r in reports if r.cold_start),
                               "errors_by_kind": dict(sorted(kinds.items()))}
        if in_period:
            row["max_memory_used_mb"] = max(r.max_memory_used_mb for r in in_period)
            row["max_duration_ms"] = max(r.duration_ms for r in in_period)
        out.append((t, row))
        t = upto
    return out
