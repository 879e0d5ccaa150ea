"""Held connections never outlive the emulator server, however it ends.

The server runs as the stack runs it (:class:`EmulatorProcess`, from a helper
process standing for connstorm); a reaped environment leaves its connection held
for ten minutes, then the server is ended by SIGTERM, Ctrl-C (SIGINT), SIGKILL,
or the death of the process that started it. Each time the backend goes with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from connstorm.local_stack.postgres import PostgresServer
from tests.local_stack.lambda_.emulator_helpers import FIXTURES, alive, wait_until

pytestmark = pytest.mark.slow

HELPER = """
import json, sys, time, urllib.request
from connstorm.scenario import load_scenario
from connstorm.local_stack.lambda_.process import EmulatorProcess

proc = EmulatorProcess(load_scenario(sys.argv[1]), sys.argv[2])
proc.start()
request = urllib.request.Request(
    f"{proc.invoke_url}/2015-03-31/functions/db/invocations", data=b"{}", method="POST")
with urllib.request.urlopen(request, timeout=60) as resp:
    body = json.loads(resp.read())
print(json.dumps({"server": proc.pid, "env": body["pid"]}), flush=True)
time.sleep(300)
"""


def _backends(admin_dsn: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("select count(*) from pg_stat_activity "
                           "where application_name like 'env-%'").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def helper(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[
        Callable[[], tuple[subprocess.Popen[str], int, int]]]:
    """Start the helper; returns (helper, server pid, environment pid) once it answered."""
    marks = tmp_path / "marks"
    marks.mkdir()
    scenario = tmp_path / "vanish.toml"
    scenario.write_text(f"""
name = "vanish"
[lambda]
vanished_linger_s = 600
[[functions]]
name = "db"
handler = "vanish_handler.lambda_handler"
code_dir = "{FIXTURES}"
database = "none"
preload = ["psycopg"]
idle_lifetime_s = 0.3
env = {{ FIXTURE_DSN = "{postgres_server.app_dsn}", FIXTURE_MARKS = "{marks}" }}
""", encoding="utf-8")
    started: list[subprocess.Popen[str]] = []

    def start() -> tuple[subprocess.Popen[str], int, int]:
        proc = subprocess.Popen([sys.executable, "-c", HELPER, str(scenario),
                                 str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        doc = json.loads(line)
        return proc, int(doc["server"]), int(doc["env"])

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGINT", "SIGKILL", "parent death"])
def test_held_connections_close_however_the_emulator_ends(
        ending: str, helper: Callable[[], tuple[subprocess.Popen[str], int, int]],
        postgres_server: PostgresServer) -> None:
    proc, server, env = helper()
    # GIVEN a reaped environment whose connection the server holds for 600 s
    assert wait_until(lambda: not alive(env), 30)
    assert _backends(postgres_server.admin_dsn) == 1
    # WHEN the emulator server ends
    if ending == "parent death":
        proc.kill()
    else:
        os.kill(server, getattr(signal, ending))
    # THEN it is gone, and so is the connection it held
    assert wait_until(lambda: not alive(server), 30)
    assert wait_until(lambda: _backends(postgres_server.admin_dsn) == 0, 10)
