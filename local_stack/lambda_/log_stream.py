"""The platform's lines in an environment's log stream, worded as Lambda writes them.

The runtime's own stdout/stderr go to the same file (``logs/lambda/<function>/
<env id>.log``); the emulator appends these around each invocation, so
``X-Amz-Log-Type: Tail`` returns what CloudWatch would show.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def start_line(request_id: str) -> str:
    """``START RequestId: ... Version: $LATEST``."""
    return f"START RequestId: {request_id} Version: $LATEST\n"


def end_lines(request_id: str, *, duration_ms: float, memory_mb: int, max_memory_mb: int,
              init_ms: float | None = None, status: str | None = None,
              error_type: str | None = None) -> str:
    """``END`` and ``REPORT`` (Init Duration on a cold start; Status on a platform error)."""
    report = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
              f"Billed Duration: {max(1, math.ceil(duration_ms))} ms\t"
              f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_memory_mb} MB\t")
    if init_ms is not None:
        report += f"Init Duration: {init_ms:.2f} ms\t"
    if status is not None:
        report += f"Status: {status}\tError Type: {error_type}\t"
    return f"END RequestId: {request_id}\n{report}\n"


def timeout_line(request_id: str, timeout_s: float) -> str:
    """``<timestamp> <id> Task timed out after X.XX seconds``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds\n"


def init_report_line(init_ms: float, status: str, error_type: str) -> str:
    """``INIT_REPORT`` for an Init that failed (``error``) or ran out of time (``timeout``)."""
    return (f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: {status}"
            f"\tError Type: {error_type}\n")
