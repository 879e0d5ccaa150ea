"""The RDS Proxy stand-in's loop runs at real-time priority; nothing else of its process does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psycopg

from connstorm.local_stack.postgres import PostgresServer
from tests.local_stack.rds_proxy.conftest import ProxyFactory, client_dsn

TRY_FIFO = """
import os, sys
try:
    os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(1))
except OSError:
    sys.exit(1)
"""


def _fifo_permitted() -> bool:
    """Whether real-time priority may be had here: 2+ CPUs, and the right to ask."""
    if len(os.sched_getaffinity(0)) < 2:
        return False
    return subprocess.run([sys.executable, "-c", TRY_FIFO], check=False).returncode == 0


def _policy(tid: int) -> int:
    return os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK


def test_stand_in_loop_runs_realtime_and_the_thread_that_started_it_does_not(
        pg: PostgresServer, make_proxy: ProxyFactory) -> None:
    permitted = _fifo_permitted()
    proxy = make_proxy(pg)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert proxy.scheduling == ("realtime" if permitted else "normal")
    assert _policy(proxy.native_id) == (os.SCHED_FIFO if permitted else os.SCHED_OTHER)
    assert _policy(threading.get_native_id()) == os.SCHED_OTHER


def test_stand_in_realtime_priority_false_keeps_the_normal_policy(
        pg: PostgresServer, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(pg, realtime_priority=False)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert proxy.scheduling == "normal"
    assert _policy(proxy.native_id) == os.SCHED_OTHER
