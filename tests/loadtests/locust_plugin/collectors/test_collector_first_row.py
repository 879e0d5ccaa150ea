"""A collector's first row marks the run's "before": the load may wait for it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter


class GatedCollector(Collector):
    """Samples only once the test opens its gate (a slow first connection)."""

    name = "gated"

    def __init__(self, writer: SampleWriter, fail: bool = False) -> None:
        super().__init__(writer, interval_s=0.05)
        self.gate = threading.Event()
        self.fail = fail

    def sample(self) -> dict[str, Any]:
        self.gate.wait(5)
        if self.fail:
            raise ConnectionError("refused")
        return {"value": 1}


def test_wait_first_row_returns_only_once_a_row_is_written(tmp_path: Path) -> None:
    with SampleWriter(tmp_path / "samples.jsonl") as writer, GatedCollector(writer) as collector:
        # WHILE the first sample is still connecting, the wait times out
        assert collector.wait_first_row(0.1) is False
        assert collector.latest is None
        # WHEN it answers, the wait ends with its row written
        collector.gate.set()
        assert collector.wait_first_row(5) is True
        assert collector.latest is not None
        assert collector.latest["ok"] is True


def test_a_failed_first_sample_also_ends_the_wait(tmp_path: Path) -> None:
    with SampleWriter(tmp_path / "samples.jsonl") as writer, \
            GatedCollector(writer, fail=True) as collector:
        collector.gate.set()
        # A target that refuses is a gap row, and the load need not wait for it any longer
        assert collector.wait_first_row(5) is True
        assert collector.latest is not None
        assert collector.latest["ok"] is False
