"""Recovery figures from samples (pure logic: rows built here, the decisions tested)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connstorm.loadtests.orchestrator.recovery import (
    action_figures,
    recovery_after,
    timeline_figures,
)


def locust_rows(failures_per_tick: list[int], requests_per_tick: int = 10,
                users: int = 4) -> list[dict[str, Any]]:
    """One Locust row per second; cumulative requests, failures and connection_lost."""
    rows, requests, failures = [], 0, 0
    for i, failed in enumerate(failures_per_tick):
        if i:
            requests += requests_per_tick
            failures += failed
        rows.append({"collector": "locust", "ok": True, "elapsed_s": float(i), "users": users,
                     "requests": requests, "failures": failures,
                     "errors_by_kind": {"connection_lost": failures} if failures else {}})
    return rows


def timeline_rows(at: float) -> list[dict[str, Any]]:
    return [{"collector": "timeline", "ok": True, "elapsed_s": at, "event": "start",
             "index": 0, "action": "terminate_backends", "at_s": at},
            {"collector": "timeline", "ok": True, "elapsed_s": at + 0.1, "event": "end",
             "index": 0, "action": "terminate_backends", "at_s": at, "outcome": "done",
             "duration_s": 0.1}]


ENTRY = {"index": 0, "at_s": 5.0, "action": "terminate_backends", "target": None}


def test_recovery_is_the_end_of_the_last_disturbed_interval() -> None:
    # GIVEN no errors, then 3 s of errors after the action at 5 s, then none again
    rows = locust_rows([0] * 6 + [5, 5, 5] + [0] * 5) + timeline_rows(5.0)
    entry = action_figures(rows, ENTRY)
    # THEN it recovered at the end of the last failing second (8 s), 3 s after it fired
    assert entry["recovery_s"] == 3.0
    assert entry["errors_during"] == {"connection_lost": 15}
    assert entry["outcome"] == "done"
    assert entry["baseline_error_ratio"] == 0.0


def test_errors_until_the_end_never_recovered() -> None:
    rows = locust_rows([0] * 6 + [5] * 6) + timeline_rows(5.0)
    entry = action_figures(rows, ENTRY)
    assert entry["recovery_s"] is None
    assert entry["errors_during"] == {"connection_lost": 30}


def test_an_undisturbed_action_recovered_at_once() -> None:
    rows = locust_rows([0] * 12) + timeline_rows(5.0)
    entry = action_figures(rows, ENTRY)
    assert entry["recovery_s"] == 0.0
    assert entry["errors_during"] == {}


def test_a_baseline_error_rate_is_not_a_disturbance() -> None:
    # GIVEN 10 % failures all along (the run was already failing), 60 % for 2 s
    failures = [1] * 6 + [6, 6] + [1] * 4
    assert recovery_after(locust_rows(failures), 5.0, 0.1) == 2.0


def test_a_stall_that_answers_nothing_is_disturbed() -> None:
    # GIVEN no request answered for 3 s while users were running
    rows = locust_rows([0] * 12)
    for row in rows[6:9]:
        row["requests"] = rows[5]["requests"]
    for later in rows[9:]:
        later["requests"] -= 30
    assert recovery_after(rows, 5.0, 0.0) == 3.0


def test_an_action_that_never_fired_says_so() -> None:
    entry = action_figures(locust_rows([0] * 4), {**ENTRY, "at_s": 60.0})
    assert (entry["outcome"], entry["recovery_s"], entry["errors_during"]) == (
        "not_fired", None, {})


def test_the_next_action_ends_the_window_of_the_one_before() -> None:
    # GIVEN errors 5-7 s after the first action, and again after a second one at 10 s
    rows = locust_rows([0] * 6 + [5, 5] + [0] * 3 + [5, 5] + [0] * 3)
    rows += timeline_rows(5.0)
    rows += [{**r, "index": 1, "elapsed_s": r["elapsed_s"] + 5, "at_s": 10.0}
             for r in timeline_rows(5.0)]
    entries = timeline_figures(rows, [Action(5.0), Action(10.0)])
    # THEN each recovered 2 s after it fired, with its own errors only
    assert [e["recovery_s"] for e in entries] == [2.0, 2.0]
    assert [e["errors_during"] for e in entries] == [{"connection_lost": 10}] * 2


def test_still_failing_when_the_next_action_fires_never_recovered() -> None:
    rows = locust_rows([0] * 6 + [5] * 10) + timeline_rows(5.0)
    rows += [{**r, "index": 1, "elapsed_s": r["elapsed_s"] + 5, "at_s": 10.0}
             for r in timeline_rows(5.0)]
    first, _ = timeline_figures(rows, [Action(5.0), Action(10.0)])
    assert first["recovery_s"] is None
    assert first["errors_during"] == {"connection_lost": 25}


@dataclass(frozen=True)
class Action:
    at_s: float
    action: str = "terminate_backends"
    target: str | None = None


def half_second_rows(answered: list[int], failed: list[int] | None = None,
                     users: int = 6) -> list[dict[str, Any]]:
    """Locust rows every 0.5 s (a repro's sample_interval_s): requests answered and
    failed in each interval, cumulated; every row taken while Locust runs."""
    rows, requests, failures = [], 0, 0
    failed = failed or [0] * len(answered)
    for i, (n, f) in enumerate(zip(answered, failed, strict=True)):
        requests, failures = requests + n, failures + f
        rows.append({"collector": "locust", "ok": True, "elapsed_s": i * 0.5, "users": users,
                     "state": "running", "requests": requests, "failures": failures,
                     "errors_by_kind": {"connection_lost": failures} if failures else {}})
    return rows


def test_fewer_answers_alone_are_not_a_disturbance() -> None:
    # GIVEN what a connstorm repro --preset failover --quick variant did on a busy
    # machine: 83 answers per half second (166/s) before the restart at 8 s, failures
    # until 8.7 s, then none, but CPU noise: an interval of 34 answers (68/s) at the end
    answered = [83] * 17 + [20, 40] + [83] * 6 + [34]
    failed = [0] * 17 + [20, 10] + [0] * 7
    rows = half_second_rows(answered, failed) + timeline_rows(8.0)
    entry = {**ENTRY, "at_s": 8.0}
    # THEN it recovered when the failures stopped (9 s: the end of the last failing
    # interval), not "never" (it read NOT RECOVERED and repro exited 6)
    assert action_figures(rows, entry)["recovery_s"] == 1.0
    # AND a throughput dip in the middle moves nothing either
    answered[21] = 10
    dipped = half_second_rows(answered, failed) + timeline_rows(8.0)
    assert action_figures(dipped, entry)["recovery_s"] == 1.0


def test_a_stall_counts_only_once_it_lasts() -> None:
    # GIVEN steady load, then one half-second interval with no answer (a busy machine
    # starved the stack for a moment): no stall, nothing failed
    answered = [40] * 10 + [0] + [40] * 5
    assert recovery_after(half_second_rows(answered), 3.0, 0.0) == 0.0
    # BUT 1.5 s of nothing answered with users running is a stall (a frozen database)
    answered = [40] * 10 + [0, 0, 0] + [40] * 5
    assert recovery_after(half_second_rows(answered), 4.5, 0.0) == 1.5
    # AND a stall that lasts until the run ends never recovered
    assert recovery_after(half_second_rows([40] * 10 + [0] * 4), 4.5, 0.0) is None


def test_the_sample_taken_while_locust_stops_is_not_a_stall() -> None:
    # GIVEN an action at 5 s that disturbed 2 s, then steady load at 10 requests/s, and
    # the last Locust row taken while Locust was already stopping ("cleanup"): its
    # interval answered almost nothing, as every run's last one does
    rows = locust_rows([0] * 6 + [5, 5] + [0] * 4)
    for row in rows:
        row["state"] = "running"
    rows.append({**rows[-1], "elapsed_s": rows[-1]["elapsed_s"] + 0.5, "state": "cleanup",
                 "requests": rows[-1]["requests"] + 1})
    # THEN the action recovered after its 2 s (it read "never recovered", failing
    # connstorm repro --preset failover on a busy machine)
    assert recovery_after(rows, 5.0, 0.0) == 2.0
    assert action_figures(rows + timeline_rows(5.0), ENTRY)["recovery_s"] == 2.0
