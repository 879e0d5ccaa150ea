"""ManagedProcess with real child processes."""

from __future__ import annotations

import os
import pwd
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from connstorm.errors import StackError
from connstorm.local_stack.os_user import server_user
from connstorm.local_stack.process import ManagedProcess, pid_alive


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_managed_process_failure_carries_log_tail(tmp_path: Path) -> None:
    proc = ManagedProcess("boomer", ["sh", "-c", "echo first; echo boom >&2; exit 3"],
                          log_path=tmp_path / "boom.log")
    with pytest.raises(StackError) as err, proc:
        proc.wait_ready(lambda: False, timeout_s=10)
    assert str(err.value).startswith("boomer exited with status 3 before it was ready")
    assert str(err.value).endswith("first\nboom")


def test_managed_process_wait_ready_times_out_with_last_check_error(tmp_path: Path) -> None:
    def check() -> bool:
        raise ConnectionRefusedError("nobody home")

    with ManagedProcess("sleeper", ["sleep", "30"], log_path=tmp_path / "s.log") as proc, \
            pytest.raises(StackError, match=r"not ready after 0.2 s \(last check: nobody home\)"):
        proc.wait_ready(check, timeout_s=0.2)


def test_managed_process_stop_kills_what_ignores_the_signal(tmp_path: Path) -> None:
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    proc = ManagedProcess("stubborn", [sys.executable, "-c", code], log_path=tmp_path / "x.log")
    proc.start()
    proc.wait_ready(lambda: "ready" in proc.log_tail(), timeout_s=20)
    proc.stop(signal.SIGTERM, timeout_s=0.3)
    assert proc.returncode == -signal.SIGKILL


def test_managed_process_runs_in_its_own_session(tmp_path: Path) -> None:
    with ManagedProcess("sleeper", ["sleep", "30"], log_path=tmp_path / "s.log") as proc:
        assert proc.pid is not None
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)


def test_managed_process_dies_with_the_thread_that_started_it(tmp_path: Path) -> None:
    procs: list[ManagedProcess] = []
    starter = threading.Thread(target=lambda: procs.append(
        _started(ManagedProcess("orphan", ["sleep", "60"], log_path=tmp_path / "o.log"))))
    starter.start()
    starter.join()
    pid = procs[0].pid
    assert pid is not None
    # the parent-death signal (SIGTERM) fires when the starting thread ends
    assert _wait_gone(pid)
    procs[0].stop()


def _started(proc: ManagedProcess) -> ManagedProcess:
    proc.start()
    return proc


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as another user only when root")
def test_managed_process_runs_as_the_server_user_and_stops_through_runuser(
        tmp_path: Path) -> None:
    user = server_user()
    assert user is not None
    proc = ManagedProcess("sleeper", ["sleep", "60"], log_path=tmp_path / "s.log", run_as=user)
    uid = pwd.getpwnam(user).pw_uid

    def _server_runs_as_user() -> bool:
        # runuser's child exists a moment before it drops to the user and execs.
        pid = proc.server_pid
        try:
            return pid is not None and Path(f"/proc/{pid}").stat().st_uid == uid
        except FileNotFoundError:
            return False

    with proc:
        proc.wait_ready(_server_runs_as_user, timeout_s=10)
        server = proc.server_pid
        assert server is not None
        assert server != proc.pid
        assert Path(f"/proc/{server}").stat().st_uid == uid
    assert _wait_gone(server)
    assert not proc.running()


def test_managed_process_missing_program_is_stack_error(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", ["/nonexistent/ghost"], log_path=tmp_path / "g.log")
    with pytest.raises(StackError, match="ghost: cannot run /nonexistent/ghost"), proc:
        pass
