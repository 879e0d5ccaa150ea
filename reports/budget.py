"""The connection budget of a verdict, in words: what the run needed, what it had, what fits.

``summary.json``'s ``connection_budget`` (per variant) holds the numbers, computed
with ``connstorm capacity``'s arithmetic (``loadtests/orchestrator/connection_budget.py``);
this module only says them, e.g. "needs 60 connections at 60 environments × 1;
has 16 (20 max_connections − 3 reserved − 1 other): runs out after 16
environments; reserved concurrency ≤ 16 or a pooler with pool ≤ 16 fits".

Kept apart from :mod:`connstorm.reports.verdicts` (which appends it to each
verdict line) and free of its imports, so the two never import each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def has_text(budget: Mapping[str, Any]) -> str:
    """``has 16 (20 max_connections − 3 reserved − 1 other)``."""
    usable, limit = _int(budget.get("usable")), _int(budget.get("max_connections"))
    reserved, other = _int(budget.get("reserved")) or 0, _int(budget.get("other_connections")) or 0
    parts = [f"{limit} max_connections"] + ([f"{reserved} reserved"] if reserved else []) \
        + ([f"{other} other"] if other else [])
    return f"has {usable} ({' − '.join(parts)})" if len(parts) > 1 else f"has {usable}"


def versions_text(entry: Mapping[str, Any]) -> str:
    """Why several versions hold connections at once ("" for one): ``2 deploys inside the
    load; each old version keeps its connections 361 s: until reaped (1 s idle), then
    360 s until the server's keepalive drops them``."""
    versions = _int(entry.get("versions")) or 1
    counted = entry.get("versions_from")
    if versions <= 1 or not isinstance(counted, Mapping):
        return ""
    idle, linger = counted.get("idle_lifetime_s"), counted.get("linger_s")
    reaped = f"until reaped ({idle:g} s idle)" if isinstance(idle, int | float) else \
        "until reaped"
    if linger is None:
        held = f"{reaped}, then until the server closes them"
    elif linger and isinstance(idle, int | float):
        held = (f"{idle + linger:g} s: {reaped}, then {linger:g} s until the server's "
                f"keepalive drops them")
    else:
        held = reaped
    deploys = _int(counted.get("deploys")) or 0
    return (f"{_plural(deploys, 'deploy')} inside the load; each old version keeps its "
            f"connections {held}")


def _function_text(entry: Mapping[str, Any]) -> str:
    """``60 environments × 1``, or through a pooler ``PgBouncer pool 10, session mode, for
    60 environments × 1`` (RDS Proxy has no mode to choose: ``RDS Proxy pool 8 for ...``);
    ``6 environments × 1 × 3 versions`` after deploys (:func:`versions_text`)."""
    envs = _int(entry.get("environments")) or 0
    per_env = _int(entry.get("connections_per_env")) or 0
    shape = f"{_plural(envs, 'environment')} × {per_env}"
    versions = _int(entry.get("versions")) or 1
    if versions > 1:
        shape = f"{shape} × {versions} versions"
    pool = _int(entry.get("pool_size"))
    if pool is None:
        return shape
    if entry.get("database") == "rds_proxy":
        return f"RDS Proxy pool {pool} for {shape}"
    return f"PgBouncer pool {pool}, {entry.get('pool_mode') or 'transaction'} mode, for {shape}"


def _pinned_text(entry: Mapping[str, Any]) -> str:
    """Clients a session-mode pool leaves waiting, and what fits instead ("" if none)."""
    waiting = _int(entry.get("waiting")) or 0
    if entry.get("pool_mode") != "session" or not waiting or entry.get("pattern") == \
            "per_invocation":
        return ""
    clients = _int(entry.get("client_connections")) or 0
    pool = _int(entry.get("pool_size")) or 0
    if entry.get("database") == "rds_proxy":
        return (f"but RDS Proxy pins {clients} clients' session state to {pool} connections: "
                f"{waiting} wait; no session state or reserved concurrency ≤ {pool} fits")
    return (f"but session mode pins {clients} clients to {pool} connections: {waiting} wait; "
            f"transaction mode or reserved concurrency ≤ {pool} fits")


def budget_text(budget: Mapping[str, Any] | None) -> str:
    """The budget as one clause of a verdict line ("" when there is none)."""
    if not isinstance(budget, Mapping):
        return ""
    raw = budget.get("functions")
    entries: Sequence[Mapping[str, Any]] = ([e for e in raw if isinstance(e, Mapping)]
                                            if isinstance(raw, list) else [])
    needed, usable = _int(budget.get("needed")), _int(budget.get("usable"))
    if not entries or needed is None or usable is None:
        return ""
    has = has_text(budget)
    if len(entries) > 1:
        parts = "; ".join(f"{e.get('function')}: {_function_text(e)}" for e in entries)
        verdict = "fits" if needed <= usable else "does not fit"
        return (f"needs {needed} connections for {len(entries)} functions ({parts}); {has}: "
                f"{verdict}")
    entry = entries[0]
    why = versions_text(entry)
    if needed <= usable:
        text = (f"needs {needed} of {usable} connections ({_function_text(entry)}"
                f"{': ' + why if why else ''}): fits, {usable - needed} spare")
        pinned = _pinned_text(entry)
        return f"{text}, {pinned}" if pinned else text
    if entry.get("pool_size") is not None:
        return (f"needs {needed} connections ({_function_text(entry)}"
                f"{': ' + why if why else ''}); {has}: "
                f"a pool ≤ {budget.get('max_pool_size')} fits")
    direct = _int(budget.get("max_concurrency_direct")) or 0
    per_version = " per version" if (_int(entry.get("versions")) or 1) > 1 else ""
    why = f" ({why})" if why else ""
    return (f"needs {needed} connections at {_function_text(entry)}{why}; {has}: runs out "
            f"after {_plural(direct, 'environment')}{per_version}; reserved concurrency "
            f"≤ {direct} or a pooler with pool ≤ {budget.get('max_pool_size')} fits")
