"""The timeline runner: fires a scenario's ``[[timeline]]`` actions during a load run.

``connstorm run`` (and so each variant of ``connstorm repro``) starts one beside
Locust when the scenario has a timeline and the stack is local. Each action
fires at its ``at_s``, counted on the same clock as the samples' ``elapsed_s``:
the Locust plugin's sample writer starts when Locust starts the load, and the
runner reads that instant from the first row of ``samples.jsonl`` (``t -
elapsed_s``), so an action drawn on the report's time axis sits exactly where
it fired. (Headless, Locust starts the load at once; in ``connstorm ui`` the
clock starts when Locust does, not when the load is started from the page.)

Every action runs in a thread of its own (a freeze lasts its ``seconds``; an
action due meanwhile still fires on time), through
:class:`connstorm.local_stack.faults.Faults`, and leaves two rows in ``samples.jsonl``
with ``collector = "timeline"``: ``event = "start"`` when it fires and
``event = "end"`` when it is done, with its ``result`` or the ``error`` that
stopped it (a failed action does not end the run: the run is there to see
what happens). The collectors run in the Locust process and never wait for an
action, so they keep sampling through the fault; a target that cannot be read
meanwhile is an ``ok: false`` gap row, as always.

Stopping the runner (end of the load, Ctrl-C) sets an event that ends lasting
actions early; they undo themselves (a frozen database is continued).

>>> with TimelineRunner(scenario.timeline, Faults(stack), run_dir / SAMPLES_FILE):
...     ...  # Locust runs; the actions fire
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connstorm.local_stack.faults import Faults, TimelineEntry
from connstorm.local_stack.resource import Resource
from connstorm.samples import SampleWriter, iter_samples

log = logging.getLogger(__name__)

COLLECTOR = "timeline"
#: How long to wait for the first sample (Locust's start) before giving up on the timeline.
ANCHOR_TIMEOUT_S = 120.0


def entry_fields(index: int, entry: TimelineEntry) -> dict[str, Any]:
    """What every row of an action carries: its place in the timeline and its arguments."""
    fields: dict[str, Any] = {"index": index, "action": entry.action,
                              "at_s": float(entry.at_s)}
    for name in ("target", "count", "seconds", "ms", "mode"):
        value = getattr(entry, name, None)
        if value is not None:
            fields[name] = value
    return fields


def load_started_at(samples: Path) -> float | None:
    """Unix time the samples' ``elapsed_s`` counts from, once the first row exists."""
    for row in iter_samples(samples):
        t, elapsed = row.get("t"), row.get("elapsed_s")
        if isinstance(t, int | float) and isinstance(elapsed, int | float):
            return float(t) - float(elapsed)
    return None


class TimelineRunner(Resource):
    """Fires ``entries`` against ``faults`` at their ``at_s``; see the module docstring."""

    def __init__(self, entries: Sequence[TimelineEntry], faults: Faults, samples: Path, *,
                 anchor_timeout_s: float = ANCHOR_TIMEOUT_S) -> None:
        self.entries = list(entries)
        self.faults = faults
        self.samples = samples
        self.anchor_timeout_s = anchor_timeout_s
        self.started_at: float | None = None
        #: index -> what the action returned (or the error), once it ended.
        self.results: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._actions: list[threading.Thread] = []
        self._writer: SampleWriter | None = None

    def start(self) -> None:
        """Start the scheduling thread; returns at once."""
        if self._thread is not None or not self.entries:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._schedule, name="timeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End lasting actions early, wait for every action to end, close the writer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        for thread in self._actions:
            # Restarts cannot be cut short, but are bounded (startup timeouts).
            thread.join(60)
        self._actions.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------ the schedule

    def _anchor(self) -> float | None:
        deadline = time.monotonic() + self.anchor_timeout_s
        while not self._stop.is_set():
            started = load_started_at(self.samples)
            if started is not None:
                return started
            if time.monotonic() > deadline:
                log.error("timeline: no samples after %g s; its actions are not fired",
                          self.anchor_timeout_s)
                return None
            self._stop.wait(0.1)
        return None

    def _schedule(self) -> None:
        started = self._anchor()
        if started is None:
            return
        self.started_at = started
        self._writer = SampleWriter(self.samples, started_at=started)
        self._writer.open()
        order = sorted(enumerate(self.entries), key=lambda item: float(item[1].at_s))
        for index, entry in order:
            due = started + float(entry.at_s)
            if self._stop.wait(max(0.0, due - time.time())):
                return
            thread = threading.Thread(target=self._fire, args=(index, entry),
                                      name=f"timeline-{entry.action}", daemon=True)
            self._actions.append(thread)
            thread.start()

    def _fire(self, index: int, entry: TimelineEntry) -> None:
        fields = entry_fields(index, entry)
        writer = self._writer
        assert writer is not None
        log.info("timeline: %s fires (at_s %g)", entry.action, fields["at_s"])
        writer.write(COLLECTOR, {"ok": True, "event": "start", **fields})
        started = time.monotonic()
        outcome: dict[str, Any]
        try:
            result = self.faults.apply(entry, self._stop)
            outcome = {"outcome": "done", "result": result}
        except Exception as exc:  # a failed action is recorded; the run goes on
            log.error("timeline: %s failed: %s", entry.action, exc)
            outcome = {"outcome": "failed", "error": " ".join(str(exc).split())[:300]}
        outcome["duration_s"] = round(time.monotonic() - started, 3)
        self.results[index] = outcome
        writer.write(COLLECTOR, {"ok": True, "event": "end", **fields, **outcome})
