"""The connection budget of a run: the capacity planner's answer for the scenario's inputs.

The central test puts every built-in scenario and every ``connstorm repro`` variant
to the real ``connstorm capacity`` command line, with the inputs read off the
scenario by hand here (not by the code under test), and checks that the run's
budget says the same numbers.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest

from connstorm.cli.main import main
from connstorm.loadtests.orchestrator.connection_budget import (
    connection_budget,
    function_versions,
    linger_s,
)
from connstorm.loadtests.orchestrator.repro import (
    PRESETS,
    plan_for,
    variant_scenario,
    variants_for,
)
from connstorm.reports.budget import budget_text
from connstorm.reports.verdict_line import verdict
from connstorm.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "loadtests" / "scenarios"


def _builtin() -> list[tuple[str, Scenario]]:
    found = [(path.stem, load_scenario(path.stem)) for path in sorted(SCENARIOS.glob("*.toml"))]
    for preset in PRESETS:
        for quick in (False, True):
            for variant in variants_for(quick=quick, preset=preset):
                found.append((f"repro {preset}{' --quick' if quick else ''}: {variant.name}",
                              variant_scenario(variant, plan_for(preset, quick=quick))))
    return found


BUILTIN = _builtin()


def capacity_inputs(scenario: Scenario, other: int) -> list[str]:
    """``connstorm capacity``'s arguments for a single-function scenario, read by hand."""
    (fn,) = scenario.functions
    cap = (fn.reserved_concurrency if fn.reserved_concurrency is not None
           else scenario.lambda_.concurrency_limit)
    pg = scenario.postgres
    args = ["--max-connections", str(pg.max_connections),
            "--reserved", str(pg.superuser_reserved_connections),
            "--other-connections", str(other),
            "--concurrency", str(max(fn.provisioned_concurrency, min(scenario.load.users, cap))),
            "--pattern", str(fn.pattern)]
    if fn.pattern == "leaky":
        args += ["--invocations-per-env", "10"]
    if fn.database == "pgbouncer":
        pool = scenario.pgbouncer.default_pool_size + scenario.pgbouncer.reserve_pool_size
        args += ["--pool-size", str(pool), "--pool-mode", scenario.pgbouncer.pool_mode]
    if fn.database == "rds_proxy":
        args += ["--rds-proxy-percent", str(scenario.rds_proxy.max_connections_percent)]
    versions = deploy_versions(scenario)
    if versions > 1:
        args += ["--versions", str(versions)]
    return args


def deploy_versions(scenario: Scenario) -> int:
    """Versions holding connections at once, read by hand: the built-in deploys all
    reach PostgreSQL directly, whose keepalive (or ``vanished_linger_s``) keeps a
    retired version's connections after its environments are reaped."""
    (fn,) = scenario.functions
    deploys = [a.at_s for a in scenario.timeline
               if a.action == "deploy" and a.at_s < scenario.load.duration_s]
    if not deploys:
        return 1
    assert fn.database == "direct"
    pg = scenario.postgres
    linger = scenario.lambda_.vanished_linger_s
    if linger is None:
        linger = pg.tcp_keepalives_idle + pg.tcp_keepalives_interval * pg.tcp_keepalives_count
    held = fn.idle_lifetime_s + linger
    return 1 + max(sum(1 for old in deploys if 0 <= at - old < held) for at in deploys)


def capacity_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The plan the real command line prints with ``--json``."""
    capsys.readouterr()
    assert main(["capacity", *args, "--json"]) == 0
    plan: dict[str, Any] = json.loads(capsys.readouterr().out)
    return plan


def test_every_builtin_scenario_is_one_function() -> None:
    # (what capacity_inputs assumes; several functions are tested apart below)
    assert len(BUILTIN) >= 5 + 6
    assert all(len(s.functions) == 1 for _, s in BUILTIN)


@pytest.mark.parametrize(("name", "scenario"), BUILTIN, ids=[n for n, _ in BUILTIN])
def test_budget_equals_connstorm_capacity_for_the_same_inputs(
        name: str, scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a built-in scenario run on the local stack (whose collector holds one slot)
    budget = connection_budget(scenario, other_connections=1)
    # WHEN connstorm capacity is asked the same question from the command line
    args = capacity_inputs(scenario, other=1)
    plan = capacity_cli(args, capsys)
    # THEN the run's budget and the planner agree on every number
    (entry,) = budget["functions"]
    assert budget["needed"] == plan["peak_db_connections"]
    assert budget["usable"] == plan["usable"]
    assert budget["headroom"] == plan["headroom"]
    assert budget["fits"] == plan["fits"]
    assert budget["waiting"] == plan["peak_waiting_clients"]
    assert budget["max_concurrency_direct"] == plan["max_concurrency_direct"]
    assert budget["max_pool_size"] == plan["max_pool_size"]
    assert entry["environments"] == plan["peak_environments"]
    assert entry["connections_per_env"] == plan["connections_per_env"]
    assert entry["pool_size"] == plan["pool_size"]
    assert entry["versions"] == plan["versions"]
    # AND the command the budget names is that very question
    assert shlex.split(entry["capacity_command"]) == ["connstorm", "capacity", *args]


def test_budget_of_the_demo_direct_variant_says_where_it_ran_out() -> None:
    scenario = load_scenario("direct-small")
    budget = connection_budget(scenario, max_connections=20, reserved=3, other_connections=1)
    assert budget_text(budget) == (
        "needs 60 connections at 60 environments × 1; has 16 (20 max_connections − 3 "
        "reserved − 1 other): runs out after 16 environments; reserved concurrency ≤ 16 or "
        "a pooler with pool ≤ 16 fits")
    # AND the verdict line carries it after what happened
    line = verdict({"name": "direct-module_level", "requests": 10, "failures": 4,
                    "errors_by_kind": {"too_many_connections": 4}, "peak_db_connections": 17,
                    "max_connections": 20, "connection_budget": budget})
    assert line.startswith("REFUSED: ")
    assert line.endswith("; budget: " + budget_text(budget))


def test_budget_through_poolers_says_what_fits_and_who_waits() -> None:
    pooled = connection_budget(load_scenario("pgbouncer-transaction"), other_connections=1)
    assert budget_text(pooled) == ("needs 10 of 16 connections (PgBouncer pool 10, transaction "
                                   "mode, for 60 environments × 1): fits, 6 spare")
    session = connection_budget(load_scenario("pgbouncer-session"), other_connections=1)
    assert budget_text(session).endswith(
        "but session mode pins 60 clients to 10 connections: 50 wait; transaction mode or "
        "reserved concurrency ≤ 10 fits")
    pinned = connection_budget(load_scenario("direct-small", overrides=[
        'functions.api.database="rds_proxy"', 'functions.api.pattern="session_state"',
        "rds_proxy.max_connections_percent=50"]), other_connections=1)
    assert pinned["functions"][0]["pool_mode"] == "session"
    assert "RDS Proxy pins 60 clients' session state to 10 connections: 50 wait" in \
        budget_text(pinned)
    # every app slot for the pool: the collector's connection leaves it one short
    too_big = connection_budget(load_scenario("pgbouncer-transaction", overrides=[
        "pgbouncer.default_pool_size=17"]), other_connections=1)
    assert budget_text(too_big) == (
        "needs 17 connections (PgBouncer pool 17, transaction mode, for 60 environments × 1); "
        "has 16 (20 max_connections − 3 reserved − 1 other): a pool ≤ 16 fits")


def test_budget_concurrency_is_the_users_capped_by_reserved_concurrency() -> None:
    capped = connection_budget(load_scenario("direct-small", overrides=[
        "functions.api.reserved_concurrency=12"]))
    assert capped["functions"][0]["environments"] == 12
    assert capped["functions"][0]["environments_from"] == "reserved_concurrency"
    assert capped["fits"] is True  # 12 of 17: reserved concurrency is the direct fix
    users = connection_budget(load_scenario("direct-small"), users=5)
    assert (users["environments"], users["functions"][0]["environments_from"]) == (5, "users")
    account = connection_budget(load_scenario("direct-small", overrides=[
        "lambda.concurrency_limit=40"]))
    assert account["functions"][0]["environments_from"] == "concurrency_limit"
    warm = connection_budget(load_scenario("direct-small", overrides=[
        "functions.api.provisioned_concurrency=70"]))
    assert (warm["environments"], warm["functions"][0]["environments_from"]) == (
        70, "provisioned_concurrency")


def test_budget_of_several_functions_counts_a_shared_pool_once() -> None:
    scenario = load_scenario("pgbouncer-transaction", overrides=[
        'functions=[{name="api", pattern="module_level", database="pgbouncer"}, '
        '{name="admin", pattern="module_level", database="pgbouncer"}, '
        '{name="direct", pattern="in_process_pool", database="direct", '
        'env={DB_POOL_SIZE="3"}}, {name="quiet", pattern="module_level", database="none"}]',
        'routes=[{method="GET", path="/a", function="api"}, '
        '{method="GET", path="/b", function="admin"}, '
        '{method="GET", path="/c", function="direct"}]', "load.users=2"])
    budget = connection_budget(scenario, other_connections=1)
    assert [e["function"] for e in budget["functions"]] == ["api", "admin", "direct"]
    # two functions through one PgBouncer: the pool's 10 bounds both; the direct one
    # holds its in-process pool of 3 per environment
    assert [e["needed"] for e in budget["functions"]] == [2, 2, 6]
    assert budget["needed"] == 4 + 6
    assert budget_text(budget).startswith("needs 10 connections for 3 functions (api: ")


def _deploy_variant(name: str) -> Scenario:
    (variant,) = [v for v in variants_for(quick=True, preset="deploy") if v.name == name]
    return variant_scenario(variant, plan_for("deploy", quick=True))


def _deploys(*at_s: float, extra: tuple[str, ...] = ()) -> Scenario:
    actions = ", ".join(f'{{at_s={t}, action="deploy", target="api"}}' for t in at_s)
    return load_scenario("direct-small", overrides=[
        "load.users=6", "load.duration_s=30", "functions.api.idle_lifetime_s=1",
        f"timeline=[{actions}]", *extra])


def test_versions_of_the_deploy_demo_are_three_vanished_and_two_closed() -> None:
    vanished = _deploy_variant("deploy-vanished")
    (fn,) = vanished.functions
    # two deploys 3 s apart, each old version held 1 s idle + 360 s (RDS's keepalive)
    assert function_versions(vanished, fn) == (
        3, {"deploys": 2, "idle_lifetime_s": 1, "linger_s": 360})
    closed = _deploy_variant("deploy-closed")
    # closed with their environments: only the version a deploy retires, until reaped
    assert function_versions(closed, closed.functions[0]) == (
        2, {"deploys": 2, "idle_lifetime_s": 1, "linger_s": 0})


def test_versions_count_only_the_deploys_inside_the_load() -> None:
    scenario = _deploys(2, 5, 40)  # the third is due after the 30 s load
    (fn,) = scenario.functions
    assert function_versions(scenario, fn)[0] == 3
    assert function_versions(scenario, fn)[1]["deploys"] == 2
    # --duration 4: only the first deploy fires
    assert function_versions(scenario, fn, duration_s=4)[0] == 2
    assert function_versions(scenario, fn, duration_s=60)[0] == 4
    assert function_versions(_deploys(), fn) == (
        1, {"deploys": 0, "idle_lifetime_s": 1, "linger_s": 360})


def test_versions_retired_longer_ago_than_idle_plus_linger_hold_nothing() -> None:
    # held 1 s idle + 2 s linger = 3 s: deploys 5 s apart never overlap
    apart = _deploys(2, 7, 12, extra=("lambda.vanished_linger_s=2",))
    (fn,) = apart.functions
    assert linger_s(apart, fn) == 2
    assert function_versions(apart, fn)[0] == 2
    # 2.5 s apart they do: at 4.5 the version retired at 2 is still held (until 5)
    close = _deploys(2, 4.5, 7, extra=("lambda.vanished_linger_s=2",))
    assert function_versions(close, fn)[0] == 3
    # the server's keepalive, not the scenario's default linger, when none is set
    short = _deploys(2, 7, extra=("postgres.tcp_keepalives_idle=1",
                                  "postgres.tcp_keepalives_interval=1",
                                  "postgres.tcp_keepalives_count=1"))
    assert (linger_s(short, fn), function_versions(short, fn)[0]) == (2, 2)


def test_linger_through_poolers_is_the_poolers() -> None:
    pooled = _deploys(2, 5, extra=('functions.api.database="pgbouncer"',
                                   "pgbouncer.tcp_keepidle=10", "pgbouncer.tcp_keepintvl=5",
                                   "pgbouncer.tcp_keepcnt=2"))
    (fn,) = pooled.functions
    assert linger_s(pooled, fn) == 20
    never = _deploys(2, 5, extra=('functions.api.database="pgbouncer"',
                                  "pgbouncer.tcp_keepalive=0"))
    assert linger_s(never, never.functions[0]) == math.inf
    assert function_versions(never, never.functions[0]) == (
        3, {"deploys": 2, "idle_lifetime_s": 1, "linger_s": None})
    proxy = _deploys(2, 5, extra=('functions.api.database="rds_proxy"',
                                  "rds_proxy.idle_client_timeout_s=120"))
    assert linger_s(proxy, proxy.functions[0]) == 120


def test_budget_after_deploys_says_which_versions_hold_what() -> None:
    # GIVEN the deploy demo, on its server (20 max_connections, the collector's slot)
    budget = connection_budget(_deploy_variant("deploy-vanished"), max_connections=20,
                               reserved=3, other_connections=1)
    (entry,) = budget["functions"]
    assert (entry["versions"], budget["needed"], budget["fits"]) == (3, 18, False)
    assert entry["capacity_command"].endswith("--versions 3")
    # THEN the text says it does not fit, and why three versions
    assert budget_text(budget) == (
        "needs 18 connections at 6 environments × 1 × 3 versions (2 deploys inside the load; "
        "each old version keeps its connections 361 s: until reaped (1 s idle), then 360 s "
        "until the server's keepalive drops them); has 16 (20 max_connections − 3 reserved "
        "− 1 other): runs out after 5 environments per version; reserved concurrency ≤ 5 or "
        "a pooler with pool ≤ 16 fits")
    closed = connection_budget(_deploy_variant("deploy-closed"), max_connections=20,
                               reserved=3, other_connections=1)
    assert budget_text(closed) == (
        "needs 12 of 16 connections (6 environments × 1 × 2 versions: 2 deploys inside the "
        "load; each old version keeps its connections until reaped (1 s idle)): fits, "
        "4 spare")
    # AND a pattern that holds nothing while idle is not multiplied
    per_invocation = connection_budget(
        _deploys(2, 5, extra=('functions.api.pattern="per_invocation"',)),
        max_connections=20, reserved=3, other_connections=1)
    assert (per_invocation["functions"][0]["versions"], per_invocation["needed"]) == (1, 6)
