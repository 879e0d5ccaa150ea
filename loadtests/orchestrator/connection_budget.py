"""A run's connection budget: the connections its scenario needs against those it had.

Every verdict carries it (``summary.json``'s ``connection_budget``), so a run that
was refused says why in numbers, and what would have fitted: "needs 60
connections at 60 environments × 1; has 16; reserved concurrency ≤ 16 or a pooler
with pool ≤ 16 fits".

It is not arithmetic of its own. Each function of the scenario becomes the
question ``connstorm capacity`` answers (a :class:`~connstorm.capacity.CapacityRequest`:
its concurrency, its pattern's connections per environment, the pooler's pool or
the proxy's percentage, ``max_connections`` and the slots reserved or taken by
others) and :func:`connstorm.capacity.plan_capacity` answers it, so the planner
and a run can never disagree; each function's entry keeps the ``connstorm
capacity`` command line that asks the same question.

What a function's concurrency is, from the scenario alone:

- the load's peak users (each Locust user waits for its answer, so it keeps at
  most one invocation running), capped by the function's reserved concurrency,
  else by the account's ``[lambda] concurrency_limit``;
- at least its provisioned concurrency (initialised before any request);
- a function no route reaches gets only its provisioned environments, or one for
  its schedules.

Functions with ``database = "none"`` need nothing. One's own handler (no
``pattern``) is taken as holding one connection per environment, as
``module_level`` does.

How many versions of a function hold connections at once (the planner's
``versions``): a ``[[timeline]]`` ``deploy`` of it retires the running version,
whose environments keep their connections while they idle until reaped
(``idle_lifetime_s``) and then, vanished, for the linger time of the server
they reach (docs/lambda-vanished.md: ``[lambda] vanished_linger_s``, else the
server's TCP keepalive, RDS's 360 s by default). At each deploy the versions
holding connections are the new one, the one it retires and every earlier one
retired less than ``idle_lifetime_s`` + linger before; the budget takes the
most at any deploy inside the load. ``connstorm repro --preset deploy``: two
deploys 3 s apart, reaped after 1 s, held 360 s, so three versions need 3 × 6
connections of the 16 the application has, and the third version is refused,
as the run shows. Environments reaped for idling between requests, or recycled
by ``max_lifetime_s``, inside the load also leave connections behind; they
depend on the load's pauses, not on the scenario alone, and are not counted.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from connstorm.capacity import PATTERNS as CAPACITY_PATTERNS
from connstorm.capacity import CapacityPlan, CapacityRequest, plan_capacity
from connstorm.local_stack.keepalive import (
    keepalive_linger_s,
    pgbouncer_linger_s,
    system_keepalive,
)
from connstorm.scenario import FunctionConfig, Scenario

#: The handler reads its pool size from this variable (``in_process_pool``).
ENV_POOL_SIZE = "DB_POOL_SIZE"
#: What ``in_process_pool`` opens when the variable is not set (handlers/workload/settings.py).
DEFAULT_ENV_POOL_SIZE = 2
#: ``leaky``: invocations an environment serves before it is reaped, as the planner assumes.
LEAKY_INVOCATIONS_PER_ENV = CapacityRequest(concurrency=0).invocations_per_env


def function_environments(scenario: Scenario, fn: FunctionConfig,
                          users: int) -> tuple[int, str]:
    """(peak environments of ``fn``, what bounds them) from the scenario and the users."""
    routed = any(route.function == fn.name for route in scenario.routes)
    scheduled = any(schedule.function == fn.name for schedule in scenario.schedules)
    if fn.reserved_concurrency is not None:
        cap, cap_name = fn.reserved_concurrency, "reserved_concurrency"
    else:
        cap, cap_name = scenario.lambda_.concurrency_limit, "concurrency_limit"
    if routed:
        count, source = (users, "users") if users <= cap else (cap, cap_name)
    else:
        count, source = (min(1, cap), "schedules") if scheduled else (0, "no routes")
    if fn.provisioned_concurrency > count:
        return fn.provisioned_concurrency, "provisioned_concurrency"
    return count, source


def linger_s(scenario: Scenario, fn: FunctionConfig) -> float:
    """How long the server ``fn`` reaches keeps a vanished environment's connection
    (``math.inf``: never), from the scenario's settings by the rules
    :mod:`connstorm.local_stack.keepalive` applies to the running servers (a
    setting of 0, or none, is this machine's)."""
    if scenario.lambda_.vanished_linger_s is not None:
        return float(scenario.lambda_.vanished_linger_s)
    if fn.database == "rds_proxy":
        return float(scenario.rds_proxy.idle_client_timeout_s)
    if fn.database == "pgbouncer":
        # PgBouncer's tcp_keepalive defaults to 1 ("Configuration", tcp_keepalive).
        settings = {key: int(value) if isinstance(value, bool) else value
                    for key, value in scenario.pgbouncer.settings.items()}
        linger = pgbouncer_linger_s({"tcp_keepalive": 1, **settings})
        return math.inf if linger is None else linger
    pg, system = scenario.postgres, system_keepalive()
    try:
        user_timeout = int(str(pg.settings.get("tcp_user_timeout") or 0))
    except ValueError:
        user_timeout = 0
    return keepalive_linger_s(pg.tcp_keepalives_idle or system[0],
                              pg.tcp_keepalives_interval or system[1],
                              pg.tcp_keepalives_count or system[2], user_timeout)


def function_versions(scenario: Scenario, fn: FunctionConfig,
                      duration_s: float | None = None) -> tuple[int, dict[str, Any]]:
    """(versions of ``fn`` holding connections at once, how that was counted).

    ``duration_s``: the run's ``--duration`` (a deploy due after the load never fires).
    A deploy at ``t`` retires a version that holds its connections until
    ``t + idle_lifetime_s + linger``; at each deploy the new version, and every
    retired one still holding, count.
    """
    end = scenario.load.run_time_s(duration_s)
    deploys = sorted(float(a.at_s) for a in scenario.timeline
                     if a.action == "deploy" and a.target == fn.name and a.at_s < end)
    linger = linger_s(scenario, fn)
    hold = fn.idle_lifetime_s + linger
    versions = max([1, *(1 + sum(1 for retired in deploys[:j + 1] if at - retired < hold)
                         for j, at in enumerate(deploys))])
    return versions, {"deploys": len(deploys), "idle_lifetime_s": fn.idle_lifetime_s,
                      "linger_s": None if math.isinf(linger) else round(linger, 3)}


def _env_pool_size(fn: FunctionConfig) -> int:
    try:
        return max(1, int(fn.env.get(ENV_POOL_SIZE, DEFAULT_ENV_POOL_SIZE)))
    except ValueError:
        return DEFAULT_ENV_POOL_SIZE


def function_request(scenario: Scenario, fn: FunctionConfig, *, concurrency: int,
                     max_connections: int, reserved: int,
                     other_connections: int, versions: int = 1) -> CapacityRequest:
    """The capacity question one function of the scenario asks."""
    pattern = fn.pattern if fn.pattern in CAPACITY_PATTERNS else "module_level"
    pool_size: int | None = None
    pool_mode = "transaction"
    proxy_percent: int | None = None
    if fn.database == "pgbouncer":
        bouncer = scenario.pgbouncer
        pool_size = bouncer.default_pool_size + bouncer.reserve_pool_size
        if bouncer.max_db_connections:
            pool_size = min(pool_size, bouncer.max_db_connections)
        pool_mode = bouncer.pool_mode
    elif fn.database == "rds_proxy":
        proxy_percent = scenario.rds_proxy.max_connections_percent
    return CapacityRequest(
        concurrency=concurrency, max_connections=max_connections, pattern=pattern,
        invocations_per_env=LEAKY_INVOCATIONS_PER_ENV, env_pool_size=_env_pool_size(fn),
        pooler_pool_size=pool_size, pooler_mode=pool_mode,
        proxy_max_connections_percent=proxy_percent, reserved=reserved,
        other_connections=other_connections, versions=versions)


def capacity_args(request: CapacityRequest) -> list[str]:
    """``connstorm capacity``'s arguments asking the same question as ``request``."""
    args = ["--max-connections", str(request.max_connections), "--reserved",
            str(request.reserved), "--other-connections", str(request.other_connections),
            "--concurrency", str(request.concurrency), "--pattern", request.pattern]
    if request.pattern == "leaky":
        args += ["--invocations-per-env", str(request.invocations_per_env)]
    if request.pattern == "in_process_pool":
        args += ["--env-pool-size", str(request.env_pool_size)]
    if request.pooler_pool_size is not None:
        args += ["--pool-size", str(request.pooler_pool_size), "--pool-mode",
                 request.pooler_mode]
    if request.proxy_max_connections_percent is not None:
        args += ["--rds-proxy-percent", str(request.proxy_max_connections_percent)]
    if request.versions > 1:
        args += ["--versions", str(request.versions)]
    return args


def _function_entry(fn: FunctionConfig, source: str, request: CapacityRequest,
                    plan: CapacityPlan, counted: dict[str, Any]) -> dict[str, Any]:
    return {"function": fn.name, "pattern": request.pattern,
            "versions": plan.versions, "versions_from": counted,
            "own_handler": fn.pattern is None, "database": fn.database,
            "environments": plan.peak_environments, "environments_from": source,
            "connections_per_env": plan.connections_per_env,
            "client_connections": plan.peak_client_connections,
            "pool_size": plan.pool_size, "pool_mode": plan.pool_mode,
            "needed": plan.peak_db_connections, "waiting": plan.peak_waiting_clients,
            "max_concurrency_direct": plan.max_concurrency_direct,
            "capacity_command": shlex.join(["connstorm", "capacity", *capacity_args(request)])}


def connection_budget(scenario: Scenario, *, users: int | None = None,
                      max_connections: int | None = None, reserved: int | None = None,
                      other_connections: int = 0,
                      duration_s: float | None = None) -> dict[str, Any]:
    """``summary.json``'s ``connection_budget`` for a run of ``scenario``.

    ``max_connections`` and ``reserved`` are the server's when the run read them
    (else the scenario's); ``other_connections`` are ordinary slots others held
    (a local run's collector: 1); ``users`` and ``duration_s`` the run's
    ``--users`` and ``--duration``.
    """
    peak_users = scenario.load.peak_users(users)
    limit = scenario.postgres.max_connections if max_connections is None else max_connections
    slots_reserved = (scenario.postgres.superuser_reserved_connections if reserved is None
                      else reserved)
    entries: list[dict[str, Any]] = []
    plans: list[CapacityPlan] = []
    for fn in scenario.functions:
        if fn.database == "none":
            continue
        concurrency, source = function_environments(scenario, fn, peak_users)
        versions, counted = function_versions(scenario, fn, duration_s)
        request = function_request(scenario, fn, concurrency=concurrency,
                                   max_connections=limit, reserved=slots_reserved,
                                   other_connections=other_connections, versions=versions)
        plan = plan_capacity(request)
        plans.append(plan)
        entries.append(_function_entry(fn, source, request, plan, counted))
    usable = max(0, limit - slots_reserved - other_connections)
    needed = _needed(entries)
    single = plans[0] if len(plans) == 1 else None
    return {
        "max_connections": limit,
        "max_connections_from": "scenario" if max_connections is None else "server",
        "reserved": slots_reserved, "other_connections": other_connections,
        "usable": usable, "needed": needed, "headroom": usable - needed,
        "fits": needed <= usable,
        "environments": sum(e["environments"] for e in entries),
        "waiting": sum(e["waiting"] for e in entries),
        "max_concurrency_direct": single.max_concurrency_direct if single else None,
        "max_pool_size": usable,
        "functions": entries,
    }


def _needed(entries: list[dict[str, Any]]) -> int:
    """Connections the database sees: direct ones add up, a shared pool counts once."""
    total = 0
    pools: dict[str, tuple[int, int]] = {}
    for entry in entries:
        if entry["pool_size"] is None:
            total += entry["needed"]
            continue
        pool, used = pools.get(entry["database"], (entry["pool_size"], 0))
        pools[entry["database"]] = (pool, used + entry["needed"])
    return total + sum(min(pool, used) for pool, used in pools.values())
