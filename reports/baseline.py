"""The comparison with a baseline (``--baseline``), as the reports show it.

``summary.json``'s ``baseline`` holds, per variant, one comparison per figure
(``loadtests/orchestrator/regression.py`` decides them); this module turns them
into the before/after table of ``summary.md`` and ``report.html`` and the lines
of ``junit.xml``. The baseline's *series* are drawn by :mod:`connstorm.reports.html`
from the copy in the run folder's ``baseline/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connstorm.reports import verdicts as v

HEADINGS = ("variant", "figure", "baseline", "this run", "change", "allowed", "result")


def section(summary: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The summary's ``baseline`` section, if it was compared with one."""
    found = (summary or {}).get("baseline")
    return found if isinstance(found, Mapping) else None


def comparisons(summary: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """Every comparison, variant by variant."""
    out: list[Mapping[str, Any]] = []
    for variant in (section(summary) or {}).get("variants") or []:
        if isinstance(variant, Mapping):
            out += [c for c in variant.get("comparisons") or [] if isinstance(c, Mapping)]
    return out


def _value(c: Mapping[str, Any], side: str) -> str:
    if c.get("kind") in ("error_share", "new_error_kind"):
        share = c.get(f"{side}_share")
        count = v.fmt(c.get(side))
        return f"{count} ({share * 100:.1f} %)" if isinstance(share, int | float) else count
    return v.fmt(c.get(side))


def _allowed(c: Mapping[str, Any]) -> str:
    if c.get("kind") in ("new_error_kind", "new_pin_reason"):
        return "none new"
    tolerance = c.get("tolerance_pct")
    if not judged(c):
        return "not set"
    if tolerance is None:
        return v.DASH
    sign = "+" if c.get("bound") == "at most" else "-"
    if c.get("kind") == "error_share":
        return f"{sign}{v.fmt(tolerance)} % of its share"
    bound = "≤" if c.get("bound") == "at most" else "≥"
    return f"{sign}{v.fmt(tolerance)} % ({bound} {v.fmt(c.get('limit'), 3)})"


def _change(c: Mapping[str, Any]) -> str:
    change = c.get("change_pct")
    if isinstance(change, int | float):
        return f"{change:+g} %"
    return "new" if c.get("actual") else v.DASH


def judged(c: Mapping[str, Any]) -> bool:
    """False for a timing shown beside the baseline's but held to no tolerance
    (``[thresholds.regression]`` leaves ``p95_pct``, ``p99_pct``, ``rps_pct`` unset)."""
    return c.get("judged") is not False


def result_text(c: Mapping[str, Any]) -> str:
    """``ok``, ``REGRESSION`` or ``not judged``."""
    if not judged(c):
        return "not judged"
    return "ok" if c.get("passed") else "REGRESSION"


def rows(summary: Mapping[str, Any] | None) -> list[list[str]]:
    """The before/after table: one row per comparison."""
    return [[str(c.get("variant", "")), str(c.get("name", "?")), _value(c, "baseline"),
             _value(c, "actual"), _change(c), _allowed(c), result_text(c)]
            for c in comparisons(summary)]


def caption(summary: Mapping[str, Any] | None) -> str:
    """Where the baseline came from and how the comparison ended."""
    found = section(summary) or {}
    count = found.get("regressions") or 0
    verdict = (f"{count} regression{'s' if count != 1 else ''}" if count
               else "no regression")
    return (f"Compared with the baseline {found.get('path')} (scenario "
            f"{found.get('scenario')}): {verdict}.")


def line(c: Mapping[str, Any]) -> str:
    """One line for a comparison (JUnit's failure message): the orchestrator's own, if given."""
    given = c.get("line")
    if isinstance(given, str) and given:
        return given
    return (f"{c.get('variant')}: {c.get('name')} {_value(c, 'actual')}, baseline "
            f"{_value(c, 'baseline')} ({_change(c)}; allowed {_allowed(c)}) {result_text(c)}")
