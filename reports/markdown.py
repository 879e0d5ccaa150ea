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

from reports import verdicts as v


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
    if entries:
        headings = ["variant", "verdict", *(h for _, h in v.VARIANT_COLUMNS)]
        rows = [[str(e.get("name", "")), v.verdict(e), *(v.cell(e, k) for k, _ in
                                                           v.VARIANT_COLUMNS)]
                for e in entries]
        lines += _table(headings, rows)
    else:
        lines.append("No variant results: the run ended before its summary was complete.")
    lines.append("")
    results = v.all_thresholds(summary)
    lines.append("## Thresholds")
    lines.append("")
    if results:
        several = any(name for name, _ in results)
        headings = (["variant"] if several else []) + ["threshold", "limit", "actual", "result"]
        rows = [([name or "whole run"] if several else []) +
                [str(t.get("name", "?")), v.fmt(t.get("limit"), 3), v.fmt(t.get("actual"), 3),
                 v.passed_text(t.get("passed"))]
                for name, t in results]
        lines += _table(headings, rows)
    else:
        lines.append("The scenario sets no thresholds.")
    lines.append("")
    return "\n".join(lines)
