"""The pinning audit: which statements pinned client sessions to RDS Proxy connections.

A run through the RDS Proxy stand-in (or a live one through RDS Proxy) records
in summary.json, per variant, the pin reasons seen (``pin_reasons``: reason ->
sessions pinned) with a sample statement each (``pin_samples``), and the peaks
of client, database and pinned connections. The renderers show them as one
table (a row per variant and reason) and the verdicts as one line, so a user
can find which of their statements would defeat RDS Proxy before deploying.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connstorm.reports.verdicts import DASH, fmt, variants

#: Headings of the audit table (markdown and HTML).
HEADINGS = ("variant", "pin reason (RDS Proxy's words)", "sessions pinned", "sample statement")


def _reasons(variant: Mapping[str, Any]) -> list[tuple[str, int]]:
    raw = variant.get("pin_reasons")
    if not isinstance(raw, Mapping):
        return []
    pairs = [(str(k), int(n)) for k, n in raw.items() if isinstance(n, int | float)]
    return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))


def through_proxy(variant: Mapping[str, Any]) -> bool:
    """Whether the variant went through an RDS Proxy (stand-in or real)."""
    return (variant.get("db_path") == "rds_proxy"
            or bool(variant.get("peak_proxy_client_connections")))


def rows(summary: Mapping[str, Any] | None) -> list[list[str]]:
    """One row per (variant, reason); a "no pinning" row for a proxied variant without any."""
    out: list[list[str]] = []
    for variant in variants(summary):
        if not through_proxy(variant):
            continue
        name = str(variant.get("name", ""))
        samples = variant.get("pin_samples")
        samples = samples if isinstance(samples, Mapping) else {}
        reasons = _reasons(variant)
        if not reasons:
            out.append([name, "no pinning", "0", DASH])
        for reason, count in reasons:
            out.append([name, reason, fmt(count), str(samples.get(reason) or DASH)])
    return out


#: Longest sample statement quoted in a verdict line (the audit table has it whole).
EXAMPLE_CHARS = 60


def _example(sample: Any) -> str:
    """``, e.g. SET search_path TO public``: the line names the statement that pinned."""
    text = " ".join(str(sample or "").split())
    if not text:
        return ""
    if len(text) > EXAMPLE_CHARS:
        text = text[:EXAMPLE_CHARS - 1] + "…"
    return f", e.g. {text}"


def pinning_text(variant: Mapping[str, Any]) -> str:
    """``RDS Proxy: 40 clients over 8 database connections (pool 8), 8 pinned: ...``, or ""."""
    if not through_proxy(variant):
        return ""
    line = (f"RDS Proxy: {fmt(variant.get('peak_proxy_client_connections'))} clients over "
            f"{fmt(variant.get('peak_proxy_database_connections'))} database connections")
    if variant.get("proxy_max_connections") is not None:
        line += f" (pool {fmt(variant.get('proxy_max_connections'))})"
    pinned = variant.get("peak_pinned_connections")
    reasons = _reasons(variant)
    if not reasons and not pinned:
        return f"{line}, none pinned"
    samples = variant.get("pin_samples")
    samples = samples if isinstance(samples, Mapping) else {}
    because = "; ".join(f"{reason} (×{fmt(n)}{_example(samples.get(reason))})"
                        for reason, n in reasons) or "reason not logged"
    return f"{line}, up to {fmt(pinned)} PINNED because: {because}"
