"""Capacity planning: will this Lambda concurrency and connection pattern fit the database?

Pure arithmetic on RDS's default ``max_connections`` formulas (AWS RDS User
Guide, "Maximum number of database connections"):

- PostgreSQL: ``LEAST(DBInstanceClassMemory / 9531392, 5000)``;
- MySQL and MariaDB: ``DBInstanceClassMemory / 12582880``.

``DBInstanceClassMemory`` is *below* the instance's nominal memory (RDS subtracts
the OS and its own processes; 88–97 % has been observed), so a figure computed
from nominal memory, as the table in AWS's documentation is, is an upper bound.
Every plan says so and gives the range.

What each pattern costs, per execution environment (the local stack measures it):

- ``per_invocation``: one connection while an invocation runs, none while frozen;
- ``module_level``, ``module_level_resilient``, ``secrets_cached``, ``iam_token``:
  one connection per environment, kept open while it is frozen;
- ``leaky``: one more per invocation, never closed: invocations per environment;
- ``in_process_pool``: the pool's size, opened at init and kept;
- ``session_state``: one per environment, like ``module_level``, but the session
  state it sets (``SET``) pins it through RDS Proxy, which then cannot multiplex it
  (AWS, "Avoiding pinning an RDS Proxy"): through a proxy it costs what session
  pooling costs.

Reserved connections: PostgreSQL refuses an ordinary role once only
``superuser_reserved_connections`` slots remain free, counting *every* connection,
superusers' included; so monitoring, migrations or a collector connected as a
superuser still take ordinary slots: give them as ``other_connections``
(measured on the local stack: its collector's one connection leaves the
application 16 of 20 - 3).

Environments outlive their invocations, so the peak number of environments is
the peak concurrency, and for the patterns that keep a connection, that is the
number of connections.

Versions: after a deploy, the old version's environments keep their connections
until Lambda reaps them and then, vanished without closing them, until the
database's TCP keepalive gives up on them (AWS's sample
graceful-shutdown-with-aws-lambda, README: "when a Lambda execution environment
shuts down, the connections remain open"; AWS, "Dead connection handling in
PostgreSQL": 300 + 30 x 2 = 360 s with RDS's defaults). So ``versions`` whose
environments hold connections at once multiply what a pattern that keeps its
connection needs (``per_invocation`` holds none while idle, so its old versions
cost nothing). Through a pooler in transaction mode an old version holds only
client connections, never a server connection; in session mode (or pinned by
RDS Proxy) it holds its server connection like a live one.

>>> plan = plan_capacity(CapacityRequest(engine="postgres", instance_class="db.t3.medium",
...                                      concurrency=200, pattern="module_level"))
>>> plan.max_connections, plan.peak_db_connections, plan.fits
(450, 200, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from connstorm.errors import ConnstormError, ExitCode

ENGINES = ("postgres", "mysql", "mariadb")
ENGINE_ALIASES = {"postgresql": "postgres", "pg": "postgres"}
PATTERNS = ("per_invocation", "module_level", "module_level_resilient", "secrets_cached",
            "iam_token", "leaky", "in_process_pool", "session_state")
#: PgBouncer's statement mode lends a server connection per statement: for the
#: count of server connections it is transaction mode (one statement at a time
#: per environment).
POOL_MODES = ("transaction", "session", "statement")
#: Patterns whose session state RDS Proxy pins: through a proxy, session mode.
PINNING_PATTERNS = frozenset({"session_state"})

GIB = 1024**3
POSTGRES_BYTES_PER_CONNECTION = 9531392
POSTGRES_CAP = 5000
MYSQL_BYTES_PER_CONNECTION = 12582880
#: Share of nominal memory RDS leaves to DBInstanceClassMemory, as observed.
MEMORY_FRACTION_LOW = 0.88
MEMORY_FRACTION_HIGH = 0.97
#: PostgreSQL's default superuser_reserved_connections; MySQL keeps one extra
#: connection for SUPER on top of max_connections, so nothing is subtracted.
DEFAULT_RESERVED = {"postgres": 3, "mysql": 0, "mariadb": 0}

#: Nominal memory per instance class, GiB. The first seven are the guide's table
#: (checked by the tests); the rest follow the same families' published sizes.
INSTANCE_MEMORY_GIB: dict[str, float] = {
    "db.t3.micro": 1, "db.t4g.micro": 1, "db.t3.small": 2, "db.t3.medium": 4,
    "db.m5.large": 8, "db.r5.large": 16, "db.r6g.xlarge": 32,
    "db.t4g.small": 2, "db.t4g.medium": 4, "db.t3.large": 8, "db.t4g.large": 8,
    "db.m5.xlarge": 16, "db.m5.2xlarge": 32, "db.m6g.large": 8, "db.m6g.xlarge": 16,
    "db.r5.xlarge": 32, "db.r6g.large": 16, "db.r6g.2xlarge": 64,
}

#: Connections one environment holds at its peak, for the patterns with a fixed cost.
_PER_ENV_FIXED = {"per_invocation": 1, "module_level": 1, "module_level_resilient": 1,
                  "secrets_cached": 1, "iam_token": 1, "session_state": 1}
#: Patterns whose connection survives while the environment is frozen.
_HELD_WHILE_FROZEN = frozenset(PATTERNS) - {"per_invocation"}


class CapacityInputError(ConnstormError):
    """A capacity question that cannot be answered as asked: names the option and why."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class CapacityRequest:
    """The question: engine, limit (class or explicit), load, pattern and pooler."""

    concurrency: int
    engine: str = "postgres"
    instance_class: str | None = None
    max_connections: int | None = None
    pattern: str = "module_level"
    #: ``leaky``: invocations each environment serves before it is reaped.
    invocations_per_env: int = 10
    #: ``in_process_pool``: the pool's size inside each environment.
    env_pool_size: int = 2
    #: A pooler (PgBouncer, RDS Proxy) in front: its server-side pool size.
    pooler_pool_size: int | None = None
    pooler_mode: str = "transaction"
    #: RDS Proxy instead of a pool size: its MaxConnectionsPercent of max_connections.
    proxy_max_connections_percent: int | None = None
    #: Connections the application cannot use (None: the engine's default).
    reserved: int | None = None
    #: Connections others need (migrations, monitoring, consoles).
    other_connections: int = 0
    #: Versions of the function whose environments hold connections at once: 1, plus
    #: each earlier version deployed while its connections are still open.
    versions: int = 1


@dataclass(frozen=True)
class CapacityPlan:
    """The answer; ``fits`` is judged against the formula's (upper-bound) limit."""

    request: CapacityRequest
    engine: str
    max_connections: int
    #: "formula" (from the instance class) or "explicit" (--max-connections).
    limit_source: str
    memory_gib: float | None
    #: max_connections at 88 % and 97 % of nominal memory (None for an explicit limit).
    max_connections_range: tuple[int, int] | None
    reserved: int
    usable: int
    connections_per_env: int
    peak_environments: int
    #: Connections the functions open: to the database, or to the pooler.
    peak_client_connections: int
    peak_db_connections: int
    #: Clients waiting for a server connection at the peak (pooler only): in
    #: transaction mode the worst case (all in a transaction at once), in session
    #: mode those pinned out for as long as the others stay connected.
    peak_waiting_clients: int
    headroom: int
    fits: bool
    #: Largest concurrency that keeps within the limit without a pooler.
    max_concurrency_direct: int
    #: The same at the low end of the memory range (None for an explicit limit).
    max_concurrency_direct_low: int | None
    #: Largest pooler pool size that keeps within the limit.
    max_pool_size: int
    #: The pooler's server-side pool (an RDS Proxy's from its percentage); None direct.
    pool_size: int | None = None
    #: How the pool lends its connections: "transaction" (statement mode counts as
    #: one) or "session" (also RDS Proxy pinning the pattern's sessions); None direct.
    pool_mode: str | None = None
    #: Versions whose environments hold connections at once (1 for ``per_invocation``).
    versions: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The plan as plain JSON-able data (``--json``)."""
        data = asdict(self)
        data["max_connections_range"] = (list(self.max_connections_range)
                                         if self.max_connections_range else None)
        data["notes"] = list(self.notes)
        return data


def proxy_pool_size(max_connections: int, percent: int) -> int:
    """Database connections an RDS Proxy may open: its MaxConnectionsPercent, at least 1.

    The one formula of the proxy's pool: the RDS Proxy stand-in
    (``connstorm.local_stack.rds_proxy.pool.pool_limit``) sizes its pool with it and
    the planner plans with it, so ``connstorm capacity`` and a run through the
    stand-in never disagree. RDS computes it as a percentage of the instance's
    ``max_connections`` itself (AWS, "RDS Proxy connection considerations",
    section "MaxConnectionsPercent"), not of the slots left after the reserved
    ones: at 100 % the proxy may try more connections than its role can open,
    and those logins fail (``DatabaseConnectionsSetupFailed``).
    """
    return max(1, (max_connections * percent) // 100)


def formula_max_connections(engine: str, memory_bytes: float) -> int:
    """RDS's default max_connections for ``memory_bytes`` of DBInstanceClassMemory."""
    engine = normalise_engine(engine)
    if engine == "postgres":
        return min(math.floor(memory_bytes / POSTGRES_BYTES_PER_CONNECTION), POSTGRES_CAP)
    return math.floor(memory_bytes / MYSQL_BYTES_PER_CONNECTION)


def class_max_connections(engine: str, instance_class: str) -> int:
    """The formula on an instance class's nominal memory (the table's figure)."""
    return formula_max_connections(engine, memory_gib(instance_class) * GIB)


def memory_gib(instance_class: str) -> float:
    """Nominal memory of a known instance class; one clear error for any other."""
    key = instance_class.strip().lower()
    if not key.startswith("db."):
        key = f"db.{key}"
    if key not in INSTANCE_MEMORY_GIB:
        known = ", ".join(sorted(INSTANCE_MEMORY_GIB, key=lambda k: (INSTANCE_MEMORY_GIB[k], k)))
        raise CapacityInputError(f"--instance-class: unknown instance class {instance_class!r}; "
                                 f"known: {known} (or give --max-connections)")
    return INSTANCE_MEMORY_GIB[key]


def normalise_engine(engine: str) -> str:
    """``postgres``, ``mysql`` or ``mariadb``; one clear error for anything else."""
    name = ENGINE_ALIASES.get(engine.strip().lower(), engine.strip().lower())
    if name not in ENGINES:
        raise CapacityInputError(f"--engine: unknown engine {engine!r}; "
                                 f"expected one of {', '.join(ENGINES)}")
    return name


def _check(request: CapacityRequest) -> None:
    def whole(option: str, value: int | None, lo: int) -> None:
        if value is not None and value < lo:
            raise CapacityInputError(f"{option}: must be at least {lo}, got {value}")

    whole("--concurrency", request.concurrency, 0)
    whole("--max-connections", request.max_connections, 1)
    whole("--invocations-per-env", request.invocations_per_env, 1)
    whole("--env-pool-size", request.env_pool_size, 1)
    whole("--pool-size", request.pooler_pool_size, 1)
    whole("--reserved", request.reserved, 0)
    whole("--other-connections", request.other_connections, 0)
    whole("--versions", request.versions, 1)
    if request.pattern not in PATTERNS:
        raise CapacityInputError(f"--pattern: unknown pattern {request.pattern!r}; "
                                 f"expected one of {', '.join(PATTERNS)}")
    if request.pooler_mode not in POOL_MODES:
        raise CapacityInputError(f"--pool-mode: unknown mode {request.pooler_mode!r}; "
                                 f"expected one of {', '.join(POOL_MODES)}")
    if request.proxy_max_connections_percent is not None:
        if not 1 <= request.proxy_max_connections_percent <= 100:
            raise CapacityInputError(f"--rds-proxy-percent: must be 1-100, got "
                                     f"{request.proxy_max_connections_percent}")
        if request.pooler_pool_size is not None:
            raise CapacityInputError("--rds-proxy-percent: give it or --pool-size, not both")
    if request.instance_class is None and request.max_connections is None:
        raise CapacityInputError("--instance-class or --max-connections: give one of them")


def connections_per_env(request: CapacityRequest) -> int:
    """What one environment holds at its peak under the request's pattern."""
    if request.pattern == "leaky":
        return request.invocations_per_env
    if request.pattern == "in_process_pool":
        return request.env_pool_size
    return _PER_ENV_FIXED[request.pattern]


def plan_capacity(request: CapacityRequest) -> CapacityPlan:
    """Answer a capacity question; raises :class:`CapacityInputError` for bad input."""
    _check(request)
    engine = normalise_engine(request.engine)
    notes: list[str] = []
    gib: float | None = None
    low_high: tuple[int, int] | None = None
    if request.max_connections is not None:
        limit, source = request.max_connections, "explicit"
    else:
        assert request.instance_class is not None
        gib = memory_gib(request.instance_class)
        limit, source = formula_max_connections(engine, gib * GIB), "formula"
        low_high = (formula_max_connections(engine, gib * GIB * MEMORY_FRACTION_LOW),
                    formula_max_connections(engine, gib * GIB * MEMORY_FRACTION_HIGH))
        notes.append(
            f"max_connections {limit} is RDS's default formula on the nominal {gib:g} GiB; "
            f"the memory available to the formula (DBInstanceClassMemory) is below nominal "
            f"(88-97 %), so expect {low_high[0]}-{low_high[1]}: {limit} is an upper bound")
    reserved = DEFAULT_RESERVED[engine] if request.reserved is None else request.reserved
    usable = max(0, limit - reserved - request.other_connections)
    per_env = connections_per_env(request)
    environments = request.concurrency
    versions = request.versions if request.pattern in _HELD_WHILE_FROZEN else 1
    clients = environments * per_env * versions
    if request.versions > 1:
        notes.append(
            f"versions: {versions} versions' environments hold their connections at once "
            f"(the old ones keep them until reaped, then until the server's keepalive "
            f"drops them)" if versions > 1 else
            f"versions: {request.pattern} holds no connection while idle, so old versions "
            f"cost nothing")
    pool = request.pooler_pool_size
    mode = "transaction" if request.pooler_mode == "statement" else request.pooler_mode
    if request.proxy_max_connections_percent is not None:
        pool = proxy_pool_size(limit, request.proxy_max_connections_percent)
        notes.append(f"RDS Proxy: MaxConnectionsPercent {request.proxy_max_connections_percent} "
                     f"of max_connections {limit} is a pool of {pool}; sessions it pins (SET, "
                     f"SQL-level PREPARE, temporary tables, advisory locks...) behave as in "
                     f"session mode")
        if pool > usable:
            notes.append(f"RDS Proxy: a pool of {pool} is more than the {usable} connections "
                         f"the app role can open ({reserved} reserved): the proxy's own "
                         f"logins beyond them fail (DatabaseConnectionsSetupFailed) and "
                         f"clients wait for a connection to come back")
        if request.pattern in PINNING_PATTERNS:
            mode = "session"
            notes.append(f"{request.pattern}: its session state pins every environment's "
                         f"connection, so the proxy cannot multiplex them: session mode")
    waiting = 0
    if pool is None:
        peak_db = clients
    elif mode == "transaction":
        # A server connection is busy only inside a transaction, and an environment
        # runs one invocation at a time: at most `concurrency` transactions at once.
        peak_db = min(pool, environments if clients else 0)
        waiting = max(0, environments - pool)
        notes.append("transaction mode: server connections are lent per transaction, so the "
                     "database sees at most the pool size, whatever the pattern")
    else:
        # Session mode pins a server connection to each client until it disconnects:
        # frozen environments keep theirs, so the pool does not multiplex them.
        peak_db = min(pool, clients)
        waiting = max(0, clients - pool)
        if request.pattern in _HELD_WHILE_FROZEN and waiting:
            notes.append(f"session mode: {clients} clients stay pinned (frozen environments "
                         f"keep their connection); {waiting} wait and fail (PgBouncer's "
                         f"query_wait_timeout, RDS Proxy's borrow timeout): session pooling "
                         f"does not help Lambda")
    if request.pattern == "leaky":
        notes.append(f"leaky: connections grow by one per invocation until the environment is "
                     f"reaped; {per_env} invocations per environment assumed")
    if request.pattern == "in_process_pool":
        notes.append(f"in_process_pool: each environment keeps its pool of {per_env} although it "
                     f"runs one invocation at a time")
    if request.pattern == "per_invocation":
        notes.append("per_invocation: no connection while frozen, but one connect per "
                     "invocation (latency, and connection storms on bursts)")
    headroom = usable - peak_db
    low_usable = (max(0, low_high[0] - reserved - request.other_connections)
                  if low_high else None)
    return CapacityPlan(
        request=request, engine=engine, max_connections=limit, limit_source=source,
        memory_gib=gib, max_connections_range=low_high, reserved=reserved, usable=usable,
        connections_per_env=per_env, peak_environments=environments,
        peak_client_connections=clients, peak_db_connections=peak_db,
        peak_waiting_clients=waiting, headroom=headroom, fits=headroom >= 0,
        max_concurrency_direct=usable // (per_env * versions),
        max_concurrency_direct_low=(low_usable // (per_env * versions)
                                    if low_usable is not None else None),
        max_pool_size=usable, pool_size=pool, pool_mode=None if pool is None else mode,
        versions=versions, notes=tuple(notes))


def describe(plan: CapacityPlan) -> str:
    """The plan as the lines ``connstorm capacity`` prints."""
    r = plan.request
    where = (f"{plan.engine} on {r.instance_class} ({plan.memory_gib:g} GiB)"
             if plan.limit_source == "formula" else f"{plan.engine} with max_connections given")
    if r.proxy_max_connections_percent is not None:
        via = f"through RDS Proxy (MaxConnectionsPercent {r.proxy_max_connections_percent})"
    elif r.pooler_pool_size is not None:
        via = f"through a pooler ({r.pooler_mode} mode, pool size {r.pooler_pool_size})"
    else:
        via = "connecting directly"
    lines = [f"{where}; {r.concurrency} concurrent environments, pattern {r.pattern}, {via}",
             f"  max_connections      {plan.max_connections:>6}  ({plan.limit_source})",
             f"  reserved / others    {plan.reserved:>6}  / {r.other_connections}",
             f"  usable               {plan.usable:>6}",
             f"  per environment      {plan.connections_per_env:>6}",
             f"  client connections   {plan.peak_client_connections:>6}"
             f"  ({plan.peak_environments} environments x {plan.connections_per_env}"
             + (f" x {plan.versions} versions)" if plan.versions > 1 else ")"),
             f"  peak DB connections  {plan.peak_db_connections:>6}",
             ]
    if r.pooler_pool_size is not None or r.proxy_max_connections_percent is not None:
        lines.append(f"  waiting, worst case  {plan.peak_waiting_clients:>6}"
                     f"  (every environment in a transaction at once)"
                     if plan.pool_mode == "transaction" else
                     f"  waiting, pinned out  {plan.peak_waiting_clients:>6}")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(f"  headroom             {plan.headroom:>6}  {verdict}")
    low = (f" ({plan.max_concurrency_direct_low} if only 88 % of the memory counts)"
           if plan.max_concurrency_direct_low is not None else "")
    per_version = " per version" if plan.versions > 1 else ""
    lines.append(f"  direct, fits up to a concurrency of {plan.max_concurrency_direct}"
                 f"{per_version}{low}: cap it with reserved concurrency")
    lines.append(f"  with a transaction-mode pooler, any pool size up to {plan.max_pool_size} fits")
    lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join(lines) + "\n"
