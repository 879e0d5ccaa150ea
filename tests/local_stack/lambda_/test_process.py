"""EmulatorProcess: the server as the stack runs it, through boto3, and its death."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from connstorm.errors import StackError
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.process import EmulatorProcess
from connstorm.scenario import load_scenario
from tests.local_stack.lambda_.emulator_helpers import (
    COUNTER_SCENARIO,
    FIXTURES,
    alive,
    children_of,
    wait_until,
)

SCENARIO = COUNTER_SCENARIO

HELPER = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config
from connstorm.scenario import load_scenario
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.process import EmulatorProcess

proc = EmulatorProcess(load_scenario(sys.argv[1]), sys.argv[2])
proc.start()
client = boto3.client("lambda", endpoint_url=proc.invoke_url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x",
                      config=Config(retries={"total_max_attempts": 1}))
def call(_):
    out = client.invoke(FunctionName="counter", Payload=b'{"sleep_s": 0.3}')
    return json.loads(out["Payload"].read())["pid"]
with ThreadPoolExecutor(3) as pool:
    pids = list(pool.map(call, range(3)))
print(json.dumps({"server": proc.pid, "envs": pids}), flush=True)
time.sleep(300)
"""


def _scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "emulator.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def _client(url: str) -> Any:
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}))


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_process_serves_invoke_api_stats_and_health(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    scenario = load_scenario(_scenario_file(tmp_path))
    with EmulatorProcess(scenario, run_dir, {"counter": {"DB_PASSWORD": "s3cret"}}) as emu:
        assert emu.invoke_url == emu.api_url
        assert emu.stats_url.endswith("/_connstorm/stats")
        health = _get_json(f"{emu.api_url}/_connstorm/health")
        assert health["ok"] is True
        assert health["functions"] == ["counter"]
        client = _client(emu.invoke_url)
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda _: client.invoke(
                FunctionName="counter", Payload=b'{"sleep_s": 0.3}'), range(2)))
        bodies = [json.loads(o["Payload"].read()) for o in outs]
        assert len({b["pid"] for b in bodies}) == 2
        assert all(b["env"]["FIXTURE_VAR"] == "scenario" for b in bodies)
        stats = _get_json(emu.stats_url)
        assert stats["invocations"] == 2
        assert stats["cold_starts"] == 2
        assert stats["functions"]["counter"]["concurrency_peak"] == 2
        server_pid = emu.pid
        assert server_pid is not None
    assert not alive(server_pid)
    assert wait_until(lambda: not any(alive(b["pid"]) for b in bodies), 5)
    assert (run_dir / "emulator-config.json").stat().st_mode & 0o777 == 0o600
    assert "s3cret" not in (run_dir / "logs" / "emulator.log").read_text()
    rows = (run_dir / "invocations.jsonl").read_text().splitlines()
    assert len(rows) == 2


def test_process_startup_timeout_stops_the_server_and_says_where_to_look(
        tmp_path: Path) -> None:
    scenario = load_scenario(_scenario_file(tmp_path))
    emu = EmulatorProcess(scenario, tmp_path / "run", startup_timeout_s=0.001)
    with pytest.raises(StackError,
                       match=r"did not answer /_connstorm/health within .*emulator\.log"):
        emu.start()
    assert emu.proc is not None
    assert emu.proc.poll() is not None


def test_server_unreadable_config_exits_3_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "connstorm.local_stack.lambda_",
                          "--config", str(bad)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 3
    assert "cannot read the emulator config" in out.stderr
    assert "Traceback" not in out.stderr


def _python_processes() -> list[tuple[int, list[str]]]:
    """Every process's pid and argv (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            out.append((int(entry), raw.decode(errors="replace").split("\0")))
    return out


def test_server_port_in_use_exits_5_with_one_line(tmp_path: Path) -> None:
    # GIVEN a port someone else listens on
    scenario = load_scenario(_scenario_file(tmp_path))
    config = EmulatorConfig.from_scenario(scenario, tmp_path / "run", {})
    config.write(tmp_path / "config.json")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # WHEN the emulator server is told to listen there
        server = subprocess.Popen([sys.executable, "-m", "connstorm.local_stack.lambda_",
                                   "--config",
                                   str(tmp_path / "config.json"), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, stderr = server.communicate(timeout=60)
    # THEN it says so in one line, with its own exit code, and leaves nothing running:
    # no zygote of that server (a zygote's argv names its emulator's pid)
    assert server.returncode == 5
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr
    assert not [pid for pid, argv in _python_processes()
                if "connstorm.local_stack.lambda_.zygote" in argv and str(server.pid) in argv]


@pytest.mark.slow
def test_process_sigkill_of_the_toolkit_leaves_no_environment(tmp_path: Path) -> None:
    # GIVEN a toolkit process running the emulator with three environments
    helper = subprocess.Popen([sys.executable, "-c", HELPER, str(_scenario_file(tmp_path)),
                               str(tmp_path / "run")], stdout=subprocess.PIPE, text=True,
                              cwd=str(FIXTURES.parents[3]))
    try:
        assert helper.stdout is not None
        info = json.loads(helper.stdout.readline())
        server, envs = info["server"], info["envs"]
        zygotes = children_of(server)
        assert len(set(envs)) == 3
        assert all(alive(p) for p in envs)
        assert zygotes
        # WHEN the toolkit is SIGKILLed (no cleanup code runs)
        os.kill(helper.pid, signal.SIGKILL)
        helper.wait(timeout=10)
        # THEN the server, its zygote and every environment die (bounded wait)
        assert wait_until(lambda: not any(alive(p) for p in [server, *zygotes, *envs]), 20)
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()


def test_process_sigkill_of_the_server_kills_its_environments(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario_file(tmp_path))
    with EmulatorProcess(scenario, tmp_path / "run") as emu:
        body = json.loads(_client(emu.invoke_url).invoke(FunctionName="counter")["Payload"].read())
        assert emu.pid is not None
        zygotes = children_of(emu.pid)
        os.kill(emu.pid, signal.SIGKILL)
        assert wait_until(lambda: not any(alive(p) for p in [body["pid"], *zygotes]), 10)
