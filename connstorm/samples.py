"""The samples time series: ``samples.jsonl`` in the run folder.

Every collector appends one JSON object per tick through a shared
:class:`SampleWriter`, and readers (the live terminal view, the web UI's chart
route, the summary) read the file back with :func:`read_samples`. One file, one
row per line, so a crash mid-run loses at most the line being written and a
reader can follow it while it grows. Columns are documented in
``docs/run-folder.md``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

Row = dict[str, Any]


class SampleWriter:
    """Appends rows to ``samples.jsonl``; safe to share between collectors.

    Each row is written with one ``write`` call and flushed, so concurrent
    readers never see half a row except at the very end of the file (which
    :func:`read_samples` skips). ``started_at`` anchors ``elapsed_s``.
    """

    def __init__(self, path: Path, started_at: float | None = None) -> None:
        self.path = path
        self.started_at = time.time() if started_at is None else started_at
        self._lock = threading.Lock()
        self._file: Any = None

    def open(self) -> None:
        """Open the file for appending (created if missing)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        """Close the file; further writes are dropped."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> SampleWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, collector: str, values: Mapping[str, Any], *, t: float | None = None) -> Row:
        """Append one row: ``t``, ``elapsed_s`` and ``collector`` first, then ``values``."""
        now = time.time() if t is None else t
        row: Row = {"t": round(now, 3), "elapsed_s": round(now - self.started_at, 3),
                    "collector": collector}
        row.update(values)
        line = json.dumps(row, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()
        return row


def read_samples(path: Path, *, since_t: float | None = None) -> list[Row]:
    """All complete rows of a samples file (newer than ``since_t`` if given).

    A missing file is an empty series: the run may not have sampled yet. A
    truncated last line (the writer is mid-write) is skipped.
    """
    return list(iter_samples(path, since_t=since_t))


def iter_samples(path: Path, *, since_t: float | None = None) -> Iterator[Row]:
    """Rows of a samples file, one at a time, in file order."""
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and (since_t is None or row.get("t", 0) > since_t):
                yield row


def tail_samples(path: Path, max_bytes: int = 65536) -> list[Row]:
    """The rows in the last ``max_bytes`` of the file: cheap for a live view."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return []
    with path.open("rb") as handle:
        handle.seek(max(0, size - max_bytes))
        data = handle.read()
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line is probably cut
    rows: list[Row] = []
    for line in lines[:-1]:  # the last piece has no newline yet (or is empty)
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def latest_by_collector(rows: list[Row]) -> dict[str, Row]:
    """The newest row of each collector (gap rows included)."""
    latest: dict[str, Row] = {}
    for row in rows:
        latest[str(row.get("collector"))] = row
    return latest


class SampleFollower:
    """Follows a growing samples file, keeping the newest row of each collector.

    For readers that ask "what is it now?" many times during a run (the metrics
    endpoint): each :meth:`poll` reads only the bytes written since the last one,
    so a long run costs a scrape no more than a short one, and a large row (a
    ``db_by_app`` of a thousand environments) is never cut as a fixed tail would
    cut it. A half-written last line waits for the next poll. Safe to share
    between threads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._latest: dict[str, Row] = {}
        self._lock = threading.Lock()

    def poll(self) -> dict[str, Row]:
        """The newest row of each collector so far (a copy); empty before the file exists."""
        with self._lock:
            try:
                handle = self.path.open("rb")
            except FileNotFoundError:
                return dict(self._latest)
            with handle:
                if os.fstat(handle.fileno()).st_size < self._offset:
                    # A new file under the same name: start over.
                    self._offset, self._partial, self._latest = 0, b"", {}
                handle.seek(self._offset)
                data = handle.read()
            self._offset += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(row, dict):
                    self._latest[str(row.get("collector"))] = row
            return dict(self._latest)
