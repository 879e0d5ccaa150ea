"""``invocations.jsonl``: one JSON object per invocation, written in batches.

Keys are a contract (``docs/run-folder.md``): ``t, request_id, function, env_id,
cold, init_ms, duration_ms, outcome, error_type, error_message, error_kind``.
Records are buffered and appended every ``flush_interval_s`` (or when the
buffer is full), never fsynced one by one: at thousands of invocations per
second a write per record would cost more than the invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import orjson

from connstorm.error_kinds import classify_message
from connstorm.local_stack.lambda_.invocation import InvocationResult

log = logging.getLogger(__name__)


def error_kind(result: InvocationResult) -> str | None:
    """Classify an error by its type and message together.

    The message alone misses ``Runtime.ImportModuleError`` (its message is
    "Unable to import module ..."), the type alone misses a psycopg "too many
    clients already" inside a handler; the classifier's ordered substrings pick
    the database cause first when both are present.
    """
    if result.outcome == "success":
        return None
    if result.outcome == "throttled":
        return classify_message(f"TooManyRequestsException {result.throttle_reason}")
    return classify_message(f"{result.error_type or ''}: {result.error_message or ''}")


def make_record(function: str, result: InvocationResult) -> dict[str, Any]:
    """The ``invocations.jsonl`` row for one finished invocation."""
    return {
        "t": round(time.time(), 6),
        "request_id": result.request_id,
        "function": function,
        "env_id": result.env_id,
        "cold": result.cold,
        "init_ms": None if result.init_ms is None else round(result.init_ms, 3),
        "duration_ms": None if result.duration_ms is None else round(result.duration_ms, 3),
        "outcome": result.outcome,
        "error_type": result.error_type if result.outcome != "throttled" else (
            "TooManyRequestsException"),
        "error_message": result.error_message if result.outcome != "throttled" else (
            result.throttle_reason),
        "error_kind": error_kind(result),
    }


class InvocationLog:
    """Appends records to ``invocations.jsonl`` in batches; ``close()`` flushes the rest."""

    def __init__(self, path: str | Path, *, flush_interval_s: float = 0.25,
                 max_buffered: int = 2000) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self._buf: list[bytes] = []
        self._file = self.path.open("ab")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the periodic flush (needs a running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    def add(self, record: dict[str, Any]) -> None:
        """Buffer one record."""
        self._buf.append(orjson.dumps(record))
        if len(self._buf) >= self.max_buffered:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (one write call)."""
        if not self._buf:
            return
        data = b"\n".join(self._buf) + b"\n"
        self._buf.clear()
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            log.error("cannot write %s: %s", self.path, exc)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self.flush()

    def close(self) -> None:
        """Flush and close."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.flush()
        with contextlib.suppress(OSError):
            self._file.close()
