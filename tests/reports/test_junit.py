"""junit.xml: one testcase per threshold, failures saying limit against actual."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from connstorm.reports import junit
from tests.reports.run_folders import repro_run, summary


def test_junit_render_one_testcase_per_threshold() -> None:
    root = ET.fromstring(junit.render(summary()))
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["max_fail_ratio", "min_rps"]
    assert root.get("tests") == "2"
    assert root.get("failures") == "1"


def test_junit_render_failure_says_limit_and_actual() -> None:
    root = ET.fromstring(junit.render(summary()))
    failure = root.find("./testsuite/testcase[@name='max_fail_ratio']/failure")
    assert failure is not None
    assert failure.get("message") == "max_fail_ratio: limit 0.01 (at most), actual 0.42"
    assert root.find("./testsuite/testcase[@name='min_rps']/failure") is None


def test_junit_render_variant_thresholds_get_their_own_suite() -> None:
    doc = {"scenario": "repro", "thresholds": [], "variants": [
        {"name": "direct", "thresholds": [{"name": "too_many_connections", "limit": 0,
                                           "actual": 12, "passed": False}]},
        {"name": "pgbouncer-transaction", "thresholds": [
            {"name": "too_many_connections", "limit": 0, "actual": 0, "passed": True}]}]}
    root = ET.fromstring(junit.render(doc))
    suites = [s.get("name") for s in root.findall("testsuite")]
    assert suites == ["connstorm.repro.direct", "connstorm.repro.pgbouncer-transaction"]
    assert root.get("failures") == "1"


def test_junit_render_without_thresholds_is_valid_and_empty() -> None:
    root = ET.fromstring(junit.render({"scenario": "x"}))
    assert root.get("tests") == "0"


def test_junit_repro_intended_failures_are_not_failures(tmp_path: Path) -> None:
    # GIVEN a repro that showed what it should: its direct and session variants
    # broke their own thresholds, as they are meant to
    doc = repro_run(tmp_path / "repro")
    root = ET.fromstring(junit.render(doc))
    # THEN CI sees no failure (the verdict is PASS), and each intended one is said
    assert root.get("failures") == "0"
    direct = root.find("testsuite[@name='connstorm.repro.direct-module_level']")
    assert direct is not None
    case = direct.find("testcase[@name='max_fail_ratio']")
    assert case is not None
    assert case.find("failure") is None
    out = case.find("system-out")
    assert out is not None
    assert "an expected failure, as intended" in (out.text or "")


def test_junit_repro_unintended_variant_failure_stays_a_failure(tmp_path: Path) -> None:
    doc = repro_run(tmp_path / "repro")
    pooled = next(e for e in doc["variants"] if e["name"] == "pgbouncer-transaction")
    pooled["thresholds"][0]["passed"] = False
    root = ET.fromstring(junit.render(doc))
    assert root.get("failures") == "1"
