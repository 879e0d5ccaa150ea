"""Lambda's ``REPORT`` log line, parsed: durations, memory, cold start, timeout.

Lambda writes one per invocation to the function's log stream::

    REPORT RequestId: 8f507cfc-...\tDuration: 15.74 ms\tBilled Duration: 16 ms\t
    Memory Size: 128 MB\tMax Memory Used: 56 MB\tInit Duration: 130.49 ms\t...

Fields are separated by tabs in CloudWatch (some copies have spaces); ``Init
Duration`` appears only on a cold start's first invocation; ``Status: timeout``
(and ``Error Type``) when the platform ended the invocation; X-Ray fields may
follow. The emulator writes the same line (``local_stack/lambda_/log_stream.py``)
and the tests hold both to this parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(
    r"(?P<name>RequestId|Duration|Billed Duration|Memory Size|Max Memory Used|Init Duration|"
    r"Status|Error Type):\s*(?P<value>[^\t]+?)(?=\s+(?:Billed Duration|Duration|Memory Size|"
    r"Max Memory Used|Init Duration|Status|Error Type|XRAY TraceId|SegmentId|Sampled|"
    r"Restore Duration|Billed Restore Duration):|\t|\s*$)")
_NUMBER = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(?:ms|MB)?$")


@dataclass(frozen=True)
class ReportLine:
    """The figures of one REPORT line."""

    request_id: str
    duration_ms: float
    billed_duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: str | None = None
    error_type: str | None = None

    @property
    def cold_start(self) -> bool:
        """An invocation that paid for Init (its line shows ``Init Duration``)."""
        return self.init_duration_ms is not None

    @property
    def timed_out(self) -> bool:
        """The platform stopped it at the function's timeout."""
        return (self.status or "").lower() == "timeout"


def _number(text: str | None) -> float | None:
    match = _NUMBER.match((text or "").strip())
    return float(match.group(1)) if match else None


def parse_report_line(message: str) -> ReportLine | None:
    """The :class:`ReportLine` of a log message, or None when it is not a REPORT line."""
    text = message.strip()
    if not text.startswith("REPORT RequestId:"):
        return None
    fields = {m["name"]: m["value"].strip() for m in _FIELD.finditer(text[len("REPORT "):])}
    duration = _number(fields.get("Duration"))
    billed = _number(fields.get("Billed Duration"))
    size = _number(fields.get("Memory Size"))
    used = _number(fields.get("Max Memory Used"))
    if duration is None or billed is None or size is None or used is None:
        return None
    return ReportLine(request_id=fields.get("RequestId", ""), duration_ms=duration,
                      billed_duration_ms=billed, memory_size_mb=int(size),
                      max_memory_used_mb=int(used),
                      init_duration_ms=_number(fields.get("Init Duration")),
                      status=fields.get("Status"), error_type=fields.get("Error Type"))
