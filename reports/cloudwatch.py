"""What the renderers show of a live run's CloudWatch reading: one row per metric.

summary.json's ``variants[].cloudwatch`` (``loadtests/orchestrator/live_summary.py``) keeps,
for each metric read, its statistic, unit, how many one-minute points arrived
and the peak; metrics without a point and those the service refused are listed
too, so the reader sees what is missing instead of a silent zero. A local run
has no such section and no table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connstorm.reports.verdicts import DASH, fmt, variants

#: Headings of the CloudWatch table (markdown and HTML).
HEADINGS = ("variant", "series", "metric", "stat", "unit", "points", "peak", "total")


def section(variant: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The variant's ``cloudwatch`` section, if it is a live run's."""
    raw = variant.get("cloudwatch")
    return raw if isinstance(raw, Mapping) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def rows(summary: Mapping[str, Any] | None) -> list[list[str]]:
    """One row per metric of every live variant (none for a local run)."""
    out: list[list[str]] = []
    for entry in variants(summary):
        cw = section(entry)
        if cw is None:
            continue
        unreadable = _mapping(cw.get("unreadable"))
        metrics = _mapping(cw.get("metrics"))
        for key, m in metrics.items():
            if not isinstance(m, Mapping):
                continue
            points = m.get("points") or 0
            if key in unreadable:
                peak = f"unreadable: {unreadable[key]}"
            else:
                peak = fmt(m.get("peak"), 3) if points else "no data (a gap, not 0)"
            out.append([str(entry.get("name", "")), str(key), str(m.get("metric", "")),
                        str(m.get("stat", "")), str(m.get("unit", "")), str(points), peak,
                        fmt(m.get("total"), 3) if m.get("total") is not None else DASH])
    return out


def caption(summary: Mapping[str, Any] | None) -> str:
    """One sentence on resolution and delay, for above the table."""
    periods = {str((section(e) or {}).get("period_s")) for e in variants(summary)
               if section(e) is not None}
    period = ", ".join(sorted(periods)) or "60"
    return (f"From CloudWatch: one point per {period} s, stamped with the start of its "
            "period, read after the load and a bounded wait for late points; a period "
            "without a point is a gap.")
