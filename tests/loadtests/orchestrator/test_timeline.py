"""``[[timeline]]`` during ``connstorm run``: real stack, real Locust, faults fired on time.

Each run is short (a few users, 12-14 s) against a database far from its
limit, so every failure comes from the fault. The resilient pattern
(``module_level_resilient``) must be back within the bound stated here; the
naive one (``module_level``) fails the documented way, ``connection_lost``,
until its environments are recycled (not within the run: idle_lifetime_s 600).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connstorm.local_stack.process import pid_alive
from connstorm.local_stack.scratch import LINK_NAME, processes_in
from tests.loadtests.conftest import REPO, connstorm, processes_mentioning

pytestmark = pytest.mark.slow

#: The resilient pattern is back within this many seconds of the action's start.
RECOVERY_BOUND_S = 6.0

SCENARIO = """
name = "timeline-test"
[postgres]
max_connections = 40
[lambda]
concurrency_limit = 50
[[functions]]
name = "api"
pattern = "{pattern}"
database = "direct"
timeout_s = {timeout_s}
idle_lifetime_s = 600
[[routes]]
method = "GET"
path = "/items/{{id}}"
function = "api"
[[routes]]
method = "GET"
path = "/items"
function = "api"
[[routes]]
method = "POST"
path = "/orders"
function = "api"
[[routes]]
method = "GET"
path = "/orders/{{id}}"
function = "api"
[[routes]]
method = "GET"
path = "/health"
function = "api"
[load]
users = 4
spawn_rate = 4
duration_s = {duration_s}
sample_interval_s = 0.5
[thresholds]
max_fail_ratio = 1.0
{timeline}
"""


def run(tmp_path: Path, name: str, pattern: str, timeline: str, *, duration_s: int = 12,
        timeout_s: int = 10) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    """Run the scenario; (its one variant of summary.json, every samples row, run folder).

    The console's output is kept in ``<run folder>.out``.
    """
    path = tmp_path / f"{name}.toml"
    path.write_text(SCENARIO.format(pattern=pattern, timeline=timeline, duration_s=duration_s,
                                    timeout_s=timeout_s), encoding="utf-8")
    out = tmp_path / name
    result = connstorm("run", str(path), "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out.with_suffix(".out").write_text(result.stdout, encoding="utf-8")
    (variant,) = json.loads((out / "summary.json").read_text())["variants"]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return variant, rows, out


def no_leftovers(run_dir: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(run_dir)) == []


TERMINATE = '[[timeline]]\nat_s = 4\naction = "terminate_backends"\n'


def test_terminate_backends_the_resilient_pattern_recovers_in_the_bound(tmp_path: Path) -> None:
    # GIVEN module_level_resilient handlers under a steady load
    # WHEN every backend of the app role is terminated 4 s in
    variant, rows, out = run(tmp_path, "resilient", "module_level_resilient", TERMINATE)
    # THEN the action fired on time and is in the samples (start and end)
    events = [r for r in rows if r["collector"] == "timeline"]
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[0]["action"] == "terminate_backends"
    assert 3.5 <= events[0]["elapsed_s"] <= 6.0
    assert events[1]["outcome"] == "done"
    assert events[1]["result"]["terminated"] >= 1
    # AND summary.json has its recovery figures under the exact names
    (entry,) = variant["timeline"]
    assert {"at_s", "action", "target", "errors_during", "recovery_s"} <= entry.keys()
    assert (entry["at_s"], entry["action"], entry["target"]) == (4.0, "terminate_backends", None)
    assert entry["recovery_s"] is not None
    assert entry["recovery_s"] <= RECOVERY_BOUND_S
    assert entry["connections_leaked"] == 0
    # AND the console says it in words
    assert "timeline: terminate_backends at 4 s: " in out.with_suffix(".out").read_text()
    no_leftovers(out)


def test_terminate_backends_the_naive_pattern_fails_with_connection_lost(tmp_path: Path) -> None:
    variant, rows, out = run(tmp_path, "naive", "module_level", TERMINATE)
    (entry,) = variant["timeline"]
    # THEN it never recovers within the run: its environments keep their dead connections
    assert entry["recovery_s"] is None
    errors = entry["errors_during"]
    assert errors.get("connection_lost", 0) > 0, errors
    assert set(errors) <= {"connection_lost", "admin_shutdown"}
    # AND the collectors kept sampling after the fault
    after = [r for r in rows if r["collector"] == "postgres" and r["ok"]
             and r["elapsed_s"] > entry["fired_at_s"] + 2]
    assert len(after) >= 4
    no_leftovers(out)


def test_freeze_database_collectors_record_the_gap_and_go_on(tmp_path: Path) -> None:
    # GIVEN the resilient pattern; WHEN the database is frozen for 3 s, 3 s in
    variant, rows, out = run(
        tmp_path, "freeze", "module_level_resilient",
        '[[timeline]]\nat_s = 3\naction = "freeze_database"\nseconds = 3\n', duration_s=12)
    (entry,) = variant["timeline"]
    start = entry["fired_at_s"]
    # THEN the PostgreSQL collector wrote gap rows during the freeze, not nothing
    postgres = [r for r in rows if r["collector"] == "postgres"]
    during = [r for r in postgres if start + 0.5 < r["elapsed_s"] < start + 3.0]
    assert during, "no postgres rows during the freeze"
    assert all(not r["ok"] for r in during)
    assert any(r.get("stalled") for r in during)
    # AND good rows again after it
    assert any(r["ok"] for r in postgres if r["elapsed_s"] > start + 4)
    # AND the other collectors never stopped
    locust = [r for r in rows if r["collector"] == "locust" and start < r["elapsed_s"] < start + 3]
    assert len(locust) >= 4
    # AND the load came back within the bound after the freeze ended
    assert entry["outcome"] == "done"
    assert entry["recovery_s"] is not None
    assert entry["recovery_s"] <= 3 + RECOVERY_BOUND_S
    assert variant["sample_gaps"].get("postgres", 0) >= 2
    no_leftovers(out)


def _wait_for_action(out: Path, timeout_s: float = 60.0) -> None:
    """Until the run's first timeline row (the action fired)."""
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if samples.exists() and '"collector":"timeline"' in samples.read_text():
            return
        time.sleep(0.2)
    raise AssertionError("the timeline action never fired")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_run_stopped_mid_freeze_leaves_nothing_frozen_or_running(tmp_path: Path,
                                                                   sig: signal.Signals) -> None:
    # GIVEN a run whose database is frozen for 6 s, 2 s in
    path = tmp_path / "freeze.toml"
    path.write_text(SCENARIO.format(
        pattern="module_level_resilient", duration_s=30, timeout_s=10,
        timeline='[[timeline]]\nat_s = 2\naction = "freeze_database"\nseconds = 6\n'),
        encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "connstorm", "run", str(path), "--out",
                             str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_for_action(out)
        link = out / LINK_NAME
        scratch = Path(link.read_text().strip()) if link.is_file() else link.resolve()
        frozen = processes_in(scratch)
        assert frozen, "no server process found in the stack's scratch folder"
        time.sleep(1)
        # WHEN connstorm is interrupted (Ctrl-C) or killed outright mid-freeze
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # THEN every server it started goes away: Ctrl-C thaws and stops them; after a
    # SIGKILL the freeze's watchdog continues them, and their parent-death signal
    # stops them (within the freeze's 6 s + the watchdog's slack + a shutdown)
    deadline = time.monotonic() + 40
    while processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(str(out)) == []
    while processes_in(scratch) and time.monotonic() < deadline:
        time.sleep(0.5)
    # (PostgreSQL and PgBouncer run in the scratch folder, which their command lines name)
    left = processes_in(scratch)
    assert left == [], [(pid, _state(pid)) for pid in left]
    # (a zombie is gone: it waits only for whoever adopted it to reap it)
    assert not [(pid, _state(pid)) for pid in frozen if pid_alive(pid)]
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:60]
    except OSError:
        return "gone"
    return f"{stat.rsplit(')', 1)[1].split()[0]} {cmd}"
