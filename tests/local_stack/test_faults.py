"""Fault actions against a real stack: PostgreSQL, PgBouncer, the emulator and real handlers.

Two functions side by side on one stack, one per handler pattern: ``naive``
(``module_level``: no recovery) and ``resilient`` (``module_level_resilient``:
reopens a dead connection once). Each fault is done, then both are asked again;
the resilient one must answer within the bound the test states, the naive one
must fail the documented way (``connection_lost`` / ``admin_shutdown`` until its
environment is recycled).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connstorm.errors import StackError
from connstorm.local_stack.faults import Faults
from connstorm.local_stack.process import pid_alive
from connstorm.local_stack.stack import Stack
from connstorm.scenario import Scenario, load_scenario

pytestmark = pytest.mark.slow

#: How long the resilient pattern may take to answer again after a fault.
RECOVERY_BOUND_S = 15.0
#: What the naive pattern's failures are classified as after its connection died.
NAIVE_KINDS = {"connection_lost", "admin_shutdown"}

SCENARIO = """
name = "faults-test"
[postgres]
max_connections = 30
[pgbouncer]
enabled = {pgbouncer}
pool_mode = "transaction"
default_pool_size = 4
[lambda]
concurrency_limit = 20
[[functions]]
name = "naive"
pattern = "module_level"
database = "{database}"
timeout_s = 10
idle_lifetime_s = 600
[[functions]]
name = "resilient"
pattern = "module_level_resilient"
database = "{database}"
timeout_s = 10
idle_lifetime_s = 600
[[routes]]
method = "GET"
path = "/naive/items/{{id}}"
function = "naive"
[[routes]]
method = "GET"
path = "/resilient/items/{{id}}"
function = "resilient"
{timeline}
"""


def write_scenario(tmp_path: Path, *, database: str = "direct", timeline: str = "") -> Scenario:
    """The two-pattern scenario, straight to PostgreSQL or through PgBouncer."""
    path = tmp_path / "faults.toml"
    path.write_text(SCENARIO.format(pgbouncer="true" if database == "pgbouncer" else "false",
                                    database=database, timeline=timeline), encoding="utf-8")
    return load_scenario(path)


def get(stack: Stack, pattern: str) -> tuple[int, str]:
    """GET one item through the API front: (status, error kind or "").

    The kind is the handler's own (a 503 ``{"kind"}`` body) or the front's
    ``X-Connstorm-Error-Kind`` header (a 502 for a crashed or failed function).
    """
    url = f"{stack.emulator.api_url}/{pattern}/items/1"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        kind = exc.headers.get("X-Connstorm-Error-Kind") or ""
        if not kind:
            try:
                kind = str(json.loads(exc.read()).get("kind") or "")
            except ValueError:
                kind = ""
        return exc.code, kind


def recovers(stack: Stack, pattern: str, bound_s: float = RECOVERY_BOUND_S) -> float | None:
    """Seconds until ``pattern`` answers 200 again, None if not within ``bound_s``."""
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        if get(stack, pattern)[0] == 200:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


@pytest.fixture
def direct_stack(tmp_path: Path) -> Iterator[Stack]:
    """Both patterns straight to PostgreSQL, each with one warm environment."""
    with Stack(write_scenario(tmp_path), tmp_path / "run") as stack:
        assert get(stack, "naive") == (200, "")
        assert get(stack, "resilient") == (200, "")
        yield stack


def app_backends(stack: Stack) -> int:
    assert stack.postgres is not None
    with psycopg.connect(stack.postgres.admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                           (stack.postgres.app_user,)).fetchone()
    return int(row[0]) if row else 0


def assert_naive_fails_and_resilient_recovers(stack: Stack) -> None:
    # THEN the resilient pattern answers again within the bound
    assert recovers(stack, "resilient") is not None
    # AND the naive one fails the documented way on its warm environment
    status, kind = get(stack, "naive")
    assert status == 503
    assert kind in NAIVE_KINDS
    # AND keeps failing: nothing reopens its connection until the environment is recycled
    assert get(stack, "naive") == (503, "connection_lost")


@pytest.mark.parametrize("mode", ["fast", "smart"])
def test_restart_postgres_keeps_the_port_and_only_the_resilient_pattern_recovers(
        direct_stack: Stack, mode: str) -> None:
    # GIVEN both patterns hold a connection (smart shutdown would wait for them)
    assert direct_stack.postgres is not None
    port = direct_stack.postgres.port
    faults = Faults(direct_stack, smart_timeout_s=2.0)
    # WHEN PostgreSQL is restarted
    result = faults.restart_postgres(mode)
    # THEN it is back on the same port
    assert result["mode"] == mode
    assert direct_stack.postgres.port == port
    with psycopg.connect(direct_stack.postgres.app_dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert_naive_fails_and_resilient_recovers(direct_stack)


def test_a_restart_from_a_thread_that_ends_outlives_the_thread(direct_stack: Stack) -> None:
    # GIVEN PostgreSQL and PgBouncer-less stack; WHEN a short-lived thread (as a
    # timeline action runs in) restarts PostgreSQL and ends
    assert direct_stack.postgres is not None
    worker = threading.Thread(target=Faults(direct_stack).restart_postgres)
    worker.start()
    worker.join(60)
    # THEN the restarted server is still up well after that thread is gone (its
    # parent-death signal is tied to a thread that lives as long as we do)
    time.sleep(3)
    assert direct_stack.postgres.running()
    with psycopg.connect(direct_stack.postgres.app_dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_terminate_backends_cuts_every_app_connection(direct_stack: Stack) -> None:
    # GIVEN two environments connected as the app role
    assert app_backends(direct_stack) >= 2
    # WHEN every backend of the app role is terminated
    result = Faults(direct_stack).terminate_backends()
    # THEN both were cut, and the collector-like superuser session was not
    assert result["terminated"] >= 2
    assert app_backends(direct_stack) == 0
    assert_naive_fails_and_resilient_recovers(direct_stack)


def test_kill_environments_sigkills_n_environments_and_their_connections_go(
        direct_stack: Stack) -> None:
    # GIVEN the naive function has one warm environment holding a connection
    before = app_backends(direct_stack)
    # WHEN its environments are killed (asking for more than it has)
    result = Faults(direct_stack).kill_environments("naive", 3)
    # THEN one was killed, its connection went with it, and the next request cold-starts
    assert result == {"function": "naive", "killed": 1, "alive": 0}
    deadline = time.monotonic() + 10
    while app_backends(direct_stack) >= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert app_backends(direct_stack) == before - 1
    assert recovers(direct_stack, "naive") is not None


def test_kill_environments_of_an_unknown_function_is_one_line(direct_stack: Stack) -> None:
    with pytest.raises(StackError, match=r"answered 404 .*no function 'nope'"):
        Faults(direct_stack).kill_environments("nope", 1)


def test_freeze_database_stalls_everything_then_it_answers_again(direct_stack: Stack) -> None:
    assert direct_stack.postgres is not None
    pg = direct_stack.postgres
    done: dict[str, Any] = {}
    # WHEN the database is frozen for 3 s
    worker = threading.Thread(target=lambda: done.update(
        Faults(direct_stack).freeze_database(3.0)))
    worker.start()
    time.sleep(0.5)
    # THEN a new connection cannot even log in meanwhile
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.app_dsn, connect_timeout=1)
    worker.join(10)
    assert done["processes"] >= 3  # the postmaster, its helpers, the two backends
    # AND afterwards it answers, and both patterns go on (their connections survived)
    with psycopg.connect(pg.app_dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert recovers(direct_stack, "resilient") is not None
    assert recovers(direct_stack, "naive") is not None


def test_freeze_database_is_undone_when_stopped_early(direct_stack: Stack) -> None:
    assert direct_stack.postgres is not None
    stop = threading.Event()
    stop.set()
    result = Faults(direct_stack).freeze_database(60.0, stop)
    assert result["frozen_s"] < 5
    with psycopg.connect(direct_stack.postgres.app_dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_frozen_database_still_stops(tmp_path: Path) -> None:
    # GIVEN a stack whose database is frozen (as a run killed mid-freeze leaves it)
    stack = Stack(write_scenario(tmp_path), tmp_path / "run", with_emulator=False)
    stack.start()
    try:
        assert stack.postgres is not None
        frozen = stack.postgres.freeze()  # type: ignore[union-attr]
        assert frozen
    finally:
        # WHEN the stack is stopped
        started = time.monotonic()
        stack.stop()
    # THEN every frozen process is gone, promptly (no SIGKILL timeout needed)
    assert time.monotonic() - started < 10
    assert not [pid for pid in frozen if pid_alive(pid)]


def test_a_freeze_is_undone_by_its_watchdog_when_nobody_thaws_it(tmp_path: Path) -> None:
    # GIVEN a database frozen with a 1 s watchdog, and nobody to call thaw()
    # (what a connstorm SIGKILLed mid-freeze leaves behind)
    stack = Stack(write_scenario(tmp_path), tmp_path / "run", with_emulator=False)
    with stack:
        assert stack.postgres is not None
        pg: Any = stack.postgres
        frozen = pg.freeze(watchdog_s=1.0)
        watchdog = pg._watchdog
        pg._frozen, pg._watchdog = [], None  # forget it, as a killed process would
        # WHEN the watchdog's time has passed
        watchdog.wait(10)
        # THEN the server answers again
        with psycopg.connect(pg.app_dsn, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert all(pid_alive(pid) for pid in frozen[:1])


def test_network_latency_delays_queries_and_a_stall_holds_them(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, timeline=(
        '[[timeline]]\nat_s = 1\naction = "network_latency"\nms = 300\nseconds = 2\n'))
    with Stack(scenario, tmp_path / "run") as stack:
        # GIVEN the handlers reach PostgreSQL through the stack's proxy
        assert len(stack.db_proxies) == 1
        proxy = next(iter(stack.db_proxies.values()))
        env = stack.function_env(scenario.functions[0])
        assert int(env["DB_PORT"]) == proxy.port
        assert get(stack, "resilient") == (200, "")
        faults = Faults(stack)

        def timed_request() -> float:
            started = time.monotonic()
            assert get(stack, "resilient")[0] == 200
            return time.monotonic() - started

        fast = timed_request()
        # WHEN 300 ms are added each way for 2 s
        worker = threading.Thread(target=faults.network_latency, args=(300.0, 2.0))
        worker.start()
        time.sleep(0.1)
        slow = timed_request()
        worker.join(10)
        # THEN a query (one round trip at least) took 600 ms more
        assert slow >= fast + 0.55
        # AND a stall (ms covering the window) holds the request until the window ends
        worker = threading.Thread(target=faults.network_latency, args=(5000.0, 2.0))
        worker.start()
        time.sleep(0.1)
        stalled = timed_request()
        worker.join(10)
        assert stalled >= 1.5
        # AND afterwards it is fast again
        assert timed_request() < stalled


def test_restart_pgbouncer_keeps_the_port_and_clients_reconnect(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, database="pgbouncer")
    with Stack(scenario, tmp_path / "run") as stack:
        assert stack.pgbouncer is not None
        assert get(stack, "naive") == (200, "")
        assert get(stack, "resilient") == (200, "")
        port, old_pid = stack.pgbouncer.port, stack.pgbouncer.process.server_pid  # type: ignore[union-attr]
        # WHEN PgBouncer is killed and started again
        Faults(stack).restart_pgbouncer()
        # THEN it is another process on the same port
        assert stack.pgbouncer.port == port
        assert stack.pgbouncer.process.server_pid != old_pid  # type: ignore[union-attr]
        assert_naive_fails_and_resilient_recovers(stack)


def test_restart_rds_proxy_without_one_is_one_line(direct_stack: Stack) -> None:
    with pytest.raises(StackError, match="no restartable RDS Proxy"):
        Faults(direct_stack).restart_rds_proxy()


def test_emulator_kill_endpoint_refuses_a_bad_count(direct_stack: Stack) -> None:
    url = f"{direct_stack.emulator.api_url}/_connstorm/functions/naive/kill?count=0"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10)
    assert refused.value.code == 400
    assert "count" in json.loads(refused.value.read())["message"]
    # the environments are untouched
    assert get(direct_stack, "naive") == (200, "")


def test_deploy_publishes_a_new_version_and_the_next_request_cold_starts(
        direct_stack: Stack) -> None:
    # WHEN the timeline's deploy action runs against the naive function
    result = Faults(direct_stack).deploy("naive")
    # THEN a second version exists; its one old environment lingers, connected
    assert (result["function"], result["version"], result["superseded"]) == ("naive", 2, 1)
    before = app_backends(direct_stack)
    assert get(direct_stack, "naive") == (200, "")
    assert app_backends(direct_stack) == before + 1
