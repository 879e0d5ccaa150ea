"""Tie a child process's life to its parent's with ``prctl(PR_SET_PDEATHSIG)``.

Every process the toolkit starts (PostgreSQL, PgBouncer, Locust, the emulator
server, its zygote and environments) must die with its parent, even when the
parent is SIGKILLed and runs no cleanup. Linux
delivers the death signal when the *thread* that forked the child exits, so
fork from a long-lived thread (the main thread or the event loop's).
"""

from __future__ import annotations

import ctypes
import os
import signal

from connstorm.signals import release_in_child

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(sig: int = signal.SIGKILL, expected_parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    When ``expected_parent`` is given and the parent already died (we were
    re-parented before the call), exit at once: the signal would never come.
    """
    if _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)


def preexec_death_signal(sig: int = signal.SIGTERM) -> None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` (runs in the child before exec).

    Also releases the signals :func:`connstorm.signals.held_while_forking` held:
    a signal mask survives exec, and a server with SIGTERM blocked never stops.
    """
    release_in_child()
    _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
