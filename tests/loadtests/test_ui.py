"""``connstorm ui`` end to end: swarm through the UI's HTTP API, read the tab and the chart.

Real stack, real Locust web UI, real HTTP, and a screenshot of the Connections
tab taken by headless Chromium (kept under ``test-output/loadtests/``).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from connstorm.errors import ExitCode
from tests.loadtests.conftest import REPO, connstorm, processes_mentioning
from tests.reports.chromium import stop_group

pytestmark = pytest.mark.slow

OUTPUT = REPO / "test-output" / "loadtests"


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _get_json(url: str) -> Any:
    return json.loads(_get(url))


def _wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout_s: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if selector.select(timeout=0.5):
            line = proc.stdout.readline()
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match.group(1)
    raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s; output: {seen}")


def _screenshot(url: str, path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (scripts/bootstrap.sh --with-test-tools)")
    with tempfile.TemporaryDirectory(prefix="connstorm-chromium-") as profile:
        shot = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={path}",
             "--window-size=1400,900", "--virtual-time-budget=4000", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent)
        try:
            shot.wait(timeout=90)
        finally:
            stop_group(shot.pid)  # its helpers outlive it and write into the profile
            shot.wait()
    assert path.exists(), f"chromium wrote no screenshot of {url}"
    assert path.stat().st_size > 10_000  # a real page, not a blank image


def test_ui_swarm_tab_data_chart_and_screenshot(tmp_path: Path) -> None:
    run_dir = tmp_path / "ui"
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    env["COLUMNS"] = "200"
    proc = subprocess.Popen(
        [sys.executable, "-m", "connstorm", "ui", "direct-small", "--set",
         "postgres.max_connections=10", "--set", "pgbouncer.default_pool_size=4",
         "-u", "12", "-r", "12", "-t", "60s", "--out", str(run_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_die_with_parent)
    try:
        # GIVEN the UI is up (its URL printed)
        base = _wait_for_line(proc, r"Locust web UI: (http://127\.0\.0\.1:\d+)", 120)
        stack = json.loads((run_dir / "stack.json").read_text())
        # the start form offers connstorm's options, the stack's choices among them
        page = _get(f"{base}/").decode()
        for option in ("shape", "think_time_max_ms", "db_path", "pattern"):
            assert f'"{option}"' in page
        assert "module_level" in page
        # WHEN a swarm starts through the UI's HTTP API
        form = urllib.parse.urlencode({"user_count": 12, "spawn_rate": 12,
                                       "host": stack["api_url"], "shape": "constant"}).encode()
        answer = json.loads(urllib.request.urlopen(f"{base}/swarm", data=form,
                                                   timeout=10).read())
        assert answer["success"] is True, answer
        # THEN the tab's data (added to /stats/requests) shows the collectors' live values
        deadline = time.monotonic() + 60
        tab: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            stats = _get_json(f"{base}/stats/requests")
            tab = next((t["data"] for t in stats.get("extended_stats", [])
                        if t["key"] == "connstorm"), [])
            figures = {(r["source"], r["metric"]): r["value"] for r in tab}
            if stats.get("user_count", 0) > 0 and figures.get(("locust", "users"), 0) > 0 \
                    and ("emulator", "cold starts / throttles / timeouts") in figures:
                break
            time.sleep(1)
        figures = {(r["source"], r["metric"]): r["value"] for r in tab}
        assert figures[("postgres", "connections (all roles) / max_connections")].endswith("/ 10")
        # direct-small's functions go straight to PostgreSQL: PgBouncer runs, idle, and
        # the tab says so instead of listing its zeros
        assert figures[("pgbouncer", "traffic")].startswith("none so far")
        assert ("pgbouncer", "clients active / waiting") not in figures
        assert figures[("connstorm", "live chart")] == "/connstorm/chart"
        # ... and the chart's data route has the time series against users
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            data = _get_json(f"{base}/connstorm/samples.json")
            if max(data["series"]["users"]["y"], default=0) > 0 and \
                    max(data["series"]["db_total"]["y"], default=0) > 1:
                break
            time.sleep(1)
        series = data["series"]
        assert max(series["users"]["y"]) > 0
        assert max(series["db_total"]["y"]) > 1
        assert series["max_connections"]["y"][-1] == 10
        assert len(series["environments"]["x"]) > 0
        assert series["pooler_clients"] == {"x": [], "y": []}
        assert data["runs"]["pgbouncer"] is True
        assert data["runs"]["pgbouncer_traffic"] is False
        # ... served offline: plotly.js comes from this server, not a CDN
        chart = _get(f"{base}/connstorm/chart").decode()
        assert '<script src="plotly.js"></script>' in chart
        assert "http://" not in chart
        assert "https://" not in chart
        assert len(_get(f"{base}/connstorm/plotly.js")) > 1_000_000
        # ... and a person would see the tab: screenshot it, and the chart
        OUTPUT.mkdir(parents=True, exist_ok=True)
        _screenshot(f"{base}/?tab=connstorm", OUTPUT / "ui-connections-tab.png")
        _screenshot(f"{base}/connstorm/chart", OUTPUT / "ui-connections-chart.png")
    finally:
        # SIGTERM stops Locust and the stack; the summary of what ran is still written.
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    assert proc.returncode == 143, err
    assert "terminated, everything stopped" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["variants"][0]["requests"] > 0
    deadline = time.monotonic() + 10
    while processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(run_dir)) == []


@pytest.mark.parametrize(("command", "option", "hint"), [
    ("ui", "--web-port", "choose another port, or leave --web-port out for a free one"),
    ("run", "--master-bind-port", "choose another with --master-bind-port"),
])
def test_a_locust_port_in_use_is_one_line_and_starts_nothing(tmp_path: Path, command: str,
                                                              option: str, hint: str) -> None:
    # GIVEN the port a user asks Locust to listen on is taken
    run_dir = tmp_path / command
    extra = ["--master", "--expect-workers", "1"] if option == "--master-bind-port" else []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = connstorm(command, "direct-small", *extra, option, str(port),
                           "--out", str(run_dir), timeout_s=180)
    # THEN one line says which port, exit code 4 (the machine), before any server starts
    # (Locust used to fail to bind inside the run, which ended as "no data", exit 6)
    assert result.returncode == ExitCode.ENVIRONMENT, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"connstorm: error: {option} {port}: 127.0.0.1:{port} is in use ({hint})"]
    assert not (run_dir / "stack.json").exists()
    assert processes_mentioning(str(run_dir)) == []
