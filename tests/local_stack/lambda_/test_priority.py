"""The emulator server's real-time priority: on for it, never for what it forks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from connstorm.local_stack.lambda_.process import EmulatorProcess
from connstorm.scenario import load_scenario
from tests.local_stack.lambda_.emulator_helpers import COUNTER_SCENARIO, children_of
from tests.local_stack.realtime import fifo_permitted, policy

#: Asks for real-time priority in a child after ``{setup}``; prints the answer and policy.
CHILD = """
import logging, os, sys
from connstorm.local_stack.priority import raise_priority
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
{setup}
print(raise_priority())
print(os.sched_getscheduler(0))
"""
#: Drops every capability (root to nobody), after the imports.
DROP_PRIVILEGE = "if os.geteuid() == 0:\n    os.setgid(65534)\n    os.setuid(65534)"
ONE_CPU = "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})"


def _stats(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _env_pids(invoke_url: str, n: int) -> set[int]:
    client = boto3.client("lambda", endpoint_url=invoke_url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(retries={"total_max_attempts": 1}))
    with ThreadPoolExecutor(n) as pool:
        outs = list(pool.map(lambda _: client.invoke(
            FunctionName="counter", Payload=b'{"sleep_s": 0.3}'), range(n)))
    return {json.loads(o["Payload"].read())["pid"] for o in outs}


def _start(tmp_path: Path, lambda_section: str) -> EmulatorProcess:
    path = tmp_path / "priority.toml"
    path.write_text(f"{COUNTER_SCENARIO}\n{lambda_section}\n", encoding="utf-8")
    return EmulatorProcess(load_scenario(path), tmp_path / "run")


def test_server_runs_realtime_and_nothing_it_forks_does(tmp_path: Path) -> None:
    permitted = fifo_permitted()
    with _start(tmp_path, "") as emu:
        assert emu.pid is not None
        envs = _env_pids(emu.invoke_url, 2)
        assert len(envs) == 2
        stats = _stats(emu.stats_url)
        assert stats["scheduling"] == ("realtime" if permitted else "normal")
        assert policy(emu.pid) == (os.SCHED_FIFO if permitted else os.SCHED_OTHER)
        # The zygote and the environments compete like any process, as handlers do on AWS.
        forked = set(children_of(emu.pid)) | envs
        assert envs <= forked
        assert {pid: policy(pid) for pid in forked} == dict.fromkeys(forked, os.SCHED_OTHER)
    log = (tmp_path / "run" / "logs" / "emulator.log").read_text()
    assert f"emulator scheduling: {'realtime' if permitted else 'normal'}" in log


def test_realtime_priority_false_keeps_the_normalpolicy(tmp_path: Path) -> None:
    with _start(tmp_path, "[lambda]\nrealtime_priority = false") as emu:
        assert emu.pid is not None
        _env_pids(emu.invoke_url, 1)
        assert _stats(emu.stats_url)["scheduling"] == "normal"
        assert policy(emu.pid) == os.SCHED_OTHER


@pytest.mark.parametrize(("setup", "why"), [
    (DROP_PRIVILEGE, "real-time priority not permitted: Operation not permitted"),
    (ONE_CPU, "real-time priority needs 2 CPUs; this process may use 1"),
], ids=["without-the-privilege", "on-one-cpu"])
def test_it_stays_normal_and_says_why(setup: str, why: str) -> None:
    out = subprocess.run([sys.executable, "-c", CHILD.format(setup=setup)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[3])
    answer, policy = out.stdout.split()
    assert answer == "normal"
    assert int(policy) == os.SCHED_OTHER
    assert why in out.stderr
