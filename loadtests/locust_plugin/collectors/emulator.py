"""Emulator collector: execution environments, concurrency and errors from the stats route.

The emulator answers ``GET stats_url`` with its counters as JSON. This collector
copies them into an ``emulator`` row under the names ``docs/run-folder.md``
documents, accepting both a flat document (``env_busy``, ``concurrency_peak``)
and a nested one (``environments: {busy}``, ``concurrency: {now, peak}``), so
the row's names stay fixed whichever way the emulator groups them.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from connstorm import metric_names as names
from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    return 0


def stats_to_row(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Map the emulator's stats document to the ``emulator`` row's columns."""
    envs = stats.get("environments")
    envs = envs if isinstance(envs, Mapping) else {}
    row: dict[str, Any] = {}
    for state in names.EMULATOR_ENV_STATES:
        row[f"env_{state}"] = _int(stats.get(f"env_{state}", envs.get(state, 0)))
    if not row[names.ENV_TOTAL]:
        row[names.ENV_TOTAL] = sum(row[f"env_{s}"] for s in ("initializing", "busy", "frozen",
                                                          "idle"))
    conc = stats.get(names.CONCURRENCY)
    if isinstance(conc, Mapping):
        row[names.CONCURRENCY] = _int(conc.get("now", conc.get("current", 0)))
        row[names.CONCURRENCY_PEAK] = _int(conc.get("peak", 0))
    else:
        row[names.CONCURRENCY] = _int(conc)
        row[names.CONCURRENCY_PEAK] = _int(stats.get(names.CONCURRENCY_PEAK, 0))
    for key in names.EMULATOR_COUNTERS + names.EMULATOR_LIFECYCLE + names.EMULATOR_VANISHED:
        row[key] = _int(stats.get(key, 0))
    kinds = stats.get(names.ERRORS_BY_KIND)
    row[names.ERRORS_BY_KIND] = ({str(k): _int(v) for k, v in kinds.items()}
                             if isinstance(kinds, Mapping) else {})
    return row


class EmulatorCollector(Collector):
    """Polls the emulator's stats route; see the ``emulator`` row in ``docs/run-folder.md``."""

    name = "emulator"

    def __init__(self, writer: SampleWriter, stats_url: str, *, interval_s: float = 1.0,
                 timeout_s: float = 3.0) -> None:
        super().__init__(writer, interval_s)
        self.stats_url = stats_url
        self.timeout_s = timeout_s

    def sample(self) -> dict[str, Any]:
        """One GET of the stats route."""
        with urllib.request.urlopen(self.stats_url, timeout=self.timeout_s) as response:
            doc = json.loads(response.read())
        if not isinstance(doc, Mapping):
            raise ValueError(f"stats route answered {type(doc).__name__}, not an object")
        return stats_to_row(doc)
