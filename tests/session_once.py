"""Work done once per test session, however many pytest-xdist workers need it.

``make test`` runs four workers and hands out tests one at a time, so the tests
of one module land on every worker, and a module-scoped fixture would run once
per worker: a container image built four times, or the driver matrix (a hundred
Lambda environments, seven proxies, two PgBouncers) run four times at once on
two cores, each copy slowing the others until their timeouts, not the drivers,
decide verdicts. The first worker to get here does the work under a lock; the
others wait for it and use what it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def shared_folder(factory: pytest.TempPathFactory) -> Path:
    """A folder every process of this test session shares (pytest-xdist's workers too)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def session_lock(shared: Path, name: str) -> Iterator[None]:
    """Hold the session-wide lock ``name`` (one worker at a time inside)."""
    with (shared / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def made_once(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder ``make`` filled, by the first worker to ask; the others get the same folder.

    For what tests only read (a finished run folder): a worker that writes into it
    would race the others. A ``make`` that fails leaves nothing recorded, so the next
    worker tries again and reports its own failure.
    """
    shared = shared_folder(factory)
    made = shared / f"{name}.folder"
    with session_lock(shared, name):
        if not made.exists():
            folder = factory.mktemp(name)
            make(folder)
            made.write_text(str(folder))
    return Path(made.read_text())
