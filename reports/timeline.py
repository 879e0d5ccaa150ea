"""What the renderers show of a run's ``[[timeline]]``: marks on the time axis, recovery rows.

summary.json's ``variants[].timeline`` holds the recovery figures of each
action (``loadtests/orchestrator/recovery.py``); the samples hold when each one fired
(``timeline`` rows). One variant is one handler pattern, so "which patterns
recovered" is a line per variant, which :func:`recovery_text` writes and the
verdicts append.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connstorm.reports.verdicts import DASH, errors_text, fmt, variants

#: Headings of the recovery table (markdown and HTML).
HEADINGS = ("variant", "at s", "action", "recovered after", "errors during", "conns leaked")


def entries(variant: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The variant's timeline entries (none for an older summary)."""
    raw = variant.get("timeline")
    return [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []


def action_name(entry: Mapping[str, Any]) -> str:
    """``kill_environments api ×3``, ``freeze_database 5 s``, ``restart_postgres smart``."""
    parts = [str(entry.get("action", "?"))]
    if entry.get("target"):
        parts.append(str(entry["target"]))
    for key, unit in (("count", "×"), ("ms", " ms"), ("seconds", " s"), ("mode", "")):
        if entry.get(key) is not None:
            parts.append(f"×{fmt(entry[key])}" if unit == "×" else f"{fmt(entry[key])}{unit}")
    return " ".join(parts)


def recovered_cell(entry: Mapping[str, Any]) -> str:
    """``1.5 s``, ``not disturbed``, ``NOT RECOVERED``, ``not fired`` or ``failed: why``."""
    outcome = entry.get("outcome")
    if outcome == "not_fired":
        return "not fired (the load ended first)"
    if outcome == "failed":
        return f"action failed: {entry.get('error') or DASH}"
    recovery = entry.get("recovery_s")
    if recovery is None:
        return "NOT RECOVERED"
    if recovery == 0:
        return "not disturbed"
    return f"{fmt(recovery)} s"


def rows(summary: Mapping[str, Any] | None) -> list[list[str]]:
    """One row per (variant, action): the recovery table's cells, as text."""
    out = []
    for variant in variants(summary):
        for entry in entries(variant):
            out.append([str(variant.get("name", "")), fmt(entry.get("at_s")), action_name(entry),
                        recovered_cell(entry), errors_text(entry.get("errors_during")),
                        fmt(entry.get("connections_leaked"))])
    return out


def recovery_text(variant: Mapping[str, Any]) -> str:
    """What the variant's pattern did after each action, or "" without a timeline."""
    parts = []
    for entry in entries(variant):
        cell = recovered_cell(entry)
        if cell.endswith(" s"):
            cell = f"recovered in {cell}"
        errors = entry.get("errors_during")
        detail = f" ({errors_text(errors)})" if isinstance(errors, Mapping) and errors else ""
        parts.append(f"{entry.get('action')} at {fmt(entry.get('at_s'))} s: {cell}{detail}")
    return "; ".join(parts)


def marks(samples: Sequence[Mapping[str, Any]]) -> list[tuple[float, str]]:
    """(elapsed_s, label) of every action's start in a run's ``timeline`` rows."""
    out = []
    for row in samples:
        if row.get("event") == "start" and isinstance(row.get("elapsed_s"), int | float):
            out.append((float(row["elapsed_s"]), action_name(row)))
    return out
