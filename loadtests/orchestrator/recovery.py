"""Recovery figures of a run's ``[[timeline]]`` actions, from its samples.

For each action (its ``timeline`` rows, see :mod:`connstorm.loadtests.orchestrator.timeline`) the
summary gets one entry of ``summary.json`` ``variants[].timeline``:

``at_s``, ``action``, ``target``
    as the scenario says (``target`` null for actions without one);
``errors_during``
    failed requests by kind from the action's start until it recovered (or
    the end of the run when it never did), from the Locust rows' cumulative
    ``errors_by_kind``;
``recovery_s``
    seconds from the action's start until the error rate is back at its level
    before the action, and stays there; ``0`` when the action disturbed
    nothing, ``null`` when the run ended before it came back.

and, beside them: ``fired_at_s``, ``duration_s``, ``outcome`` (``done``,
``failed`` or ``not_fired`` when the load ended first), ``error``,
``baseline_error_ratio``, ``db_connections_before`` and ``_after`` (the
application role's backends at the action's start and once it recovered) and
``connections_leaked`` (how many more the role held after than before).

How "back at its level" is decided, from the Locust collector's intervals
(``sample_interval_s`` each): the baseline is the ratio of failed to made
requests over the ``BASELINE_S`` before the action. An interval after the
start, up to the next action's start (what that one disturbs is its own), is
*disturbed* when its failure ratio exceeds ``baseline * 1.5 + 0.02``, or when it
is part of a *stall*: users running and no request answered at all, for at
least ``STALL_S`` in a row (a frozen database or a partitioned network fails
nothing, it answers nothing). Recovery is the end of the last disturbed
interval, provided at least one undisturbed interval follows; an action still
disturbed at the end of the run, or when the next action fires, never
recovered. The interval closed by a row Locust took while stopping (its
``state`` is no longer running) is no sample of the load.

Fewer answers alone are not a disturbance. A verdict about recovery must come
from what failed, and throughput is what a busy machine moves by itself: on
the shared 2-core machine, with no failure after 8.7 s, a ``connstorm repro
--preset failover --quick`` variant answered 68 requests/s in a half-second
interval against a level of 166/s, and "under half the level" read it as never
recovered (exit 6). Response times of the whole run are the latency figures;
a stall of ``STALL_S`` is long for a noisy machine (every one of the run's
users unanswered for two intervals) and short for the faults that stall
(``freeze_database``, ``network_latency`` with ``ms`` of its window, a restart).
A handler pattern is one variant, so these figures per variant are the figures
per pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from connstorm.samples import Row

#: Seconds before an action over which its baseline error rate is measured.
BASELINE_S = 5.0
#: Disturbed: failure ratio over ``baseline * RATIO_FACTOR + RATIO_SLACK``.
RATIO_FACTOR = 1.5
RATIO_SLACK = 0.02
#: Disturbed too: users running and no request answered for at least this long (a stall).
STALL_S = 1.0
#: Locust runner states in which users send load. A row taken in another one (the
#: run stopping: ``cleanup``, ``stopping``, ``stopped``) closes an interval that
#: answered little because the load was ending, not because the action stalled it.
LOAD_STATES = frozenset({"spawning", "running"})


def _ok(rows: Sequence[Row], collector: str) -> list[Row]:
    return [r for r in rows if r.get("collector") == collector and r.get("ok")
            and isinstance(r.get("elapsed_s"), int | float)]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _counts(row: Row | None) -> dict[str, float]:
    errors = (row or {}).get("errors_by_kind")
    return {str(k): _num(v) for k, v in errors.items()} if isinstance(errors, Mapping) else {}


def _under_load(row: Row) -> bool:
    """Whether Locust was sending load when ``row`` was taken (rows without a state: yes)."""
    state = row.get("state")
    return not isinstance(state, str) or state in LOAD_STATES


def _at_or_before(rows: Sequence[Row], t: float) -> Row | None:
    found = None
    for row in rows:
        if float(row["elapsed_s"]) <= t:
            found = row
        else:
            break
    return found


def _ratio(a: Row, b: Row) -> tuple[float, float]:
    """(requests, failure ratio) between two Locust rows."""
    requests = max(0.0, _num(b.get("requests")) - _num(a.get("requests")))
    failures = max(0.0, _num(b.get("failures")) - _num(a.get("failures")))
    return requests, (failures / requests if requests else 0.0)


def baseline_ratio(locust: Sequence[Row], start: float) -> float:
    """Failure ratio over the ``BASELINE_S`` before ``start`` (0 without data)."""
    before = [r for r in locust if start - BASELINE_S <= float(r["elapsed_s"]) <= start]
    if len(before) < 2:
        return 0.0
    return _ratio(before[0], before[-1])[1]


def recovery_after(locust: Sequence[Row], start: float, baseline: float,
                   until: float | None = None) -> float | None:
    """Seconds from ``start`` until the error rate is back at ``baseline`` (None: never).

    Only intervals ending by ``until`` (the next action's start) count: what the
    next action disturbs is its own, and an action still disturbed when the next
    one fires never recovered. A stall (nothing answered for ``STALL_S``) is
    disturbed too; fewer answers than before are not (see the module docstring).
    """
    limit = baseline * RATIO_FACTOR + RATIO_SLACK
    last_disturbed: float | None = None
    last_end: float | None = None
    stall_from: float | None = None  # where the current run of unanswered intervals began
    for a, b in pairwise(locust):
        end = float(b["elapsed_s"])
        if end <= start:
            continue
        if until is not None and end > until + 1e-6:
            break
        if not _under_load(b):
            continue
        last_end = end
        requests, ratio = _ratio(a, b)
        if _num(b.get("users")) > 0 and requests == 0:
            stall_from = float(a["elapsed_s"]) if stall_from is None else stall_from
        else:
            stall_from = None
        if ratio > limit or (stall_from is not None and end - stall_from >= STALL_S - 1e-6):
            last_disturbed = end
    if last_disturbed is None:
        return 0.0
    if last_end is None or last_disturbed >= last_end:
        return None
    return round(max(0.0, last_disturbed - start), 3)


def _db_app(postgres: Sequence[Row], t: float) -> int | None:
    row = _at_or_before(postgres, t)
    return int(_num(row.get("db_app"))) if row is not None else None


def action_figures(rows: Sequence[Row], entry: Mapping[str, Any],
                   next_start: float | None = None) -> dict[str, Any]:
    """The ``timeline`` entry of one scenario action (``entry``: its scenario fields;
    ``next_start``: when the next action fired, which ends this one's window)."""
    index = entry.get("index")
    mine = [r for r in rows if r.get("collector") == "timeline" and r.get("index") == index]
    start_row = next((r for r in mine if r.get("event") == "start"), None)
    end_row = next((r for r in mine if r.get("event") == "end"), None)
    out: dict[str, Any] = {"at_s": entry.get("at_s"), "action": entry.get("action"),
                           "target": entry.get("target"), "errors_during": {},
                           "recovery_s": None}
    if start_row is None:
        out.update(outcome="not_fired", fired_at_s=None)
        return out
    start = float(start_row["elapsed_s"])
    locust = _ok(rows, "locust")
    baseline = baseline_ratio(locust, start)
    recovery = recovery_after(locust, start, baseline, next_start)
    last = float(locust[-1]["elapsed_s"]) if locust else start
    if next_start is not None:
        last = min(last, next_start)
    until = start + recovery if recovery is not None else last
    before, after = _at_or_before(locust, start), _at_or_before(locust, max(until, start))
    counts_before, counts_after = _counts(before), _counts(after)
    errors = {k: int(v - counts_before.get(k, 0.0)) for k, v in sorted(counts_after.items())
              if v - counts_before.get(k, 0.0) > 0}
    postgres = _ok(rows, "postgres")
    db_before, db_after = _db_app(postgres, start), _db_app(postgres, until)
    out.update(
        errors_during=errors, recovery_s=recovery, fired_at_s=round(start, 3),
        outcome=(end_row or {}).get("outcome", "running"),
        duration_s=(end_row or {}).get("duration_s"),
        error=(end_row or {}).get("error"),
        baseline_error_ratio=round(baseline, 4),
        db_connections_before=db_before, db_connections_after=db_after,
        connections_leaked=(max(0, db_after - db_before)
                            if db_before is not None and db_after is not None else None))
    return out


def timeline_figures(rows: Sequence[Row], timeline: Sequence[Any]) -> list[dict[str, Any]]:
    """``variants[].timeline`` of ``summary.json``: one entry per ``[[timeline]]`` action."""
    starts = sorted(float(r["elapsed_s"]) for r in rows
                    if r.get("collector") == "timeline" and r.get("event") == "start"
                    and isinstance(r.get("elapsed_s"), int | float))
    out = []
    for index, action in enumerate(timeline):
        fields = {"index": index, "at_s": float(action.at_s), "action": action.action,
                  "target": getattr(action, "target", None)}
        mine = next((float(r["elapsed_s"]) for r in rows
                     if r.get("collector") == "timeline" and r.get("index") == index
                     and r.get("event") == "start"), None)
        later = [t for t in starts if mine is not None and t > mine]
        out.append(action_figures(rows, fields, later[0] if later else None))
    return out
