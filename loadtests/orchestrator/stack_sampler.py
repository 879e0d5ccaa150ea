"""The stack's collectors outside Locust: ``connstorm up --metrics-port`` samples its stack.

``connstorm run`` and ``ui`` sample inside Locust's master (the plugin), where
the load is. ``connstorm up`` starts no Locust, so when it is asked for a
metrics endpoint it runs the same collectors itself (PostgreSQL, PgBouncer, the
RDS Proxy stand-in, the emulator: :func:`~connstorm.loadtests.locust_plugin.
collectors.stack_targets.stack_collectors`) as real threads, writing the run
folder's ``samples.jsonl`` and ``collectors.json`` exactly as a run does, and
the endpoint follows that file. The collectors import no Locust, so the
orchestrator may run them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.loadtests.locust_plugin.collectors.stack_targets import stack_collectors
from connstorm.local_stack.resource import Resource
from connstorm.run_folder import COLLECTORS_FILE, SAMPLES_FILE
from connstorm.samples import SampleWriter


class StackSampler(Resource):
    """Samples a running stack into ``run_dir/samples.jsonl`` until stopped.

    >>> with Stack(scenario, run_dir) as stack, StackSampler(run_dir, stack.info(), 1.0):
    ...     ...  # a row per collector per second
    """

    def __init__(self, run_dir: Path, stack_info: Mapping[str, Any], interval_s: float) -> None:
        self.run_dir = run_dir
        self.stack_info = stack_info
        self.interval_s = interval_s
        self.collectors: list[Collector] = []
        self.skipped: dict[str, str] = {}
        self._writer: SampleWriter | None = None

    def start(self) -> None:
        """Open the samples file and start one collector per target of the stack."""
        self._writer = SampleWriter(self.run_dir / SAMPLES_FILE)
        self._writer.open()
        self.collectors, self.skipped = stack_collectors(self._writer, self.stack_info,
                                                         interval_s=self.interval_s)
        (self.run_dir / COLLECTORS_FILE).write_text(json.dumps(
            {"running": [c.name for c in self.collectors], "skipped": self.skipped,
             "sample_interval_s": self.interval_s}, indent=2) + "\n", encoding="utf-8")
        for collector in self.collectors:
            collector.start()

    def stop(self) -> None:
        """Stop every collector, then close the file; safe twice."""
        for collector in self.collectors:
            collector.stop()
        self.collectors = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
