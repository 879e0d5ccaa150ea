"""``connstorm run`` under interruption and as master/worker: nothing left behind.

Every process the run starts (stack servers, Lambda environments, Locust and its
workers) is recorded while it runs; after Ctrl-C, or after connstorm is killed
outright, all of them must be gone within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.loadtests.conftest import REPO, alive, descendants, rows

pytestmark = pytest.mark.slow


def _start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return subprocess.Popen([sys.executable, "-m", "connstorm", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_loaded(proc: subprocess.Popen[str], run_dir: Path) -> set[int]:
    """Wait (bounded) until Locust reports users; the run's processes at that moment."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / "samples.jsonl").exists():
            locust = rows(run_dir, "locust")
            if locust and locust[-1]["users"] > 0:
                return descendants(proc.pid)
        time.sleep(0.5)
    raise AssertionError(f"the run never reached load (exit {proc.poll()})")


def _all_gone(pids: set[int], timeout_s: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)


def test_run_ctrl_c_stops_everything_and_keeps_the_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "interrupted"
    proc = _start("run", "ci-smoke", "-t", "120s", "--out", str(run_dir))
    try:
        pids = _wait_until_loaded(proc, run_dir)
        assert len(pids) > 5  # runuser + servers, the emulator and its environments, Locust
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted, everything stopped" in err
    assert "Traceback" not in err
    assert _all_gone(pids) == set()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["variants"][0]["requests"] > 0
    # ... and says it was cut short: a run stopped after seconds of its two minutes
    # passed nothing (it read PASS, and summary.md's header too)
    assert summary["variants"][0]["interrupted"] is True
    assert summary["passed"] is False
    assert (run_dir / "summary.md").read_text().startswith("# connstorm: ci-smoke: FAIL")
    assert "INTERRUPTED" in (run_dir / "summary.md").read_text()


def test_run_killed_outright_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    proc = _start("run", "ci-smoke", "-t", "120s", "--out", str(run_dir))
    try:
        pids = _wait_until_loaded(proc, run_dir)
        proc.kill()  # SIGKILL: no cleanup code runs; the death signals must do it
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _all_gone(pids, timeout_s=20) == set()


def test_run_master_with_a_worker_on_loopback(tmp_path: Path) -> None:
    from connstorm.local_stack.ports import free_port

    port = str(free_port())
    master = _start("run", "ci-smoke", "--master", "--expect-workers", "1",
                    "--master-bind-port", port, "-t", "5s", "--out", str(tmp_path / "master"))
    worker = _start("run", "--worker", "--master-port", port, "--out", str(tmp_path / "worker"))
    try:
        m_out, m_err = master.communicate(timeout=240)
        _w_out, w_err = worker.communicate(timeout=60)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    assert master.returncode == 0, m_out[-2000:] + m_err
    assert worker.returncode == 0, w_err
    summary = json.loads((tmp_path / "master" / "summary.json").read_text())
    (variant,) = summary["variants"]
    assert list(variant["requests_by_worker"].values()) == [variant["requests"]]
    assert variant["requests"] > 0
