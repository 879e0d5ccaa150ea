"""``summary.md``: the verdicts of a run in markdown, for CI job summaries and pull requests.

Made from summary.json alone (no samples), so CI can render it from the one
file it keeps. GitHub-flavoured tables; every cell escaped so an error message
with a ``|`` in it cannot break the table.

>>> print(render({"scenario": "direct-small", "passed": True, "variants": []}))
... # doctest: +ELLIPSIS
# connstorm: direct-small: PASS
...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connstorm.reports import baseline, cloudwatch, drivers, pinning, timeline
from connstorm.reports import verdicts as v
from connstorm.reports.verdict_line import verdict


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_esc(h) for h in headings) + " |",
             "|" + "|".join("---" for _ in headings) + "|"]
    lines += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows]
    return lines


def render(summary: Mapping[str, Any]) -> str:
    """summary.json as markdown: the overall verdict, one row per variant, the thresholds."""
    scenario = str(summary.get("scenario") or "run")
    passed = v.overall_passed(summary)
    lines = [f"# connstorm: {scenario}: {v.passed_text(passed)}", ""]
    entries = v.variants(summary)
    if drivers.entries(summary):
        lines += drivers.markdown(summary)
    elif entries:
        headings = ["variant", "verdict", *(h for _, h in v.VARIANT_COLUMNS)]
        rows = [[str(e.get("name", "")), verdict(e), *(v.cell(e, k) for k, _ in
                                                           v.VARIANT_COLUMNS)]
                for e in entries]
        lines += _table(headings, rows)
    else:
        lines.append("No variant results: the run ended before its summary was complete.")
    lines.append("")
    recovery = timeline.rows(summary)
    if recovery:
        lines += ["## Faults: which patterns recovered", "", *_table(timeline.HEADINGS, recovery),
                  ""]
    audit = pinning.rows(summary)
    if audit:
        lines += ["## RDS Proxy pinning audit", "", *_table(pinning.HEADINGS, audit), ""]
    if baseline.section(summary):
        lines += ["## Compared with the baseline", "", baseline.caption(summary), "",
                  *_table(baseline.HEADINGS, baseline.rows(summary)), ""]
    measured = cloudwatch.rows(summary)
    if measured:
        lines += ["## CloudWatch", "", cloudwatch.caption(summary), "",
                  *_table(cloudwatch.HEADINGS, measured), ""]
    if v.decides_alone(summary):
        lines += _deciding(v.thresholds(summary), title="## Checks that decide the verdict")
        lines += _variants_own(entries)
    else:
        lines += _deciding([t for _, t in v.all_thresholds(summary)],
                           names=[n for n, _ in v.all_thresholds(summary)],
                           title="## Thresholds")
    return "\n".join(lines)


def _row(threshold: Mapping[str, Any]) -> list[str]:
    return [str(threshold.get("name", "?")), v.fmt(threshold.get("limit"), 3),
            v.fmt(threshold.get("actual"), 3), v.passed_text(threshold.get("passed"))]


def _deciding(results: Sequence[Mapping[str, Any]], *, title: str,
              names: Sequence[str] = ()) -> list[str]:
    lines = [title, ""]
    if not results:
        return [*lines, "The scenario sets no thresholds.", ""]
    several = any(names)
    headings = (["variant"] if several else []) + ["threshold", "limit", "actual", "result"]
    rows = [([name or "whole run"] if several else []) + _row(t)
            for name, t in zip(names or [""] * len(results), results, strict=True)]
    return [*lines, *_table(headings, rows), ""]


def _variants_own(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each variant's own thresholds: they describe it; the failure variants break them."""
    rows = [[str(e.get("name", "")), *_row(t), v.expected_failure_text(e, t)]
            for e in entries for t in v.thresholds(e)]
    if not rows:
        return []
    return ["## Each variant's own thresholds (they do not decide the verdict)", "",
            "A variant meant to fail shows the failure the others fix; its FAIL rows are "
            "expected.", "",
            *_table(["variant", "threshold", "limit", "actual", "result", "expected failure"],
                    rows), ""]
