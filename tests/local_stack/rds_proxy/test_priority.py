"""The RDS Proxy stand-in's loop runs at real-time priority; nothing else of its process does."""

from __future__ import annotations

import os
import threading

import psycopg

from connstorm.local_stack.postgres import PostgresServer
from tests.local_stack.rds_proxy.conftest import ProxyFactory, client_dsn
from tests.local_stack.realtime import fifo_permitted, policy


def test_stand_in_loop_runs_realtime_and_the_thread_that_started_it_does_not(
        pg: PostgresServer, make_proxy: ProxyFactory) -> None:
    permitted = fifo_permitted()
    proxy = make_proxy(pg)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert proxy.scheduling == ("realtime" if permitted else "normal")
    assert policy(proxy.native_id) == (os.SCHED_FIFO if permitted else os.SCHED_OTHER)
    assert policy(threading.get_native_id()) == os.SCHED_OTHER


def test_stand_in_realtime_priority_false_keeps_the_normalpolicy(
        pg: PostgresServer, make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(pg, realtime_priority=False)
    with psycopg.connect(client_dsn(proxy, pg), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert proxy.scheduling == "normal"
    assert policy(proxy.native_id) == os.SCHED_OTHER
