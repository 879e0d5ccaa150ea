"""connstorm capacity: RDS's formulas, pattern costs, poolers, and bad input from the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from connstorm.capacity import (
    CapacityInputError,
    CapacityRequest,
    class_max_connections,
    plan_capacity,
    proxy_pool_size,
)
from connstorm.local_stack.rds_proxy.pool import pool_limit

# AWS's table (RDS User Guide, "Maximum number of database connections"): class,
# PostgreSQL, MySQL/MariaDB.
GUIDE_TABLE = [
    ("db.t3.micro", 112, 85), ("db.t4g.micro", 112, 85), ("db.t3.small", 225, 170),
    ("db.t3.medium", 450, 341), ("db.m5.large", 901, 682), ("db.r5.large", 1802, 1365),
    ("db.r6g.xlarge", 3604, 2730),
]


@pytest.mark.parametrize(("instance_class", "postgres", "mysql"), GUIDE_TABLE)
def test_capacity_formula_matches_the_guide_table(instance_class: str, postgres: int,
                                                  mysql: int) -> None:
    assert class_max_connections("postgres", instance_class) == postgres
    assert class_max_connections("mysql", instance_class) == mysql
    assert class_max_connections("mariadb", instance_class) == mysql


def test_capacity_postgres_formula_is_capped_at_5000() -> None:
    assert class_max_connections("postgres", "db.r6g.2xlarge") == 5000
    assert class_max_connections("mysql", "db.r6g.2xlarge") > 5000


def test_capacity_plan_states_memory_is_below_nominal() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=10, instance_class="db.t3.medium"))
    assert plan.max_connections_range == (396, 437)
    assert any("below nominal" in note and "upper bound" in note for note in plan.notes)
    # t2.medium (4 GiB) was observed at 413: inside the range, under the formula's figure.
    low, high = plan.max_connections_range
    assert low <= 413 <= high < plan.max_connections


@pytest.mark.parametrize(("pattern", "extra", "per_env"), [
    ("per_invocation", {}, 1), ("module_level", {}, 1), ("module_level_resilient", {}, 1),
    ("secrets_cached", {}, 1), ("iam_token", {}, 1),
    ("leaky", {"invocations_per_env": 7}, 7), ("in_process_pool", {"env_pool_size": 5}, 5),
])
def test_capacity_pattern_costs_per_environment(pattern: str, extra: dict[str, int],
                                                per_env: int) -> None:
    plan = plan_capacity(CapacityRequest(concurrency=20, max_connections=100, pattern=pattern,
                                         **extra))
    assert plan.connections_per_env == per_env
    assert plan.peak_db_connections == 20 * per_env
    assert plan.max_concurrency_direct == 97 // per_env


def test_capacity_direct_module_level_over_the_limit_does_not_fit() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=200, instance_class="db.t3.micro"))
    assert plan.peak_db_connections == 200
    assert plan.usable == 109
    assert plan.headroom == -91
    assert not plan.fits
    assert plan.max_concurrency_direct == 109
    assert plan.max_concurrency_direct_low == 96


def test_capacity_transaction_pooler_bounds_the_database_to_the_pool() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=200, instance_class="db.t3.micro",
                                         pattern="leaky", pooler_pool_size=20))
    assert plan.peak_client_connections == 2000
    assert plan.peak_db_connections == 20
    assert plan.fits
    assert plan.max_pool_size == 109


def test_capacity_session_pooler_leaves_pinned_clients_waiting() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=60, max_connections=20, pooler_pool_size=10,
                                         pooler_mode="session"))
    assert plan.peak_db_connections == 10
    assert plan.peak_waiting_clients == 50
    assert any("query_wait_timeout" in note for note in plan.notes)


def test_capacity_reserved_and_other_connections_reduce_the_usable_limit() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=1, max_connections=100, reserved=5,
                                         other_connections=10))
    assert plan.usable == 85
    mysql = plan_capacity(CapacityRequest(concurrency=1, engine="mysql",
                                          instance_class="db.t3.medium"))
    assert mysql.reserved == 0
    assert mysql.usable == 341


@pytest.mark.parametrize(("request_args", "message"), [
    ({"instance_class": "db.x9.huge"}, "unknown instance class 'db.x9.huge'; known: db.t3.micro"),
    ({"instance_class": "db.t3.micro", "concurrency": -1}, "--concurrency: must be at least 0"),
    ({"instance_class": "db.t3.micro", "engine": "oracle"}, "--engine: unknown engine"),
    ({"instance_class": "db.t3.micro", "pattern": "magic"}, "--pattern: unknown pattern"),
    ({}, "give one of them"),
])
def test_capacity_plan_rejects_bad_input(request_args: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"concurrency": 10, **request_args}
    with pytest.raises(CapacityInputError, match=message):
        plan_capacity(CapacityRequest(**args))  # type: ignore[arg-type]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connstorm", "capacity", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("args", "needle"), [
    (["--instance-class", "db.nope.large", "--concurrency", "10"],
     "unknown instance class 'db.nope.large'; known: "),
    (["--instance-class", "db.t3.small", "--concurrency", "-5"],
     "--concurrency: must be at least 0, got -5"),
    (["--instance-class", "db.t3.small", "--concurrency", "lots"],
     "--concurrency: expected a whole number, got 'lots'"),
    (["--instance-class", "db.t3.small"], "--concurrency: missing"),
    (["--max-connections", "0", "--concurrency", "3"], "--max-connections: must be at least 1"),
    (["--max-connections", "20", "--concurrency", "3", "--versions", "0"],
     "--versions: must be at least 1, got 0"),
    (["--max-connections", "20", "--concurrency", "3", "--versions", "two"],
     "--versions: expected a whole number, got 'two'"),
])
def test_capacity_cli_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("connstorm: error: ")
    assert needle in lines[0]
    assert "Traceback" not in done.stderr


def test_capacity_cli_prints_the_plan_and_the_memory_caveat() -> None:
    done = run_cli("--instance-class", "db.t3.medium", "--concurrency", "200")
    assert done.returncode == 0, done.stderr
    assert "max_connections         450" in done.stdout
    assert "peak DB connections     200" in done.stdout
    assert "below nominal (88-97 %)" in done.stdout


def test_capacity_cli_json_is_the_plan() -> None:
    done = run_cli("--engine", "mysql", "--instance-class", "db.t3.medium", "--concurrency",
                   "400", "--pool-size", "100", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["max_connections"] == 341
    assert plan["peak_client_connections"] == 400
    assert plan["peak_db_connections"] == 100
    assert plan["fits"] is True


def test_capacity_cli_lists_the_classes() -> None:
    done = run_cli("--list-classes", "--json")
    assert done.returncode == 0, done.stderr
    table = {row["instance_class"]: row["max_connections"] for row in json.loads(done.stdout)}
    for instance_class, postgres, _ in GUIDE_TABLE:
        assert table[instance_class] == postgres


def test_capacity_rds_proxy_percent_sets_the_pool() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=1000, instance_class="db.t3.medium",
                                         proxy_max_connections_percent=50))
    assert plan.max_connections == 450
    # the stand-in's pool: 50 % of max_connections itself, as RDS computes it
    assert plan.pool_size == proxy_pool_size(450, 50) == 225
    assert plan.peak_db_connections == 225
    assert plan.peak_waiting_clients == 775
    assert (plan.pool_mode, plan.fits) == ("transaction", True)
    assert any("pins" in note for note in plan.notes)


def test_capacity_proxy_pool_is_the_stand_ins() -> None:
    # one formula: the RDS Proxy stand-in sizes its pool with the planner's function
    for limit, percent in ((20, 50), (20, 100), (450, 50), (5, 1)):
        assert pool_limit(limit, percent) == proxy_pool_size(limit, percent)


def test_capacity_a_proxy_pool_above_the_app_roles_slots_is_named() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=40, max_connections=20,
                                         proxy_max_connections_percent=100))
    assert plan.pool_size == 20
    assert any("DatabaseConnectionsSetupFailed" in note for note in plan.notes)


def test_capacity_session_state_through_rds_proxy_is_pinned() -> None:
    # SET in the session pins it (AWS, "Avoiding pinning an RDS Proxy"): no multiplexing
    pinned = plan_capacity(CapacityRequest(concurrency=60, max_connections=20,
                                           pattern="session_state",
                                           proxy_max_connections_percent=50))
    assert (pinned.pool_mode, pinned.pool_size) == ("session", 10)
    assert pinned.peak_waiting_clients == 50
    resilient = plan_capacity(CapacityRequest(concurrency=60, max_connections=20,
                                              pattern="module_level_resilient",
                                              proxy_max_connections_percent=50))
    assert resilient.pool_mode == "transaction"
    # directly, session state costs what module_level costs
    direct = plan_capacity(CapacityRequest(concurrency=60, max_connections=20,
                                           pattern="session_state"))
    assert (direct.connections_per_env, direct.pool_mode) == (1, None)


def test_capacity_statement_mode_counts_as_transaction_mode() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=60, max_connections=20, pooler_pool_size=10,
                                         pooler_mode="statement"))
    assert (plan.pool_mode, plan.peak_db_connections, plan.fits) == ("transaction", 10, True)


@pytest.mark.parametrize(("extra", "message"), [
    ({"proxy_max_connections_percent": 0}, "must be 1-100"),
    ({"proxy_max_connections_percent": 50, "pooler_pool_size": 10}, "not both"),
])
def test_capacity_rds_proxy_percent_rejects_bad_input(extra: dict[str, int],
                                                      message: str) -> None:
    with pytest.raises(CapacityInputError, match=message):
        plan_capacity(CapacityRequest(concurrency=1, max_connections=100, **extra))


def test_capacity_versions_multiply_the_connections_frozen_environments_hold() -> None:
    # GIVEN the deploy demo's numbers: 6 environments, 16 usable, three versions at once
    plan = plan_capacity(CapacityRequest(concurrency=6, max_connections=20, reserved=3,
                                         other_connections=1, versions=3))
    # THEN each version's environments hold their connection: 18 of 16
    assert (plan.versions, plan.peak_client_connections, plan.peak_db_connections) == (3, 18, 18)
    assert (plan.headroom, plan.fits) == (-2, False)
    # AND reserved concurrency must leave room for every version: 16 // 3
    assert plan.max_concurrency_direct == 5
    assert any(note.startswith("versions: 3 versions' environments") for note in plan.notes)
    pooled = plan_capacity(CapacityRequest(concurrency=6, max_connections=20, versions=3,
                                           env_pool_size=2, pattern="in_process_pool"))
    assert (pooled.peak_db_connections, pooled.max_concurrency_direct) == (36, 2)


def test_capacity_versions_cost_nothing_to_a_pattern_that_holds_no_connection() -> None:
    plan = plan_capacity(CapacityRequest(concurrency=6, max_connections=20,
                                         pattern="per_invocation", versions=3))
    assert (plan.versions, plan.peak_db_connections, plan.max_concurrency_direct) == (1, 6, 17)
    assert any("old versions cost nothing" in note for note in plan.notes)


def test_capacity_versions_through_a_pooler_hold_clients_not_transaction_connections() -> None:
    # transaction mode: an old version's idle clients hold no server connection
    transaction = plan_capacity(CapacityRequest(concurrency=6, max_connections=20,
                                                pooler_pool_size=10, versions=3))
    assert (transaction.peak_client_connections, transaction.peak_db_connections) == (18, 6)
    assert transaction.peak_waiting_clients == 0
    # session mode: each old client keeps its server connection, so they queue
    session = plan_capacity(CapacityRequest(concurrency=6, max_connections=20,
                                            pooler_pool_size=10, pooler_mode="session",
                                            versions=3))
    assert (session.peak_db_connections, session.peak_waiting_clients) == (10, 8)


def test_capacity_cli_versions_shows_the_multiplication() -> None:
    done = run_cli("--max-connections", "20", "--reserved", "3", "--other-connections", "1",
                   "--concurrency", "6", "--versions", "3")
    assert done.returncode == 0, done.stderr
    assert "client connections       18  (6 environments x 1 x 3 versions)" in done.stdout
    assert "headroom                 -2  DOES NOT FIT" in done.stdout
    assert "fits up to a concurrency of 5 per version" in done.stdout
    as_json = json.loads(run_cli("--max-connections", "20", "--concurrency", "6",
                                 "--versions", "3", "--json").stdout)
    assert (as_json["versions"], as_json["request"]["versions"]) == (3, 3)
