"""The variants of ``connstorm repro`` as child processes, several at a time.

Each variant is an independent stack (its own PostgreSQL, pooler, emulator and
Locust, on ports of their own), so nothing one variant measures is shared with
another: they can overlap. Most of a variant's time is waiting (Locust's steps,
its start, the stack's start, the summary), so two stacks on two cores finish
the comparison in a little more than half the time of one after another. The
verdicts are counts (refusals, peak connections, waiting clients, pins), which
sharing the CPU does not change; latencies and requests/s do rise with it,
which is why ``--jobs 1`` stays available.

How the overlap is kept fair and safe:

* **Stacks start one at a time.** A variant starts only once the one started
  before it has its stack up (``stack.json``) or has ended: the starts, the
  CPU-heaviest part, never compete, and the variants stay in their order. A
  variant holds its place among the ``jobs`` until its load is over (the child
  says ``loaded`` on its standard output once Locust has ended, or it ended):
  its stack stops and its report renders while the next one starts, which
  costs the CPU little and changes no count it measured. (Starting the next
  stack during the last seconds of a load instead was measured and gained
  nothing: the two cores are busy then, and the start took three times as long.)
* **Each variant runs in a child**, started while the one before it starts its
  stack and waiting on its standard input until its turn (``python -m
  connstorm.loadtests.orchestrator.repro_variant``), in a session of its own, so
  that a Ctrl-C in the terminal reaches connstorm only, which passes it on once
  (a second signal mid-cleanup would cut the cleanup short). A child dies with
  connstorm (``PR_SET_PDEATHSIG``, SIGTERM), and stops its stack on SIGTERM.
* **Whatever stops the run** (an error in one variant, Ctrl-C, SIGTERM), the
  children still under load are stopped, every child is waited for, and what
  each measured is kept. A child whose load is over is not signalled: it is
  already stopping its stack and writing its summary, and a signal then would
  lose a variant that was measured in full (its summary cut off mid-write).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from connstorm.errors import ConnstormError, ExitCode
from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.run_folder import STACK_FILE
from connstorm.signals import held_while_forking

#: Seconds a child may take to stop its stack after it was told to stop.
STOP_WAIT_S = 120.0
#: How often the scheduler looks at its children.
POLL_S = 0.1
#: What a prepared child waits for on its standard input before it starts its stack.
GO = b"go\n"
#: What a child writes on its standard output once its load is over.
LOADED = b"loaded\n"


def default_jobs() -> int:
    """Variants at once: one per core this process may run on (at least one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores)


class VariantFailedError(ConnstormError):
    """A variant's child ended with an error: its one line and its exit code, passed on."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        try:
            self.exit_code = ExitCode(exit_code)
        except ValueError:
            self.exit_code = ExitCode.INTERNAL


@dataclass
class Job:
    """One variant's child process: started early, told to go when its turn comes."""

    index: int
    name: str
    argv: list[str]
    run_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    stderr: IO[bytes] | None = None
    code: int | None = None
    going: bool = False
    signalled: bool = field(default=False)
    #: The child said its load is over (see :data:`LOADED`).
    loaded: bool = False
    _partial: bytes = b""

    @property
    def running(self) -> bool:
        """Told to go and not ended yet."""
        return self.going and self.poll() is None

    @property
    def loading(self) -> bool:
        """Holds a slot: told to go, not ended, and its load not over yet."""
        return self.running and not self._load_over()

    def _load_over(self) -> bool:
        """Whether the child has said ``loaded``; reads all it wrote so far, never blocks.

        Read to the end each time, so that a child writing more cannot fill the pipe.
        """
        if self.proc is None or self.proc.stdout is None or self.proc.stdout.closed:
            return self.loaded
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            self.loaded = self.loaded or LOADED.rstrip() in lines
            self._partial = self._partial[-4096:]
        return self.loaded

    def prepare(self) -> None:
        """Start the child, which imports what it needs and waits for :meth:`go`.

        Own session; dies with us; stderr kept for its error line.
        """
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        with held_while_forking():
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.stderr,
                                         start_new_session=True,
                                         preexec_fn=preexec_death_signal)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)

    def go(self) -> None:
        """Let the prepared child start its stack."""
        if self.proc is None:
            self.prepare()
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.going = True
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(GO)
            self.proc.stdin.close()

    def poll(self) -> int | None:
        """The exit code once it ended (and remembers it)."""
        if self.proc is not None and self.code is None:
            self.code = self.proc.poll()
        return self.code

    def stack_up(self) -> bool:
        """Its stack is running (or it ended): the next variant may start."""
        return self.poll() is not None or (self.run_dir / STACK_FILE).exists()

    def signal(self, sig: int) -> None:
        """Tell a child to stop, once (one not told to go yet just ends).

        One whose load is over is left to finish: it is stopping its stack and
        writing its summary already, which a signal would cut short.
        """
        if self.proc is None or self.poll() is not None or self.signalled:
            return
        if self.going and self._load_over():
            return
        self.signalled = True
        if not self.going and self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()  # end of input without "go": it ends at once
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> None:
        """Wait for the child to end; SIGKILL its session when it does not in time."""
        if self.proc is None or self.poll() is not None:
            return
        try:
            self.code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.code = self.proc.wait()

    def error_line(self) -> str:
        """The child's last line of stderr (its one-line error), without the prefix."""
        if self.stderr is None:
            return ""
        self.stderr.seek(0)
        lines = self.stderr.read()[-8192:].decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exited with code {self.code}"
        return last.removeprefix("connstorm: error: ")

    def close(self) -> None:
        """Release the child's stderr file and its standard output's pipe."""
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def variant_argv(name: str, run_dir: Path, *, quick: bool, preset: str,
                 locustfile: Path | None) -> list[str]:
    """The child's command line for one variant."""
    argv = [sys.executable, "-m", "connstorm.loadtests.orchestrator.repro_variant", name,
            "--out", str(run_dir), "--preset", preset]
    if quick:
        argv.append("--quick")
    if locustfile is not None:
        argv += ["--locustfile", str(locustfile)]
    return argv


Hook = Callable[[int, str], None]


def run_jobs(jobs: Sequence[Job], limit: int, on_start: Hook, on_done: Hook) -> None:
    """Run ``jobs`` in order, at most ``limit`` under load at a time.

    A job goes when fewer than ``limit`` have a stack running and the job before it
    has its stack up; the next job's child is started as one goes, so that its
    Python start-up is done by its turn. ``on_start``/``on_done(index, name)``
    are called as each goes and as each ends with its result written (exit 0).
    A child that fails stops the others and raises :class:`VariantFailedError`;
    Ctrl-C and SIGTERM are passed on to every child still under load and re-raised
    once all have ended; one whose load was over ends by itself, and if it wrote
    its result, ``on_done`` is called for it too. Either way every child has
    ended when this returns or raises.
    """
    pending = list(jobs)
    last: Job | None = None
    done: set[int] = set()
    try:
        if pending:
            pending[0].prepare()
        while pending or any(j.going and j.index not in done for j in jobs):
            for job in jobs:
                if job.going and job.index not in done and job.poll() is not None:
                    if job.code != 0:
                        raise VariantFailedError(f"{job.name}: {job.error_line()}",
                                                 job.code or ExitCode.INTERNAL)
                    done.add(job.index)
                    on_done(job.index, job.name)
            loading = sum(1 for j in jobs if j.loading)
            if pending and loading < limit and (last is None or last.stack_up()):
                last = pending.pop(0)
                on_start(last.index, last.name)
                last.go()
                if pending:
                    pending[0].prepare()
                continue
            time.sleep(POLL_S)
    except BaseException as exc:
        stop_all(jobs, signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM)
        raise
    finally:
        stop_all(jobs, signal.SIGTERM)
        for job in jobs:
            if job.going and job.index not in done and job.code == 0:
                done.add(job.index)
                on_done(job.index, job.name)
            job.close()


def stop_all(jobs: Sequence[Job], sig: int) -> None:
    """Signal every running child once, then wait for all of them."""
    for job in jobs:
        job.signal(sig)
    deadline = time.monotonic() + STOP_WAIT_S
    for job in jobs:
        job.wait(max(0.0, deadline - time.monotonic()))
