"""Every listener of every command is on 127.0.0.1 unless asked otherwise.

Real commands as subprocesses: ``connstorm up`` (PostgreSQL, PgBouncer, the
Lambda emulator and its environments' Runtime API listeners), ``connstorm ui``
as a Locust master (its web UI and the port its workers connect to), and
``connstorm run`` with Locust worker processes. Their listening sockets, and
those of every process below them, are read from /proc while they run
(:mod:`tests.listeners`). A scenario cannot widen them either.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connstorm.errors import ScenarioError
from connstorm.local_stack.ports import free_port
from connstorm.scenario import load_scenario
from tests.listeners import Listener, tree_listeners

CONNSTORM = [sys.executable, "-m", "connstorm"]


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _ports(found: list[Listener]) -> set[int]:
    return {item.port for item in found}


def _beyond_loopback(found: list[Listener]) -> list[Listener]:
    return [item for item in found if not item.loopback]


@pytest.mark.slow
def test_up_listens_on_loopback_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([*CONNSTORM, "up", "pgbouncer-transaction", "--out", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        _wait(lambda: (run_dir / "stack.json").is_file() or proc.poll() is not None, 120,
              "stack.json")
        assert proc.poll() is None, f"connstorm up exited {proc.returncode}"
        info = json.loads((run_dir / "stack.json").read_text())
        # One warm environment, so that its Runtime API listener is there too.
        import urllib.request
        with urllib.request.urlopen(info["api_url"] + "/health", timeout=30) as resp:
            assert resp.status == 200
        found = tree_listeners(proc.pid)
        expected = {int(info["api_url"].rsplit(":", 1)[1])}
        for key in ("postgres_dsn", "pgbouncer_dsn"):
            expected.add(int(info[key].rsplit("@", 1)[1].split("/")[0].rsplit(":", 1)[1]))
        assert expected <= _ports(found), found
        assert len(found) > len(expected), "no Runtime API listener seen"
        assert _beyond_loopback(found) == []
    finally:
        _stop(proc)


@pytest.mark.slow
def test_ui_as_locust_master_listens_on_loopback_only(tmp_path: Path) -> None:
    # GIVEN `connstorm ui --master` with its defaults (no --master-bind-host)
    web_port, master_port = free_port(), free_port()
    proc = subprocess.Popen([*CONNSTORM, "ui", "direct-small", "--out", str(tmp_path / "run"),
                             "--master", "--master-bind-port", str(master_port),
                             "--web-port", str(web_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        # WHEN its web UI and its master port are up
        _wait(lambda: {web_port, master_port} <= _ports(tree_listeners(proc.pid))
              or proc.poll() is not None, 180, "the web UI and the master port")
        assert proc.poll() is None, f"connstorm ui exited {proc.returncode}"
        # THEN neither, nor anything else it started, listens beyond loopback
        assert _beyond_loopback(tree_listeners(proc.pid)) == []
    finally:
        _stop(proc)


@pytest.mark.slow
def test_run_with_locust_processes_listens_on_loopback_only(tmp_path: Path) -> None:
    proc = subprocess.Popen([*CONNSTORM, "run", "pgbouncer-transaction", "--out",
                             str(tmp_path / "run"), "--users", "4", "--spawn-rate", "4",
                             "--duration", "4s", "--processes", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    seen: list[Listener] = []
    try:
        # Sampled through the whole run: servers, emulator, Locust master and workers.
        while proc.poll() is None:
            seen += tree_listeners(proc.pid)
            time.sleep(0.2)
        assert proc.returncode in (0, 6)
    finally:
        _stop(proc)
    assert len(_ports(seen)) >= 4, seen
    assert _beyond_loopback(seen) == []


@pytest.mark.parametrize("override", [
    'postgres.listen_addresses="*"', 'pgbouncer.listen_addr="0.0.0.0"',
    'pgbouncer.admin_users="app"', 'pgbouncer.stats_users="app"'])
def test_scenario_cannot_widen_listeners_or_console_users(override: str) -> None:
    with pytest.raises(ScenarioError, match="managed by connstorm"):
        load_scenario("pgbouncer-transaction", overrides=[override])
