"""Comparing a run with its baseline: each figure, what counts as worse, and the one line."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

from connstorm.loadtests.orchestrator.regression import (
    baseline_section,
    compare_variant,
    describe,
)
from connstorm.sections.thresholds import RegressionConfig

DEFAULTS = RegressionConfig()
#: Timings judged, as a team that runs on a quiet dedicated machine may choose.
TIMED = RegressionConfig(p95_pct=25, p99_pct=50, rps_pct=25)


def variant(**changes: Any) -> dict[str, Any]:
    """A variant entry of summary.json, as a local run through the RDS Proxy writes it."""
    entry: dict[str, Any] = {
        "name": "rds_proxy-module_level_resilient", "requests": 1000, "failures": 20,
        "errors_by_kind": {"proxy_borrow_timeout": 20}, "peak_db_connections": 9,
        "peak_proxy_database_connections": 8, "peak_pinned_connections": 0,
        "peak_environments": 60, "p95_ms": 120.0, "p99_ms": 400.0, "rps": 80.0,
        "pin_reasons": {}}
    entry.update(changes)
    return entry


def by_name(comparisons: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in comparisons}


def test_a_variant_compared_with_itself_passes_every_figure() -> None:
    found = compare_variant(variant(), copy.deepcopy(variant()), DEFAULTS)
    assert all(c["passed"] for c in found)
    # no proxy pin on either side: nothing to compare; the rest is compared
    assert set(by_name(found)) == {
        "peak_db_connections", "peak_proxy_database_connections", "peak_environments",
        "p95_ms", "p99_ms", "rps", "errors: proxy_borrow_timeout"}
    assert all(c["variant"] == "rds_proxy-module_level_resilient" for c in found)
    assert by_name(found)["peak_db_connections"]["line"] == (
        "rds_proxy-module_level_resilient: peak_db_connections 9, baseline 9: +0 % "
        "(allowed +10 %, ≤ 10) ok")


def test_peak_connections_30_percent_lower_in_the_baseline_is_a_regression() -> None:
    # GIVEN a baseline whose peak connections were 30 % lower (10 -> 7)
    found = by_name(compare_variant(variant(peak_db_connections=10),
                                    variant(peak_db_connections=7), DEFAULTS))
    peak = found["peak_db_connections"]
    # THEN 10 is more than the 10 % (rounded up to 8) allowed: one line says by how much
    assert peak["passed"] is False
    assert (peak["baseline"], peak["actual"], peak["limit"], peak["change_pct"]) == (
        7, 10, 8, 42.9)
    assert describe(peak) == (
        "rds_proxy-module_level_resilient: peak_db_connections 10, baseline 7: +42.9 % "
        "(allowed +10 %, ≤ 8) REGRESSION")
    # AND the other figures, unchanged, still pass
    assert [c["name"] for c in found.values() if not c["passed"]] == ["peak_db_connections"]


def test_whole_number_peaks_round_the_allowed_value_up() -> None:
    # 10 % of 7 is 7.7: 8 connections are allowed, 9 are not
    assert compare_variant(variant(peak_db_connections=8), variant(peak_db_connections=7),
                           DEFAULTS)[0]["passed"] is True
    assert compare_variant(variant(peak_db_connections=9), variant(peak_db_connections=7),
                           DEFAULTS)[0]["passed"] is False


def test_the_first_pinned_connection_and_a_new_pin_reason_are_regressions() -> None:
    reason = "SQL changed session settings that the proxy doesn't track."
    found = by_name(compare_variant(variant(peak_pinned_connections=3,
                                            pin_reasons={reason: 12}), variant(), DEFAULTS))
    pinned = found["peak_pinned_connections"]
    assert (pinned["passed"], pinned["limit"], pinned["change_pct"]) == (False, 0, None)
    assert pinned["line"].endswith("baseline 0: new (allowed +10 %, ≤ 0) REGRESSION")
    pin = found[f"new pin reason: {reason}"]
    assert pin["passed"] is False
    assert pin["line"] == (f"rds_proxy-module_level_resilient: new RDS Proxy pin reason "
                           f"\"{reason}\": 12 sessions, none in the baseline REGRESSION")
    # [thresholds.regression] new_pin_reasons = false lets a new reason through
    relaxed = RegressionConfig(new_pin_reasons=False)
    assert by_name(compare_variant(variant(pin_reasons={reason: 1}), variant(), relaxed))[
        f"new pin reason: {reason}"]["passed"] is True


def test_errors_compare_by_kind_new_kinds_and_shares_of_the_requests() -> None:
    current = variant(requests=2000, errors_by_kind={"proxy_borrow_timeout": 40,
                                                     "connection_lost": 3})
    found = by_name(compare_variant(current, variant(), DEFAULTS))
    # twice the requests, twice the timeouts: the same share, no regression
    same = found["errors: proxy_borrow_timeout"]
    assert (same["kind"], same["passed"], same["change_pct"]) == ("error_share", True, 0.0)
    new = found["errors: connection_lost"]
    assert (new["kind"], new["passed"]) == ("new_error_kind", False)
    assert new["line"] == ("rds_proxy-module_level_resilient: new error kind connection_lost: "
                           "3 failed requests, none in the baseline REGRESSION")
    worse = by_name(compare_variant(variant(errors_by_kind={"proxy_borrow_timeout": 31}),
                                    variant(), DEFAULTS))["errors: proxy_borrow_timeout"]
    assert worse["passed"] is False  # 2 % -> 3.1 %: +55 %, more than the 50 % allowed
    assert worse["line"] == (
        "rds_proxy-module_level_resilient: proxy_borrow_timeout errors 3.1 % of requests (31), "
        "baseline 2.0 % (20): +55 % (allowed +50 %) REGRESSION")
    # a kind gone is no regression
    assert by_name(compare_variant(variant(errors_by_kind={}), variant(), DEFAULTS))[
        "errors: proxy_borrow_timeout"]["passed"] is True


def test_timings_are_shown_but_not_judged_by_default() -> None:
    # GIVEN a run of the same code on a busy shared machine: the connection figures the
    # same, p95 and p99 up to 3x the baseline's and requests/s down by 30.6 % (what two
    # runs of ci-smoke a minute apart did in the QA pass: exit 6 on timing alone)
    current = variant(p95_ms=360.0, p99_ms=1200.0, rps=55.52)
    found = by_name(compare_variant(current, variant(), DEFAULTS))
    # THEN nothing fails: the timings are shown beside the baseline's, held to nothing
    assert all(c["passed"] for c in found.values())
    for name in ("p95_ms", "p99_ms", "rps"):
        assert (found[name]["judged"], found[name]["limit"], found[name]["tolerance_pct"]) == (
            False, None, None), name
    assert found["rps"]["change_pct"] == -30.6
    assert found["p95_ms"]["line"] == (
        "rds_proxy-module_level_resilient: p95_ms 360, baseline 120: +200 % (not judged: "
        "[thresholds.regression] p95_pct unset)")
    # AND the connection figures are judged as before
    assert "judged" not in found["peak_db_connections"]
    worse = by_name(compare_variant(variant(peak_db_connections=12, p95_ms=360.0), variant(),
                                    DEFAULTS))
    assert [c["name"] for c in worse.values() if not c["passed"]] == ["peak_db_connections"]


def test_a_timing_tolerance_set_judges_that_timing_alone() -> None:
    only_p95 = RegressionConfig(p95_pct=200)
    found = by_name(compare_variant(variant(p95_ms=400.0, p99_ms=4000.0, rps=8.0), variant(),
                                    only_p95))
    assert (found["p95_ms"]["passed"], found["p95_ms"]["limit"]) == (False, 360.0)
    assert found["p95_ms"]["line"].endswith("(allowed +200 %, ≤ 360) REGRESSION")
    assert found["p99_ms"]["passed"] is True
    assert found["rps"]["passed"] is True


def test_requests_per_second_may_not_fall_and_latency_may_not_rise() -> None:
    found = by_name(compare_variant(variant(rps=50.0, p95_ms=200.0), variant(), TIMED))
    assert found["rps"]["passed"] is False
    assert found["rps"]["line"] == ("rds_proxy-module_level_resilient: rps 50, baseline 80: "
                                    "-37.5 % (allowed -25 %, ≥ 60) REGRESSION")
    assert (found["p95_ms"]["passed"], found["p95_ms"]["limit"]) == (False, 150.0)
    assert found["p99_ms"]["passed"] is True
    # no requests, so no latency: a comparison that cannot be made is no pass
    lost = by_name(compare_variant(variant(p95_ms=None), variant(), TIMED))["p95_ms"]
    assert lost["passed"] is False
    assert lost["line"].endswith("p95_ms no data, baseline 120 REGRESSION")
    # a baseline without the figure holds the run to nothing
    unknown = by_name(compare_variant(variant(), variant(p99_ms=None), TIMED))["p99_ms"]
    assert unknown["passed"] is True


def test_tolerances_come_from_thresholds_regression() -> None:
    loose = RegressionConfig(peak_db_connections_pct=50)
    assert compare_variant(variant(peak_db_connections=10), variant(peak_db_connections=7),
                           loose)[0]["passed"] is True


def test_the_section_counts_regressions_per_variant() -> None:
    baseline = {"scenario": "direct-small", "schema_version": 1}
    bad = compare_variant(variant(peak_db_connections=10), variant(peak_db_connections=7),
                          DEFAULTS)
    good = compare_variant(variant(name="other"), variant(name="other"), DEFAULTS)
    section = baseline_section("runs/main", baseline, [("a", bad), ("other", good)],
                               copied_to="baseline")
    assert (section["path"], section["scenario"], section["schema_version"]) == (
        "runs/main", "direct-small", 1)
    assert (section["passed"], section["regressions"]) == (False, 1)
    assert [(v["name"], v["passed"]) for v in section["variants"]] == [("a", False),
                                                                       ("other", True)]


def test_the_defaults_are_the_documented_ones() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "baselines.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", page, re.MULTILINE))
    defaults = {f.name: getattr(DEFAULTS, f.name) for f in dataclasses.fields(DEFAULTS)}
    assert set(documented) == set(defaults)
    for key, value in defaults.items():
        assert documented[key] == ("unset" if value is None
                                   else str(value).lower() if isinstance(value, bool)
                                   else f"{value:g}"), key
