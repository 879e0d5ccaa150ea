"""Where each collector's series came from, and at what resolution.

``summary.json`` lists it per variant (``series_sources``), so a reader comparing
a live run with a local one knows that ``rds.DatabaseConnections`` is a
one-minute CloudWatch maximum while ``postgres.db_total`` was sampled every
second: rows that carry no ``source`` are the local collectors' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connstorm.samples import Row


def series_sources(rows: Sequence[Row], local_interval_s: float | None = None
                   ) -> dict[str, dict[str, Any]]:
    """``{collector: {"source", "period_s"}}`` for every collector with rows."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = str(row.get("collector"))
        if name in out:
            continue
        out[name] = {"source": str(row.get("source") or "local"),
                     "period_s": row.get("period_s") or local_interval_s}
    return dict(sorted(out.items()))
