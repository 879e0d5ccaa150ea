"""Locust collector: users, throughput, latency and failures by kind, once per interval.

Locust's request statistics merge over workers by themselves; the errors by
kind are connstorm's own counter (:class:`ErrorKindCounter`), which workers send
to the master with every report (``report_to_master`` / ``worker_report``), so
the master's rows cover every worker's requests.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from connstorm.failures import classify_failure
from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter

#: Keys of connstorm's counters in the data workers report to the master.
REPORT_KEY = "connstorm_errors_by_kind"
REQUESTS_KEY = "connstorm_requests"


class ErrorKindCounter:
    """Counts failed requests by kind, in every process, and sums workers' counts on the master.

    Attach it with :meth:`attach` to an environment's events. On a worker the
    counts are sent and reset with each report; on the master (and a local
    runner) they accumulate.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        #: On the master: requests each worker made, by worker id (from their reports).
        self.requests_by_worker: Counter[str] = Counter()
        self._requests = 0
        self._lock = threading.Lock()

    def attach(self, events: Any) -> None:
        """Listen to ``request``, ``report_to_master`` and ``worker_report``."""
        events.request.add_listener(self.on_request)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)

    def on_request(self, exception: BaseException | None = None, **kwargs: Any) -> None:
        """Count one request, and its failure by kind."""
        with self._lock:
            self._requests += 1
        if exception is not None:
            self.add(classify_failure(str(exception)))

    def add(self, kind: str, count: int = 1) -> None:
        """Add ``count`` failures of ``kind``."""
        with self._lock:
            self.counts[kind] += count

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
        """On a worker: hand the counts since the last report to the master, then reset."""
        with self._lock:
            data[REPORT_KEY] = dict(self.counts)
            data[REQUESTS_KEY] = self._requests
            self.counts.clear()
            self._requests = 0

    def on_worker_report(self, client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
        """On the master: add a worker's counts."""
        counts = data.get(REPORT_KEY) or {}
        with self._lock:
            for kind, count in counts.items():
                self.counts[str(kind)] += int(count)
            self.requests_by_worker[str(client_id)] += int(data.get(REQUESTS_KEY) or 0)

    def snapshot(self) -> dict[str, int]:
        """The cumulative counts, by kind."""
        with self._lock:
            return dict(self.counts)

    def workers_snapshot(self) -> dict[str, int]:
        """Requests per worker id so far (empty without workers)."""
        with self._lock:
            return dict(self.requests_by_worker)


class LocustStatsCollector(Collector):
    """Samples a Locust environment's totals; see the ``locust`` row in ``docs/run-folder.md``."""

    name = "locust"

    def __init__(self, writer: SampleWriter, environment: Any, counter: ErrorKindCounter, *,
                 interval_s: float = 1.0) -> None:
        super().__init__(writer, interval_s)
        self.environment = environment
        self.counter = counter
        self._last: tuple[float, int, int] | None = None

    def sample(self) -> dict[str, Any]:
        """One read of the runner's user count and the aggregated stats entry."""
        runner = self.environment.runner
        total = self.environment.stats.total
        now = time.monotonic()
        requests, failures = int(total.num_requests), int(total.num_failures)
        rps = fail_per_s = 0.0
        if self._last is not None:
            dt = now - self._last[0]
            if dt > 0:
                # max(0, ...): Locust resets its stats when a new test starts from the UI.
                rps = max(0, requests - self._last[1]) / dt
                fail_per_s = max(0, failures - self._last[2]) / dt
        self._last = (now, requests, failures)
        return {
            "users": int(getattr(runner, "user_count", 0) or 0) if runner is not None else 0,
            "state": str(getattr(runner, "state", "")) if runner is not None else "",
            "requests": requests, "failures": failures,
            "rps": round(rps, 2), "fail_per_s": round(fail_per_s, 2),
            "p50_ms": _percentile(total, 0.5), "p95_ms": _percentile(total, 0.95),
            "p99_ms": _percentile(total, 0.99),
            "errors_by_kind": self.counter.snapshot(),
            "workers": int(getattr(runner, "worker_count", 0) or 0) if runner is not None else 0,
            "requests_by_worker": self.counter.workers_snapshot(),
        }


def _percentile(entry: Any, fraction: float) -> float | None:
    """The sliding-window percentile when Locust keeps one, else over the whole run."""
    if not entry.num_requests:
        return None
    try:
        value = entry.get_current_response_time_percentile(fraction)
    except ValueError:  # no response-time cache (a worker's stats)
        value = None
    if value is None:
        value = entry.get_response_time_percentile(fraction)
    return float(value) if value is not None else None
