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


class Terminated(BaseException):  # named like KeyboardInterrupt, its sibling
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
