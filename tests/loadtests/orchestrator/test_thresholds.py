"""Threshold verdicts: pure logic over summary variants."""

from __future__ import annotations

from connstorm.loadtests.orchestrator.thresholds import check_thresholds, describe, failed
from connstorm.scenario import ThresholdsConfig


def _variant(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"requests": 1000, "failures": 5, "p95_ms": 80.0, "p99_ms": 150.0,
                               "rps": 200.0, "peak_db_connections": 12,
                               "errors_by_kind": {"too_many_connections": 5}}
    base.update(kw)
    return base


def test_thresholds_all_pass_when_within_limits() -> None:
    cfg = ThresholdsConfig(max_fail_ratio=0.01, p95_ms=100, p99_ms=200, min_rps=100,
                           max_db_connections=20, max_errors={"too_many_connections": 10})
    verdicts = check_thresholds(cfg, [_variant()])
    assert [v["name"] for v in verdicts] == ["max_fail_ratio", "p95_ms", "p99_ms", "min_rps",
                                             "max_db_connections", "too_many_connections"]
    assert failed(verdicts) == []
    assert verdicts[0]["actual"] == 0.005


def test_thresholds_each_limit_fails_on_its_own() -> None:
    cfg = ThresholdsConfig(max_fail_ratio=0.001, p95_ms=50, p99_ms=100, min_rps=500,
                           max_db_connections=10, max_errors={"too_many_connections": 0})
    verdicts = check_thresholds(cfg, [_variant()])
    assert {v["name"] for v in failed(verdicts)} == {"max_fail_ratio", "p95_ms", "p99_ms",
                                                     "min_rps", "max_db_connections",
                                                     "too_many_connections"}


def test_thresholds_without_data_fail_instead_of_passing() -> None:
    cfg = ThresholdsConfig(max_fail_ratio=0.5, p95_ms=100, min_rps=1)
    verdicts = check_thresholds(cfg, [_variant(requests=0, failures=0, p95_ms=None, rps=None)])
    assert all(not v["passed"] and v["actual"] is None for v in verdicts)


def test_thresholds_error_kind_absent_counts_as_zero() -> None:
    cfg = ThresholdsConfig(max_errors={"pool_query_wait_timeout": 0})
    (verdict,) = check_thresholds(cfg, [_variant()])
    assert verdict == {"name": "pool_query_wait_timeout", "limit": 0, "actual": 0.0,
                       "passed": True}


def test_thresholds_sum_counts_and_take_worst_latency_over_variants() -> None:
    cfg = ThresholdsConfig(max_fail_ratio=0.01, p95_ms=100, max_errors={"too_many_connections": 6})
    verdicts = check_thresholds(cfg, [_variant(), _variant(failures=25, p95_ms=120.0)])
    by_name = {v["name"]: v for v in verdicts}
    assert by_name["max_fail_ratio"]["actual"] == 0.015
    assert by_name["p95_ms"]["actual"] == 120.0
    assert by_name["too_many_connections"]["actual"] == 10
    assert not any(v["passed"] for v in verdicts)


def test_threshold_describe_says_by_how_much() -> None:
    (verdict,) = check_thresholds(ThresholdsConfig(p95_ms=50), [_variant()])
    assert describe(verdict) == "p95_ms: 80 (limit <= 50) FAILED, off by 30"
    (verdict,) = check_thresholds(ThresholdsConfig(min_rps=100), [_variant()])
    assert describe(verdict) == "min_rps: 200 (limit >= 100) ok"
