"""The article's alarms exist, each on the right metric, namespace, dimension and statistic."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.cfn import Resolved, load

#: alarm -> (namespace, metric, dimension name, the resource it names, statistic)
ALARMS = {
    "DbConnectionsHighAlarm": ("AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", "Db",
                               "Maximum"),
    "ProxyClientAuthFailedAlarm": ("AWS/RDS", "ClientConnectionsSetupFailedAuth", "ProxyName",
                                   "Proxy", "Sum"),
    "ProxyDbConnectionsFailedAlarm": ("AWS/RDS", "DatabaseConnectionsSetupFailed", "ProxyName",
                                      "Proxy", "Sum"),
    "FunctionErrorsAlarm": ("AWS/Lambda", "Errors", "FunctionName", "WorkloadFunction", "Sum"),
    "FunctionThrottlesAlarm": ("AWS/Lambda", "Throttles", "FunctionName", "WorkloadFunction",
                               "Sum"),
    "FunctionDurationLongAlarm": ("AWS/Lambda", "Duration", "FunctionName", "WorkloadFunction",
                                  "p95"),
}


def alarms() -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in Resolved(load()).resources().items()
            if res["Type"] == "AWS::CloudWatch::Alarm"}


def test_exactly_the_article_alarms_exist() -> None:
    assert set(alarms()) == set(ALARMS)


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_alarm_watches_the_right_metric(name: str) -> None:
    namespace, metric, dimension, resource, statistic = ALARMS[name]
    props = alarms()[name]
    assert props["Namespace"] == namespace
    assert props["MetricName"] == metric
    assert props["Dimensions"] == [{"Name": dimension, "Value": {"Ref": resource}}]
    assert props.get("Statistic", props.get("ExtendedStatistic")) == statistic
    assert props["Period"] == 60  # these metrics have one-minute resolution
    assert props["TreatMissingData"] == "notBreaching"  # an idle stack is not an alarm
    assert props["ComparisonOperator"].startswith("GreaterThan")


def test_thresholds_come_from_parameters_where_the_guide_says_so() -> None:
    template = load()
    props = alarms()
    assert props["DbConnectionsHighAlarm"]["Threshold"] == {"Ref": "DbConnectionsAlarmThreshold"}
    assert props["FunctionDurationLongAlarm"]["Threshold"] == {"Ref": "LongDurationMs"}
    assert props["FunctionErrorsAlarm"]["Threshold"] == {"Ref": "ErrorsAlarmThreshold"}
    # The connections threshold documents the guide's formula for max_connections.
    doc = template["Parameters"]["DbConnectionsAlarmThreshold"]["Description"]
    assert "LEAST(DBInstanceClassMemory / 9531392, 5000)" in doc
    # Its default is 80 % of db.t4g.micro's max_connections (the default class):
    # 1 GiB nominal, of which 88-97 % is DBInstanceClassMemory.
    assert template["Parameters"]["DbInstanceClass"]["Default"] == "db.t4g.micro"
    low, high = (int(f * 2**30 / 9531392) for f in (0.88, 0.97))
    assert 0.75 * low <= template["Parameters"]["DbConnectionsAlarmThreshold"]["Default"] \
        <= 0.85 * high
