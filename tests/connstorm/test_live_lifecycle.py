"""``connstorm live`` interrupted: Locust stopped, CloudWatch still read, the folder written.

Ctrl-C during the load skips the wait for late data points (a user who presses
it wants out) but still reads what CloudWatch has and writes the summary, like
an interrupted ``connstorm run``; no process of the run is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connstorm.scenario import load_scenario
from tests.loadtests.conftest import REPO, alive, descendants, rows
from tests.moto_server import REGION, aws_env, create_stack, moto_server

pytestmark = pytest.mark.slow

OUTPUTS = {"FunctionName": "fn-int", "DbInstanceId": "db-int", "ProxyName": "proxy-int",
           "Region": REGION}


@pytest.fixture(scope="module")
def moto_and_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from connstorm.local_stack.stack import Stack

    run_dir = tmp_path_factory.mktemp("api")
    with moto_server() as url, Stack(load_scenario("ci-smoke"), run_dir):
        api = json.loads((run_dir / "stack.json").read_text())["api_url"]
        create_stack(url, "interrupted", {"ApiUrl": api, **OUTPUTS})
        yield url


def test_ctrl_c_stops_the_load_reads_cloudwatch_and_writes_the_folder(
        moto_and_api: str, tmp_path: Path) -> None:
    out = tmp_path / "live"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in aws_env(moto_and_api).items() if v})
    proc = subprocess.Popen(
        [sys.executable, "-m", "connstorm", "live", "ci-smoke", "--stack-name", "interrupted",
         "--region", REGION, "-u", "3", "-r", "3", "-t", "120s", "--metrics-wait", "10m",
         "--out", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        pids: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            loaded = rows(out, "locust") if (out / "samples.jsonl").exists() else []
            if loaded and (loaded[-1].get("requests") or 0) > 0:
                pids = descendants(proc.pid)
                break
            time.sleep(0.5)
        assert pids, f"the live run never reached load (exit {proc.poll()})"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert time.monotonic() - started < 60  # the 10 min wait for late points was skipped
    end = time.monotonic() + 15
    while alive(pids) and time.monotonic() < end:
        time.sleep(0.2)
    assert alive(pids) == set()
    summary = json.loads((out / "summary.json").read_text())
    variant = summary["variants"][0]
    assert variant["requests"] > 0
    assert variant["cloudwatch"]["source"] == "cloudwatch"  # read, though nothing was there
    assert set(variant["cloudwatch"]["no_data"]) >= {"rds.DatabaseConnections"}
