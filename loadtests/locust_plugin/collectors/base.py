"""What every collector shares: a sampling loop on a fixed interval, gap rows, start/stop.

A collector reads one target (PostgreSQL, PgBouncer, the emulator, Locust's
stats) once per ``interval_s`` and appends one row to ``samples.jsonl``. When
the target cannot be read, the loop does not die: it writes an ``ok: false`` row
saying why, so the time series shows the gap, and tries again next tick.

The loop runs in a ``threading.Thread``. Inside Locust, ``threading`` is
monkey-patched by gevent, so the same code runs as a greenlet there and as a
real thread in the benchmark and in tests.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from connstorm.local_stack.resource import Resource
from connstorm.samples import Row, SampleWriter

log = logging.getLogger(__name__)

#: A sample running longer than this (or two intervals) is a stall: gap rows meanwhile.
STALLED_AFTER_S = 2.0


def one_line(exc: BaseException) -> str:
    """An exception as one short line, for a gap row's ``error``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class Collector(ABC, Resource):
    """Base of the collectors; subclasses implement :meth:`sample` (and :meth:`close_target`).

    >>> with SampleWriter(path) as writer, PostgresCollector(writer, dsn) as c:
    ...     ...  # rows appear in path every second until the block ends
    """

    #: The ``collector`` column of this collector's rows.
    name: str = "collector"

    def __init__(self, writer: SampleWriter, interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.writer = writer
        self.interval_s = interval_s
        #: The newest row written (a gap row included), for live views.
        self.latest: Row | None = None
        self.ticks = 0
        self.gaps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._busy_since: float | None = None
        self._first_row = threading.Event()

    @abstractmethod
    def sample(self) -> dict[str, Any]:
        """Read the target once; raise on failure (the row becomes a gap)."""

    def close_target(self) -> None:
        """Drop any connection to the target; called on stop and after a failure."""

    def tick(self) -> Row:
        """Take one sample now and write its row (a gap row when the target fails)."""
        try:
            values = self.sample()
        except Exception as exc:  # any failure of the target is a gap, never the end
            self.gaps += 1
            log.debug("%s: sample failed: %s", self.name, exc)
            self.close_target()
            row = self.writer.write(self.name, {"ok": False, "error": one_line(exc)})
        else:
            row = self.writer.write(self.name, {"ok": True, **values})
        self.ticks += 1
        self.latest = row
        return row

    def _loop(self) -> None:
        # A fixed schedule (not "sleep interval after each sample") keeps one row
        # per interval even when a sample is slow; missed ticks are skipped.
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._busy_since = time.monotonic()
            try:
                self.tick()
            except Exception:  # a bug in a collector must not end the run
                log.exception("%s: collector tick failed", self.name)
            finally:
                self._busy_since = None
                self._first_row.set()
            next_at += self.interval_s
            now = time.monotonic()
            if next_at < now:
                next_at = now + self.interval_s - ((now - next_at) % self.interval_s)
            self._stop.wait(next_at - now)

    def _watch(self) -> None:
        """Write a gap row for every interval a sample hangs (a frozen database).

        A query to a SIGSTOPped server neither answers nor fails: its kernel
        still acknowledges the packets, so no TCP timeout fires. The sample is
        left to finish by itself (closing its connection from another thread
        would be unsafe); meanwhile each interval gets an ``ok: false`` row, so
        the series shows the gap where it is.
        """
        stalled_after_s = max(2.0 * self.interval_s, STALLED_AFTER_S)
        while not self._stop.wait(self.interval_s):
            busy = self._busy_since
            if busy is not None and time.monotonic() - busy > stalled_after_s:
                self.gaps += 1
                self.latest = self.writer.write(self.name, {
                    "ok": False, "stalled": True,
                    "error": f"no answer for {time.monotonic() - busy:.0f} s"})

    def start(self) -> None:
        """Start sampling in the background (first sample at once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"collector-{self.name}",
                                        daemon=True)
        self._thread.start()
        self._watcher = threading.Thread(target=self._watch, name=f"watch-{self.name}",
                                         daemon=True)
        self._watcher.start()

    def wait_first_row(self, timeout_s: float) -> bool:
        """Wait until the first sample (or gap row) is written; ``False`` on timeout.

        The first rows are the run's "before": what provisioned and already warm
        environments hold before a single request
        (``lambda_lifecycle.baseline_db_connections``). Started in a thread, the
        first sample of a busy machine could otherwise land after the first
        users' requests and count their connections too.
        """
        return self._first_row.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sampling, wait for the loop to end, and close the target."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._watcher is not None:
            self._watcher.join(timeout_s)
            self._watcher = None
        self.close_target()

