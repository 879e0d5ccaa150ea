"""The one line a report gives each variant: what happened, then why.

The line starts with what happened (:func:`headline`: REFUSED, ERRORS,
THRESHOLDS BROKEN, NO DATA, OK), then adds, when the run had them, what the
RDS Proxy pinned (:func:`connstorm.reports.pinning.pinning_text`), what the
Lambda lifecycle did (:func:`lifecycle_text`), how the pattern recovered from
each ``[[timeline]]`` action (:func:`connstorm.reports.timeline.recovery_text`)
and the connection budget (:func:`connstorm.reports.budget.budget_text`). It
sits above those sections, which read summary.json through
:mod:`connstorm.reports.verdicts`, so nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connstorm.reports.budget import budget_text
from connstorm.reports.pinning import pinning_text
from connstorm.reports.timeline import recovery_text
from connstorm.reports.verdicts import DASH, fmt, number, thresholds


def verdict(variant: Mapping[str, Any]) -> str:
    """One line saying what happened to a variant (prefixed when it was cut short).

    Through an RDS Proxy, the multiplexing and the pins
    (:func:`connstorm.reports.pinning.pinning_text`) follow it; when the run had
    provisioned concurrency, deploys, keep-warm pings or VPC refusals,
    :func:`lifecycle_text` follows it; when it had a ``[[timeline]]``,
    what the pattern did after each action (:func:`connstorm.reports.timeline.recovery_text`);
    last, the connection budget: needed against had, and what fits
    (:func:`connstorm.reports.budget.budget_text`).
    """
    line = headline(variant)
    pins = pinning_text(variant)
    if pins:
        line = f"{line}; {pins}"
    lifecycle = lifecycle_text(variant)
    if lifecycle:
        line = f"{line}; {lifecycle}"
    vanished = vanished_text(variant)
    if vanished:
        line = f"{line}; {vanished}"
    recovery = recovery_text(variant)
    if recovery:
        line = f"{line}; {recovery}"
    budget = budget_text(variant.get("connection_budget"))
    if budget:
        line = f"{line}; budget: {budget}"
    return f"INTERRUPTED, so far {line}" if variant.get("interrupted") else line


def lifecycle_text(variant: Mapping[str, Any]) -> str:
    """What the Lambda lifecycle did to the connections (``lambda_lifecycle``), or ""."""
    life = variant.get("lambda_lifecycle")
    if not isinstance(life, Mapping):
        return ""
    parts = []
    if number(life.get("provisioned_concurrency")):
        use = life.get("provisioned_utilization")
        use = use if isinstance(use, Mapping) else {}
        parts.append(f"provisioned concurrency {fmt(life.get('provisioned_concurrency'))} held "
                     f"{fmt(life.get('baseline_db_connections'))} DB connections before any "
                     f"request (utilisation mean {_percent(use.get('mean'))}, max "
                     f"{_percent(use.get('max'))}; {fmt(life.get('spillover_invocations'))} "
                     f"spillover invocations)")
    if number(life.get("deploys")):
        parts.append(f"{fmt(life.get('deploys'))} deploy(s): up to "
                     f"{fmt(life.get('peak_superseded_environments'))} environments of the old "
                     f"version stayed connected beside the new ones (peak DB "
                     f"{fmt(variant.get('peak_db_connections'))})")
    if number(life.get("scheduled_invocations")):
        parts.append(f"{fmt(life.get('scheduled_invocations'))} scheduled pings")
    if number(life.get("rejections")):
        parts.append(f"{fmt(life.get('rejections'))} invocations refused by the VPC set-up")
    return "; ".join(parts)


def vanished_text(variant: Mapping[str, Any]) -> str:
    """The connections reaped environments left open at the server, or "".

    Lambda reclaims an environment without a signal; its connections stay open at
    the server until its keepalive gives up (docs/lambda-vanished.md). Refusals
    while they were held are the tail users see after a deploy or a scale-down.
    """
    held = number(variant.get("peak_vanished_connections"))
    if not held:
        return ""
    text = (f"up to {fmt(held)} connection{'s' if held != 1 else ''} of reaped "
            f"environments stayed open at the server with no process behind them (the "
            f"microVM vanished; they go only when the server's keepalive gives up)")
    life = variant.get("lambda_lifecycle")
    refused = number(life.get("refused_while_vanished")) if isinstance(life, Mapping) else 0.0
    if refused:
        text += (f"; {fmt(refused)} invocation{'s' if refused != 1 else ''} were refused "
                 f"(too_many_connections) while they held their slots: the tail of a deploy "
                 f"or scale-down")
    return text


def _percent(value: Any) -> str:
    return f"{number(value):.0%}" if isinstance(value, int | float) else DASH


def headline(variant: Mapping[str, Any]) -> str:
    """One line saying what happened to a variant, most important fact first.

    It starts with one word in capitals (REFUSED, ERRORS, THRESHOLDS BROKEN, NO
    DATA, OK): what happened, which is not the same as whether the run's
    thresholds passed (a demonstration of the failure passes when it fails).
    """
    errors = variant.get("errors_by_kind")
    errors = errors if isinstance(errors, Mapping) else {}
    functions = variant.get("function_errors_by_kind")
    functions = functions if isinstance(functions, Mapping) else {}
    # A function refused at init reaches the client as a bare 502: count both sides.
    refused = max(number(errors.get("too_many_connections")),
                  number(functions.get("too_many_connections")))
    failures = number(variant.get("failures"))
    requests = number(variant.get("requests"))
    peak = fmt(variant.get("peak_db_connections"))
    limit = fmt(variant.get("max_connections"))
    broken = [str(t.get("name")) for t in thresholds(variant) if t.get("passed") is False]
    if refused:
        return (f"REFUSED: the database refused connections ({fmt(refused)} "
                f"too_many_connections); peak {peak} of max_connections {limit}")
    if failures:
        kinds = functions or errors
        top = max(kinds.items(), key=lambda kv: number(kv[1]))[0] if kinds else "unclassified"
        share = f"{failures / requests:.1%} of requests" if requests else "requests"
        line = f"ERRORS: {fmt(failures)} failed ({share}), mostly {top}; peak DB {peak} of {limit}"
        waiting = number(variant.get("peak_pooler_waiting"))
        if variant.get("db_path") == "pgbouncer" and waiting:
            line += (f"; up to {fmt(waiting)} client{'s' if waiting != 1 else ''} waited for "
                     f"{fmt(variant.get('peak_pooler_server_connections'))} server connections "
                     f"(pool {fmt(variant.get('pool_size'))})")
        return line
    if variant.get("passed") is False or broken:
        return f"THRESHOLDS BROKEN: {', '.join(broken) or 'see the table'}"
    if not requests:
        return "NO DATA: no requests were made"
    if variant.get("db_path") == "pgbouncer":
        waiting = number(variant.get("peak_pooler_waiting"))
        queued = (f", up to {fmt(waiting)} client{'s' if waiting != 1 else ''} waiting"
                  if waiting else "")
        return (f"OK: no failures; pooler held the database to "
                f"{fmt(variant.get('peak_pooler_server_connections'))} server connections "
                f"(pool {fmt(variant.get('pool_size'))}){queued}; peak {peak} of {limit}")
    return f"OK: no failures; peak {peak} of max_connections {limit} DB connections"
