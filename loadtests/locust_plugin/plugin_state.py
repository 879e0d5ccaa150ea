"""What the Locust plugin started in its process, shared with the web UI routes.

Kept apart from ``loadtests/locust_plugin/plugin.py`` so that the web UI code and its tests
can use it without importing Locust (whose import monkey-patches the standard
library with gevent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.loadtests.locust_plugin.live_series import PoolerTraffic
from connstorm.samples import SampleWriter


@dataclass
class PluginState:
    """What the plugin started in this process; read by the web UI routes."""

    run_dir: Path | None = None
    writer: SampleWriter | None = None
    collectors: list[Collector] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    stack: dict[str, Any] = field(default_factory=dict)
    #: Whether PgBouncer has carried traffic, for the tab (it sees one row at a time).
    pooler_traffic: PoolerTraffic = field(default_factory=PoolerTraffic)

    def latest(self) -> dict[str, dict[str, Any]]:
        """The newest row of each running collector."""
        return {c.name: c.latest for c in self.collectors if c.latest is not None}
