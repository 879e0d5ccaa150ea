"""CloudWatch metrics of a deployed stack, read with ``get_metric_data`` into samples rows.

CloudWatch is not a local collector: its data points are one minute wide
(``period_s``, 60 by default), stamped with the *start* of their minute, and
they appear one to three minutes after the fact. So this module does not sample
on a tick like :class:`~connstorm.loadtests.locust_plugin.collectors.base.Collector`;
it reads a whole
window (paginated with ``NextToken``) and turns it into one row per group and
period, stamped with the data point's own time. A minute without a data point
is a gap in the row (the key is absent, the chart breaks the line), never a
zero: CloudWatch publishes nothing for a minute it saw nothing, and "nothing
seen" is not "zero connections".

:class:`CloudWatchPoller` reads the window so far every ``poll_s`` during the
load, for the live view; :func:`wait_for_last_points` waits (bounded) after the
load for the window's last minute; :func:`write_rows` writes the final reading
to ``samples.jsonl`` once, so each minute appears once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connstorm.loadtests.orchestrator.cloudwatch_metrics import (
    DEFAULT_PERIOD_S,
    MetricSpec,
    Targets,
    selected,
)
from connstorm.local_stack.resource import Resource
from connstorm.samples import SampleWriter

log = logging.getLogger(__name__)

#: The ``source`` of every row this module writes.
SOURCE = "cloudwatch"
#: get_metric_data takes at most this many queries per call.
MAX_QUERIES = 500


@dataclass
class Reading:
    """What one read of the window found: per (group, key), Unix time -> value."""

    points: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)
    #: Calls made to get_metric_data (pages included).
    calls: int = 0
    #: (group, key) -> why that metric could not be read (its series stays empty: a gap).
    errors: dict[tuple[str, str], str] = field(default_factory=dict)

    def newest(self, group: str, key: str) -> tuple[float, float] | None:
        """The newest (time, value) of a series, or None when it has no data."""
        series = self.points.get((group, key)) or {}
        if not series:
            return None
        t = max(series)
        return t, series[t]

    def count(self) -> int:
        """Data points in the reading."""
        return sum(len(v) for v in self.points.values())


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def floor_to(t: float, period_s: int) -> float:
    """``t`` rounded down to the start of its period (CloudWatch's timestamps)."""
    return float(int(t // period_s) * period_s)


class CloudWatchReader:
    """Reads the selected metrics of ``targets`` over a window, all pages."""

    def __init__(self, client: Any, targets: Targets, period_s: int = DEFAULT_PERIOD_S) -> None:
        self.client = client
        self.period_s = period_s
        self.metrics: tuple[tuple[MetricSpec, str], ...] = selected(targets)

    def groups(self) -> tuple[str, ...]:
        """The groups read, in catalogue order."""
        return tuple(dict.fromkeys(spec.group for spec, _ in self.metrics))

    def queries(self) -> list[dict[str, Any]]:
        """The ``MetricDataQueries`` (ids ``m0``, ``m1``, ... in catalogue order)."""
        return [{"Id": f"m{i}", "ReturnData": True,
                 "MetricStat": {"Metric": {"Namespace": spec.namespace, "MetricName": spec.name,
                                           "Dimensions": [{"Name": spec.dimension,
                                                           "Value": value}]},
                                "Period": self.period_s, "Stat": spec.stat}}
                for i, (spec, value) in enumerate(self.metrics)]

    def read(self, start_t: float, end_t: float) -> Reading:
        """Every data point in [start_t, end_t), following ``NextToken`` to the last page.

        When a batch is refused, each of its metrics is asked for alone, so one
        metric the service cannot serve (a statistic it rejects) is a gap with
        its reason in :attr:`Reading.errors`, not the loss of every series.
        Credentials refused still raise: no metric can be read then.
        """
        reading = Reading()
        queries = self.queries()
        by_id = {q["Id"]: spec for q, (spec, _) in zip(queries, self.metrics, strict=True)}
        for spec, _ in self.metrics:
            reading.points.setdefault((spec.group, spec.series_key), {})
        start = datetime.fromtimestamp(floor_to(start_t, self.period_s), UTC)
        end = datetime.fromtimestamp(max(end_t, start.timestamp() + self.period_s), UTC)
        for first in range(0, len(queries), MAX_QUERIES):
            batch = queries[first:first + MAX_QUERIES]
            try:
                self._read_pages(batch, start, end, by_id, reading)
            except Exception as exc:
                if credentials_refused(exc) or len(batch) == 1:
                    raise
                for query in batch:
                    spec = by_id[query["Id"]]
                    try:
                        self._read_pages([query], start, end, by_id, reading)
                    except Exception as one:
                        if credentials_refused(one):
                            raise
                        reading.errors[(spec.group, spec.series_key)] = (
                            " ".join(str(one).split())[:200])
        return reading

    def _read_pages(self, batch: list[dict[str, Any]], start: datetime, end: datetime,
                    by_id: dict[str, MetricSpec], reading: Reading) -> None:
        """One batch of queries, every page (``NextToken``), merged into ``reading``."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MetricDataQueries": batch, "StartTime": start,
                                      "EndTime": end, "ScanBy": "TimestampAscending"}
            if token:
                kwargs["NextToken"] = token
            page = self.client.get_metric_data(**kwargs)
            reading.calls += 1
            for result in page.get("MetricDataResults", []):
                found = by_id.get(result.get("Id", ""))
                if found is None:
                    continue
                series = reading.points[(found.group, found.series_key)]
                for ts, value in zip(result.get("Timestamps", []), result.get("Values", []),
                                     strict=False):
                    series[_epoch(ts)] = float(value)
            token = page.get("NextToken")
            if not token:
                return


#: Error codes that mean the credentials, not one query, were refused.
CREDENTIAL_ERROR_CODES = frozenset({"InvalidClientTokenId", "UnrecognizedClientException",
                                    "SignatureDoesNotMatch", "ExpiredToken",
                                    "ExpiredTokenException", "AccessDenied",
                                    "AccessDeniedException", "AuthFailure"})


def credentials_refused(exc: BaseException) -> bool:
    """Whether a botocore error says the credentials (not the request) were refused."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError")
    return str(response.get("Error", {}).get("Code", "")) in CREDENTIAL_ERROR_CODES


def rows(reading: Reading, groups: Iterable[str], start_t: float, end_t: float,
         period_s: int) -> list[tuple[float, str, dict[str, Any]]]:
    """``(t, group, values)`` for every period of the window and every group read.

    Every period gets a row, so a minute without data shows as a gap (its keys
    absent) instead of the line jumping over it.
    """
    out: list[tuple[float, str, dict[str, Any]]] = []
    t = floor_to(start_t, period_s)
    while t < end_t:
        for group in groups:
            values: dict[str, Any] = {"ok": True, "source": SOURCE, "period_s": period_s}
            for (g, key), series in reading.points.items():
                if g == group and t in series:
                    values[key] = series[t]
            out.append((t, group, values))
        t += period_s
    return out


def write_rows(writer: SampleWriter, reading: Reading, groups: Iterable[str], start_t: float,
               end_t: float, period_s: int) -> int:
    """Append the reading's rows to ``samples.jsonl``; returns how many were written."""
    written = 0
    for t, group, values in rows(reading, tuple(groups), start_t, end_t, period_s):
        writer.write(group, values, t=t)
        written += 1
    return written


def complete(reading: Reading, end_t: float, period_s: int) -> tuple[int, int]:
    """(series whose last minute has arrived, series with any data at all).

    A series that has data but not yet for the minute holding ``end_t`` is still
    being ingested; one with no data at all (no provisioned concurrency, hence
    no spillover) will never have any and is not waited for.
    """
    last = floor_to(end_t - 1, period_s)
    with_data = [s for s in reading.points.values() if s]
    done = sum(1 for s in with_data if max(s) >= last)
    return done, len(with_data)


def wait_for_last_points(reader: CloudWatchReader, start_t: float, end_t: float,
                         wait_s: float, *, poll_s: float = 15.0,
                         on_tick: Callable[[float, int, int], None] | None = None) -> Reading:
    """Read until every series with data has its last minute, or ``wait_s`` runs out.

    ``on_tick(seconds_left, complete, with_data)`` is called after each read:
    the visible countdown.
    """
    deadline = time.monotonic() + wait_s
    while True:
        reading = reader.read(start_t, end_t)
        done, total = complete(reading, end_t, reader.period_s)
        left = max(0.0, deadline - time.monotonic())
        if on_tick is not None:
            on_tick(left, done, total)
        if (total and done >= total) or left <= 0:
            return reading
        time.sleep(min(poll_s, left))


class CloudWatchPoller(Resource):
    """Reads the window so far every ``poll_s`` in a thread; the live view shows ``latest``.

    A failed read (throttled, network) is logged and tried again next time: the
    live figures are a convenience, the final reading after the load is what
    the run folder keeps.
    """

    def __init__(self, reader: CloudWatchReader, start_t: float, poll_s: float = 30.0,
                 on_reading: Callable[[Reading], None] | None = None) -> None:
        self.reader = reader
        self.start_t = start_t
        self.poll_s = poll_s
        self.on_reading = on_reading
        self.latest: Reading | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                reading = self.reader.read(self.start_t, time.time())
            except Exception as exc:  # a failed poll must not end the run
                self.error = " ".join(str(exc).split())[:200]
                log.warning("CloudWatch poll failed: %s", self.error)
            else:
                self.latest, self.error = reading, None
                if self.on_reading is not None:
                    self.on_reading(reading)
            self._stop.wait(self.poll_s)

    def start(self) -> None:
        """Start polling (first read at once)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cloudwatch-poller",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for a read in flight."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
