"""Which CloudWatch metrics ``connstorm live`` reads, and the series each becomes.

One table, :data:`METRICS`, so that the collector, ``--dry-run``, the live view
and the report agree on names. A metric's *series* is written to
``samples.jsonl`` under the collector of its group (``lambda``, ``rds``,
``rds_proxy``, ``apigateway``) with the metric's own CloudWatch name as its key
(``Duration`` with a statistic gets a suffix: ``Duration_p95``). The RDS Proxy
stand-in of the local stack writes ``rds_proxy`` rows with the same keys, so a
local run and a live run chart the same series side by side; rows say where they
came from in ``source`` (``cloudwatch`` here) and ``period_s`` (their resolution).

Statistics follow what each metric means: gauges of connections take the
``Maximum`` of the minute (the peak is what exhausts ``max_connections``),
counters the ``Sum``, latencies the ``Average`` (RDS Proxy's latencies are in
microseconds, API Gateway's and Lambda's in milliseconds). RDS Proxy's gauges
are the exception: RDS publishes them once a minute for *each* instance that
serves the proxy ("a single proxy might be served by more than one" and "use
CloudWatch statistics to aggregate the values for a proxy across all the
associated instances"; "The most useful statistic for this metric is Sum";
AWS, "Monitoring RDS Proxy metrics with Amazon CloudWatch"), so their ``Sum``
over the minute is the proxy's total, where ``Maximum`` reports one instance. Names and units are
those AWS documents: RDS User Guide, "Monitoring RDS Proxy metrics with Amazon
CloudWatch" and "Amazon CloudWatch metrics for Amazon RDS"; Lambda Developer
Guide, "Types of metrics for Lambda functions"; API Gateway Developer Guide,
"Monitor CloudWatch metrics for HTTP APIs in API Gateway". The RDS Proxy names
are spelled once, in :mod:`connstorm.metric_names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connstorm import metric_names as names

#: Seconds of one CloudWatch data point for these metrics (standard resolution).
DEFAULT_PERIOD_S = 60

#: Each group: its collector name, namespace and the dimension naming the resource.
GROUPS: dict[str, tuple[str, str]] = {
    "lambda": ("AWS/Lambda", "FunctionName"),
    "rds": ("AWS/RDS", "DBInstanceIdentifier"),
    "rds_proxy": ("AWS/RDS", "ProxyName"),
    # HTTP APIs publish 4xx, 5xx, Count, Latency, IntegrationLatency under AWS/ApiGateway
    # with dimension ApiId (REST APIs name theirs 4XXError/5XXError, by ApiName).
    "apigateway": ("AWS/ApiGateway", "ApiId"),
}


@dataclass(frozen=True)
class MetricSpec:
    """One CloudWatch metric read with one statistic, and the series key it fills."""

    group: str
    name: str
    stat: str
    unit: str
    #: The key in the group's samples rows (the metric name, or name_stat).
    key: str = ""

    @property
    def namespace(self) -> str:
        """CloudWatch namespace of the metric."""
        return GROUPS[self.group][0]

    @property
    def dimension(self) -> str:
        """The dimension that names the resource (FunctionName, ProxyName, ...)."""
        return GROUPS[self.group][1]

    @property
    def series_key(self) -> str:
        """The key of this metric's values in the group's rows."""
        return self.key or self.name

    @property
    def label(self) -> str:
        """``namespace name stat (unit)`` for --dry-run and the report."""
        return f"{self.namespace} {self.name} {self.stat} ({self.unit}) by {self.dimension}"


def _m(group: str, name: str, stat: str, unit: str, key: str = "") -> MetricSpec:
    return MetricSpec(group, name, stat, unit, key)


METRICS: tuple[MetricSpec, ...] = (
    _m("lambda", "ConcurrentExecutions", "Maximum", "Count"),
    _m("lambda", "Invocations", "Sum", "Count"),
    _m("lambda", "Errors", "Sum", "Count"),
    _m("lambda", "Throttles", "Sum", "Count"),
    _m("lambda", "Duration", "p50", "Milliseconds", "Duration_p50"),
    _m("lambda", "Duration", "p95", "Milliseconds", "Duration_p95"),
    _m("lambda", "Duration", "Maximum", "Milliseconds", "Duration_max"),
    _m("lambda", "ProvisionedConcurrencySpilloverInvocations", "Sum", "Count"),
    _m("rds", "DatabaseConnections", "Maximum", "Count"),
    _m("rds", "CPUUtilization", "Average", "Percent"),
    _m("rds", "FreeableMemory", "Minimum", "Bytes"),
    _m("rds_proxy", names.CLIENT_CONNECTIONS, "Sum", "Count"),
    _m("rds_proxy", names.DATABASE_CONNECTIONS, "Sum", "Count"),
    _m("rds_proxy", names.DATABASE_CONNECTIONS_BORROWED, "Sum", "Count"),
    _m("rds_proxy", names.DATABASE_CONNECTIONS_PINNED, "Sum", "Count"),
    _m("rds_proxy", names.BORROW_LATENCY, "Average", "Microseconds"),
    _m("rds_proxy", names.QUERY_DATABASE_RESPONSE_LATENCY, "Average", "Microseconds"),
    _m("rds_proxy", names.SETUP_FAILED_AUTH, "Sum", "Count"),
    _m("rds_proxy", names.DATABASE_SETUP_FAILED, "Sum", "Count"),
    _m("apigateway", "4xx", "Sum", "Count"),
    _m("apigateway", "5xx", "Sum", "Count"),
    _m("apigateway", "Latency", "Average", "Milliseconds"),
    _m("apigateway", "IntegrationLatency", "Average", "Milliseconds"),
    _m("apigateway", "Count", "Sum", "Count"),
)


@dataclass(frozen=True)
class Targets:
    """The resources whose metrics are read; ``None`` skips that group."""

    function_name: str | None = None
    db_instance_id: str | None = None
    proxy_name: str | None = None
    api_id: str | None = None

    def by_group(self) -> Mapping[str, str | None]:
        """Group name -> the dimension value for it."""
        return {"lambda": self.function_name, "rds": self.db_instance_id,
                "rds_proxy": self.proxy_name, "apigateway": self.api_id}


def selected(targets: Targets) -> tuple[tuple[MetricSpec, str], ...]:
    """Every metric of :data:`METRICS` whose resource is known, with its dimension value."""
    values = targets.by_group()
    return tuple((spec, value) for spec in METRICS
                 if (value := values.get(spec.group)))


def api_id_of(url: str) -> str | None:
    """The API id of an ``https://ID.execute-api.REGION.amazonaws.com`` URL, else None."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if ".execute-api." in host:
        return host.split(".", 1)[0]
    return None
