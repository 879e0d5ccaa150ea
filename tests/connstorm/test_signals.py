"""SIGTERM unwinds the toolkit even when it lands while a child is being forked."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import threading

import pytest

from connstorm.cli import main as cli
from connstorm.errors import ExitCode
from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.signals import Terminated, exit_on_sigterm, held_while_forking


def _signal_self_under_the_hold(steps: list[str]) -> None:
    with held_while_forking():
        # Sent to the main thread, which the hold masks: a process-directed kill could be
        # taken by another thread (pytest-xdist's worker has one), and Python then runs
        # the handler in the main thread at once (connstorm.signals says what covers that)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        steps.append("inside")  # still here: the signal waits until the fork is over
    steps.append("after")


def test_signals_sigterm_held_while_forking_is_delivered_after() -> None:
    steps: list[str] = []
    with exit_on_sigterm(), pytest.raises(Terminated):
        _signal_self_under_the_hold(steps)
    assert steps == ["inside"]


def test_signals_child_forked_under_the_hold_has_nothing_blocked() -> None:
    with held_while_forking():
        out = subprocess.run(["grep", "^SigBlk:", "/proc/self/status"], capture_output=True,
                             text=True, check=True, preexec_fn=preexec_death_signal).stdout
    blocked = int(out.split()[1], 16)
    assert blocked & (1 << (signal.SIGTERM - 1)) == 0
    assert blocked & (1 << (signal.SIGINT - 1)) == 0


def test_signals_sigterm_whose_exception_was_swallowed_still_exits_143(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a command that loses the Terminated exception, as an at-fork hook would
    def swallowing_command(args: argparse.Namespace) -> int:
        with contextlib.suppress(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=swallowing_command, verbose=False)
    monkeypatch.setattr(cli, "build_parser", lambda *_: parser)
    # WHEN it runs under the CLI  THEN the exit code still says SIGTERM
    assert cli.main([]) == ExitCode.TERMINATED
    assert "terminated" in capsys.readouterr().err
