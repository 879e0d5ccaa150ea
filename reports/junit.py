"""``junit.xml``: a run's thresholds as JUnit test cases, for CI test-result views.

One ``<testsuite>`` per variant that has thresholds (plus one for the run's own),
one ``<testcase>`` per threshold; a broken threshold carries a ``<failure>``
whose message says limit against actual, so the CI page alone tells what broke.
A repro variant meant to fail (``expected_to_fail``) breaking its own thresholds
is no failure: its case passes and says so. A run compared with a baseline
(``--baseline``) has one more suite, ``connstorm.<scenario>.baseline``, with a
case per comparison (``<variant>: <figure>``): a regression is a failure, a
timing not judged (its ``[thresholds.regression]`` percentage unset) is skipped.
Built with ElementTree so names and messages are escaped properly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from connstorm.reports import baseline
from connstorm.reports import verdicts as v


def _suite_name(scenario: str, variant: str) -> str:
    return f"connstorm.{scenario}" + (f".{variant}" if variant else "")


def render(summary: Mapping[str, Any]) -> str:
    """summary.json's thresholds as a JUnit XML document (a string, with declaration)."""
    scenario = str(summary.get("scenario") or "run")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for name, threshold in v.all_thresholds(summary):
        groups.setdefault(name, []).append(threshold)
    # A repro's failure variants are meant to break their own thresholds: CI must
    # not go red for what the PASS verdict calls the demonstration.
    intended = {str(e.get("name", "")) for e in v.variants(summary)
                if e.get("expected_to_fail")} if v.decides_alone(summary) else set()
    root = ET.Element("testsuites", name=f"connstorm {scenario}")
    total = failed = 0
    for variant, items in (groups or {"": []}).items():
        suite_name = _suite_name(scenario, variant)
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        failures = 0
        for threshold in items:
            case = ET.SubElement(suite, "testcase", classname=suite_name,
                                 name=str(threshold.get("name", "?")))
            line = v.threshold_line(threshold)
            if threshold.get("passed") is False and variant in intended:
                ET.SubElement(case, "system-out").text = (
                    f"{line}: broken, an expected failure, as intended (the variant is "
                    "meant to fail; it does not decide the verdict)")
            elif threshold.get("passed") is False:
                failures += 1
                failure = ET.SubElement(case, "failure", message=line, type="threshold")
                failure.text = line
            elif threshold.get("passed") is None:
                skipped = ET.SubElement(case, "skipped", message=f"{line} (not measured)")
                skipped.text = None
            else:
                ET.SubElement(case, "system-out").text = line
        suite.set("tests", str(len(items)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        total += len(items)
        failed += failures
    compared = baseline.comparisons(summary)
    if compared:
        suite_name = _suite_name(scenario, "baseline")
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        regressions = unjudged = 0
        for comparison in compared:
            case = ET.SubElement(suite, "testcase", classname=suite_name,
                                 name=f"{comparison.get('variant')}: {comparison.get('name')}")
            text = baseline.line(comparison)
            if comparison.get("passed") is False:
                regressions += 1
                failure = ET.SubElement(case, "failure", message=text, type="regression")
                failure.text = text
            elif not baseline.judged(comparison):
                ET.SubElement(case, "skipped", message=text)
                unjudged += 1
            else:
                ET.SubElement(case, "system-out").text = text
        suite.set("tests", str(len(compared)))
        suite.set("failures", str(regressions))
        suite.set("skipped", str(unjudged))
        suite.set("errors", "0")
        total += len(compared)
        failed += regressions
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
