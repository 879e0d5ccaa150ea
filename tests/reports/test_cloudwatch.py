"""The CloudWatch table of a live run's reports, from summary.json alone."""

from __future__ import annotations

from typing import Any

from connstorm.reports import cloudwatch, markdown

LIVE: dict[str, Any] = {
    "scenario": "ci-smoke", "passed": True, "thresholds": [],
    "variants": [{"name": "pgbouncer-module_level", "requests": 10, "failures": 0,
                  "cloudwatch": {
                      "source": "cloudwatch", "period_s": 60,
                      "metrics": {
                          "rds.DatabaseConnections": {"metric": "DatabaseConnections",
                                                      "stat": "Maximum", "unit": "Count",
                                                      "points": 3, "peak": 17.0, "total": None},
                          "lambda.Throttles": {"metric": "Throttles", "stat": "Sum",
                                               "unit": "Count", "points": 0, "peak": None,
                                               "total": None},
                          "lambda.Duration_p95": {"metric": "Duration", "stat": "p95",
                                                  "unit": "Milliseconds", "points": 0,
                                                  "peak": None, "total": None}},
                      "unreadable": {"lambda.Duration_p95": "500 from the service"}}}]}


def test_rows_say_peak_gap_or_why_unreadable() -> None:
    by_series = {r[1]: r for r in cloudwatch.rows(LIVE)}
    assert by_series["rds.DatabaseConnections"][5:7] == ["3", "17"]
    assert by_series["lambda.Throttles"][6] == "no data (a gap, not 0)"
    assert by_series["lambda.Duration_p95"][6] == "unreadable: 500 from the service"
    assert "one point per 60 s" in cloudwatch.caption(LIVE)


def test_local_runs_have_no_cloudwatch_table() -> None:
    local = {**LIVE, "variants": [{"name": "direct-module_level", "requests": 1}]}
    assert cloudwatch.rows(local) == []
    assert "## CloudWatch" not in markdown.render(local)
    text = markdown.render(LIVE)
    assert "## CloudWatch" in text
    assert "| pgbouncer-module_level | rds.DatabaseConnections | DatabaseConnections |" in text
