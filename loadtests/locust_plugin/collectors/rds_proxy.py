"""RDS Proxy collector: the stand-in's metrics, under RDS Proxy's CloudWatch names.

The stand-in (:mod:`connstorm.local_stack.rds_proxy`) serves a JSON snapshot at
``rds_proxy_metrics_url`` (``stack.json``). This collector copies it into an
``rds_proxy`` row whose keys are the CloudWatch metric names
(``ClientConnections``, ``DatabaseConnections``,
``DatabaseConnectionsCurrentlySessionPinned``, ...: the same keys the
``connstorm live`` CloudWatch collector writes, see
:mod:`connstorm.loadtests.orchestrator.cloudwatch_metrics`), so a local run and a live run chart the
same series. ``source`` is ``stand-in`` and ``period_s`` the sampling interval
(CloudWatch rows say ``cloudwatch`` and 60). Every number of the snapshot
(:data:`connstorm.metric_names.RDS_PROXY_SNAPSHOT`) is copied; cumulative
counters (``QueryRequests``, ``ClientConnectionsSetupFailedAuth``,
``BorrowTimeouts``, ``IdleClientsClosed``) as they are, and ``pin_reasons``
(reason -> ``{count, sample}``) too; reports take differences and the last value.

It reads over HTTP, so it works the same when the proxy runs in the stack's
process or in a process of its own; a proxy that does not answer (restarting,
gone) makes a gap row, as every collector does.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from connstorm import metric_names as names
from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.samples import SampleWriter


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value


def snapshot_to_row(snapshot: Mapping[str, Any], interval_s: float) -> dict[str, Any]:
    """The ``rds_proxy`` row's columns for one snapshot of the stand-in."""
    row: dict[str, Any] = {name: _number(snapshot.get(name))
                           for name in names.RDS_PROXY_SNAPSHOT}
    reasons = snapshot.get(names.PIN_REASONS)
    row[names.PIN_REASONS] = (
        {str(reason): {"count": int(_number(entry.get("count"))),
                       "sample": str(entry.get("sample", ""))}
         for reason, entry in reasons.items() if isinstance(entry, Mapping)}
        if isinstance(reasons, Mapping) else {})
    row["source"] = "stand-in"
    row["period_s"] = interval_s
    return row


class RdsProxyCollector(Collector):
    """Samples the RDS Proxy stand-in's metrics endpoint once per interval."""

    name = "rds_proxy"

    def __init__(self, writer: SampleWriter, metrics_url: str, *, interval_s: float = 1.0,
                 timeout_s: float = 3.0) -> None:
        super().__init__(writer, interval_s)
        if not metrics_url.startswith("http://127."):
            raise ValueError(f"the RDS Proxy stand-in's metrics are on loopback, "
                             f"not {metrics_url!r}")
        self.metrics_url = metrics_url
        self.timeout_s = timeout_s

    def sample(self) -> dict[str, Any]:
        """One read of the snapshot; raises (a gap row) when the proxy does not answer."""
        with urllib.request.urlopen(self.metrics_url, timeout=self.timeout_s) as response:
            snapshot = json.load(response)
        if not isinstance(snapshot, Mapping) or names.CLIENT_CONNECTIONS not in snapshot:
            raise ValueError("the metrics endpoint did not answer with a snapshot")
        return snapshot_to_row(snapshot, self.interval_s)
