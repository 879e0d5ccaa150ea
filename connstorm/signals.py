"""SIGTERM as an exception, so that every ``with`` block unwinds and stops its servers.

Python turns SIGINT into ``KeyboardInterrupt`` but dies on SIGTERM without running
``__exit__``; connstorm promises that no server outlives it, so SIGTERM must
unwind the same way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Signals that unwind the toolkit; held while forking (see :func:`held_while_forking`).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

_received_sigterm = False


class Terminated(BaseException):  # named like KeyboardInterrupt, its sibling
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _received_sigterm
    _received_sigterm = True
    raise Terminated()


def received_sigterm() -> bool:
    """Whether SIGTERM arrived inside :func:`exit_on_sigterm`, even if its exception was lost.

    A backstop: an exception raised by a signal handler while Python runs a
    callback it cannot propagate from (a ``__del__``, an at-fork hook) is
    printed and dropped, and the command would go on as if nothing happened.
    """
    return _received_sigterm


@contextmanager
def held_while_forking() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a child is forked; they are delivered right after.

    ``subprocess.Popen`` with a ``preexec_fn`` runs Python's at-fork hooks in the
    parent (logging releases its lock there); a signal handler that raises inside
    such a hook has its exception dropped, so Ctrl-C or SIGTERM would be lost.
    The child inherits the mask: its ``preexec_fn`` must call
    :func:`release_in_child`.

    The mask is the calling thread's: in a process with other threads, the kernel
    may hand a process-directed SIGTERM to one of them, and Python then runs the
    handler in the main thread anyway, possibly inside such a hook. That case is
    covered after the fact: the handler also records the signal, and the command
    line exits 143 when a :class:`Terminated` was swallowed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def release_in_child() -> None:
    """Undo :func:`held_while_forking` in a child before it execs (masks survive exec)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _received_sigterm
    _received_sigterm = False
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
