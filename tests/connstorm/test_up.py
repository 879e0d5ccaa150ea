"""`connstorm up` as a real subprocess: --check, SIGTERM, SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connstorm.errors import ExitCode
from connstorm.local_stack.process import descendants, pid_alive
from connstorm.local_stack.scratch import LINK_NAME, clean_stale, processes_in

pytestmark = pytest.mark.slow

UP = [sys.executable, "-m", "connstorm", "up"]


def _wait_for(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _start_up(run_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen([*UP, "pgbouncer-transaction", "--out", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=run_dir.parent)
    stack_json = run_dir / "stack.json"
    if not _wait_for(lambda: stack_json.is_file() or proc.poll() is not None, 90):
        proc.kill()
        pytest.fail("connstorm up did not write stack.json within 90 s")
    if proc.poll() is not None:
        pytest.fail(f"connstorm up exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, json.loads(stack_json.read_text())


def _scratch(run_dir: Path) -> Path:
    link = run_dir / LINK_NAME
    return Path(link.read_text().strip()) if link.is_file() else link


def test_up_check_shows_the_stack_working_and_stops_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run([*UP, "--check", "--out", str(run_dir)], capture_output=True,
                            text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "postgresql://app:***@127.0.0.1:" in out
    assert "direct to PostgreSQL: connected as app" in out
    assert "through PgBouncer: connected" in out
    assert "check passed" in out
    doc = json.loads((run_dir / "stack.json").read_text())
    # the passwords are in stack.json only, never printed
    for key in ("postgres_dsn", "postgres_admin_dsn", "pgbouncer_dsn", "pgbouncer_admin_dsn"):
        password = str(doc[key]).split(":")[2].split("@")[0]
        assert password not in out
        assert password not in result.stderr
    assert not (run_dir / LINK_NAME).exists()


@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGTERM, ExitCode.TERMINATED, "connstorm: terminated, everything stopped"),
    (signal.SIGINT, ExitCode.INTERRUPTED, "connstorm: interrupted, everything stopped"),
], ids=["SIGTERM", "Ctrl-C"])
def test_up_signal_stops_every_server(tmp_path: Path, sig: signal.Signals, code: int,
                                      line: str) -> None:
    # GIVEN connstorm up running a whole stack
    run_dir = tmp_path / "run"
    proc, doc = _start_up(run_dir)
    assert doc["pid"] == proc.pid
    scratch = _scratch(run_dir)
    servers = set(processes_in(scratch))
    family = set(descendants(proc.pid))
    assert len(servers) >= 2  # postgres and pgbouncer at least
    assert servers <= family
    # WHEN it gets SIGTERM, or SIGINT as Ctrl-C sends it (to connstorm only: the
    # servers run in sessions of their own)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # THEN it stops everything and says so in one line
    assert proc.returncode == code
    assert err.strip().splitlines()[-1] == line
    assert "Traceback" not in err
    assert not [p for p in family if pid_alive(p)]
    assert not scratch.exists()


def test_up_sigkill_leaves_no_server_behind(tmp_path: Path, private_scratch_root: Path) -> None:
    # GIVEN connstorm up running a whole stack, its scratch folder where no other
    # test's stack start would clean it first
    _sigkill_then_clean(tmp_path / "run")


def _sigkill_then_clean(run_dir: Path) -> None:
    proc, _ = _start_up(run_dir)
    scratch = _scratch(run_dir)
    family = set(descendants(proc.pid))
    assert processes_in(scratch)
    # WHEN it is SIGKILLed (no chance to clean up)
    proc.kill()
    proc.communicate(timeout=30)
    # THEN every process it started dies within a few seconds (parent-death signal)
    assert _wait_for(lambda: not [p for p in family if pid_alive(p)], 15), \
        [Path(f"/proc/{p}/cmdline").read_bytes() for p in family if pid_alive(p)]
    # AND the next start cleans the crashed run's folder
    assert scratch.exists()
    assert scratch in clean_stale(run_dir.parent)
    assert not scratch.exists()


def test_up_bad_override_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    result = subprocess.run([*UP, "--set", "postgres.max_connections=lots", "--out",
                             str(tmp_path / "run")], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == ExitCode.SCENARIO
    assert result.stderr.count("\n") == 1
    assert "[postgres] max_connections: expected an integer" in result.stderr
    assert not (tmp_path / "run").exists()


def test_up_port_in_use_style_environment_error_exit_code(tmp_path: Path) -> None:
    env = dict(os.environ, CONNSTORM_PG_BINDIR="/nonexistent")
    result = subprocess.run([*UP, "--out", str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == ExitCode.ENVIRONMENT
    # the line names the setting that is wrong, not "set CONNSTORM_PG_BINDIR", which is set
    assert result.stderr.strip().splitlines() == [
        "connstorm: error: CONNSTORM_PG_BINDIR=/nonexistent: no PostgreSQL server binaries "
        "(initdb, postgres) in it; point it at their folder, or unset it to use the installed "
        "ones (apt-get install -y postgresql installs them)"]
    assert not (tmp_path / "run" / LINK_NAME).exists()


def test_up_backend_option_selects_containers_over_the_scenario() -> None:
    from connstorm.cli.commands.up import scenario_from_args
    from connstorm.cli.main import build_parser

    parser = build_parser()
    assert scenario_from_args(parser.parse_args(["up"])).postgres.backend == "native"
    chosen = scenario_from_args(parser.parse_args(["up", "--backend", "docker"]))
    assert chosen.postgres.backend == "docker"
    # an explicit --set of the same key loses to --backend, which is applied last
    both = parser.parse_args(["up", "--set", 'postgres.backend="native"', "--backend", "docker"])
    assert scenario_from_args(both).postgres.backend == "docker"


def test_up_check_goes_through_the_rds_proxy_stand_in_when_enabled(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run([*UP, "--check", "--set", "rds_proxy.enabled=true", "--out",
                             str(run_dir)], capture_output=True, text=True, timeout=180,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "through the RDS Proxy stand-in: connected, server port" in result.stdout
    doc = json.loads((run_dir / "stack.json").read_text())
    password = str(doc["rds_proxy_dsn"]).split(":")[2].split("@")[0]
    assert password not in result.stdout
    assert "RDS Proxy stand-in" in result.stdout
