"""The names of the pooler and emulator series, spelled once for everyone who uses them.

A series passes through several hands: the RDS Proxy stand-in publishes a
snapshot, a Locust-side collector copies it into ``samples.jsonl``, the
``connstorm live`` CloudWatch reader writes rows under the same keys, and the
summary and the report read them back. When each hand spelled the names itself,
a name could be emitted and never collected (``IdleClientsClosed`` was). Every
one of them imports the names from here, in the base layer, which imports nothing.

RDS Proxy
    CloudWatch's own metric names, namespace ``AWS/RDS``, dimension ``ProxyName``
    (AWS RDS User Guide, "Monitoring RDS Proxy metrics with Amazon CloudWatch"),
    so that a local run through the stand-in and a live run chart the same
    series; plus a few of connstorm's own counters that CloudWatch has no name
    for (:data:`RDS_PROXY_OWN`).
PgBouncer
    The columns of the admin console's ``SHOW POOLS`` (PgBouncer "Usage",
    section "SHOW POOLS"), summed over the pools of one database, and three
    ``SHOW STATS`` totals ("SHOW STATS").
Emulator
    The keys of the Lambda emulator's stats route, which the ``emulator`` row of
    ``samples.jsonl`` keeps (``docs/run-folder.md``).
"""

from __future__ import annotations

# --------------------------------------------------------------------- RDS Proxy

#: Client connections open now (gauge).
CLIENT_CONNECTIONS = "ClientConnections"
#: Database connections open or opening now (gauge).
DATABASE_CONNECTIONS = "DatabaseConnections"
#: Of those, lent to a client now (gauge).
DATABASE_CONNECTIONS_BORROWED = "DatabaseConnectionsCurrentlyBorrowed"
#: Lent and inside a transaction block (gauge).
DATABASE_CONNECTIONS_IN_TRANSACTION = "DatabaseConnectionsCurrentlyInTransaction"
#: Lent for the rest of the session to a pinned client (gauge).
DATABASE_CONNECTIONS_PINNED = "DatabaseConnectionsCurrentlySessionPinned"
#: Microseconds to borrow a database connection (mean).
BORROW_LATENCY = "DatabaseConnectionsBorrowLatency"
#: Microseconds from sending a query to the database to its first byte back (mean).
QUERY_DATABASE_RESPONSE_LATENCY = "QueryDatabaseResponseLatency"
#: Client logins refused (counter).
SETUP_FAILED_AUTH = "ClientConnectionsSetupFailedAuth"
#: Client logins accepted (counter).
SETUP_SUCCEEDED = "ClientConnectionsSetupSucceeded"
#: Queries received from clients (counter).
QUERY_REQUESTS = "QueryRequests"
#: The pool's bound on database connections (gauge).
MAX_DATABASE_CONNECTIONS = "MaxDatabaseConnectionsAllowed"
#: Database connections the proxy tried to open (counter).
DATABASE_CONNECTION_REQUESTS = "DatabaseConnectionRequests"
#: Of those, opened (counter).
DATABASE_SETUP_SUCCEEDED = "DatabaseConnectionsSetupSucceeded"
#: Of those, refused or failed (counter): a pool larger than the role's slots shows here.
DATABASE_SETUP_FAILED = "DatabaseConnectionsSetupFailed"

#: connstorm's own: clients that waited longer than the borrow timeout (counter).
BORROW_TIMEOUTS = "BorrowTimeouts"
#: connstorm's own: clients closed by the idle client timeout (counter). CloudWatch
#: counts these only inside ``ClientConnectionsClosed``, with every other close.
IDLE_CLIENTS_CLOSED = "IdleClientsClosed"
#: connstorm's own: Parses injected before a Bind/Describe on a connection that lacked
#: the client's named statement (counter; RDS Proxy does this but publishes no metric).
PREPARED_STATEMENTS_INJECTED = "PreparedStatementsInjected"
#: connstorm's own: clients' CancelRequests, ignored as RDS Proxy for PostgreSQL does (counter).
CANCEL_REQUESTS_IGNORED = "CancelRequestsIgnored"
#: connstorm's own: reason -> ``{"count", "sample"}`` for every pin, in RDS Proxy's words.
PIN_REASONS = "pin_reasons"

#: The CloudWatch-named metrics the stand-in publishes.
RDS_PROXY_CLOUDWATCH: tuple[str, ...] = (
    CLIENT_CONNECTIONS, DATABASE_CONNECTIONS, DATABASE_CONNECTIONS_BORROWED,
    DATABASE_CONNECTIONS_IN_TRANSACTION, DATABASE_CONNECTIONS_PINNED, BORROW_LATENCY,
    SETUP_FAILED_AUTH, SETUP_SUCCEEDED, QUERY_REQUESTS, MAX_DATABASE_CONNECTIONS,
    DATABASE_CONNECTION_REQUESTS, DATABASE_SETUP_SUCCEEDED, DATABASE_SETUP_FAILED,
)
#: connstorm's own numeric counters beside them.
RDS_PROXY_OWN: tuple[str, ...] = (BORROW_TIMEOUTS, IDLE_CLIENTS_CLOSED,
                                   PREPARED_STATEMENTS_INJECTED, CANCEL_REQUESTS_IGNORED)
#: Every number in the stand-in's snapshot, and so in a local ``rds_proxy`` row
#: (``pin_reasons`` comes beside them).
RDS_PROXY_SNAPSHOT: tuple[str, ...] = RDS_PROXY_CLOUDWATCH + RDS_PROXY_OWN
#: The RDS Proxy chart's series: both a local and a live run have them.
RDS_PROXY_CHART: tuple[str, ...] = (
    CLIENT_CONNECTIONS, DATABASE_CONNECTIONS, DATABASE_CONNECTIONS_BORROWED,
    DATABASE_CONNECTIONS_PINNED, SETUP_FAILED_AUTH,
)

# --------------------------------------------------------------------- PgBouncer

#: SHOW POOLS: clients linked to a server connection, or idle with none needed.
CL_ACTIVE = "cl_active"
#: SHOW POOLS: clients that sent a query and wait for a server connection.
CL_WAITING = "cl_waiting"
#: SHOW POOLS: server connections linked to a client.
SV_ACTIVE = "sv_active"
#: SHOW POOLS: server connections unused and ready for a client.
SV_IDLE = "sv_idle"
#: SHOW POOLS: server connections idle for longer than server_check_delay.
SV_USED = "sv_used"
#: SHOW POOLS: server connections logging in.
SV_LOGIN = "sv_login"
#: The longest wait of a client in the queue, seconds (SHOW POOLS maxwait + maxwait_us).
MAXWAIT_S = "maxwait_s"
#: SHOW POOLS pool_mode (session, transaction, statement).
POOL_MODE = "pool_mode"
#: SHOW STATS totals, as the row keeps them (``total_wait_time`` is in microseconds).
TOTAL_XACT_COUNT = "total_xact_count"
TOTAL_QUERY_COUNT = "total_query_count"
TOTAL_WAIT_TIME_US = "total_wait_time_us"

#: Clients of the pooler: the ones served and the ones queued.
PGBOUNCER_CLIENTS: tuple[str, ...] = (CL_ACTIVE, CL_WAITING)
#: Server connections the pooler holds, in any state.
PGBOUNCER_SERVERS: tuple[str, ...] = (SV_ACTIVE, SV_IDLE, SV_USED, SV_LOGIN)
#: Every SHOW POOLS count the row keeps.
PGBOUNCER_POOL_COUNTS: tuple[str, ...] = PGBOUNCER_CLIENTS + PGBOUNCER_SERVERS

# ---------------------------------------------------------------------- emulator

#: Execution environments by state (``env_<state>``), alive in total, reaped so far.
EMULATOR_ENV_STATES: tuple[str, ...] = ("initializing", "busy", "frozen", "idle", "stopping",
                                        "total", "reaped")
ENV_TOTAL = "env_total"
ENV_BUSY = "env_busy"
CONCURRENCY = "concurrency"
CONCURRENCY_PEAK = "concurrency_peak"
COLD_STARTS = "cold_starts"
THROTTLES = "throttles"
ERRORS_BY_KIND = "errors_by_kind"
#: Counters since the emulator started.
EMULATOR_COUNTERS: tuple[str, ...] = ("invocations", COLD_STARTS, THROTTLES, "timeouts",
                                      "errors")
#: The lifecycle's figures (provisioned concurrency, deploys, schedules, VPC refusals).
EMULATOR_LIFECYCLE: tuple[str, ...] = (
    "provisioned", "provisioned_busy", "provisioned_invocations", "spillover_invocations",
    "superseded", "deploys", "scheduled_invocations", "rejections",
)
#: Connections of reaped environments the servers still see open, held by the emulator
#: until the server's keepalive would give up (docs/lambda-vanished.md), gauge.
VANISHED_CONNECTIONS = "vanished_connections"
#: Reaped environments with at least one such connection (gauge).
VANISHED_ENVIRONMENTS = "vanished_environments"
EMULATOR_VANISHED: tuple[str, ...] = (VANISHED_CONNECTIONS, VANISHED_ENVIRONMENTS)
#: Every key of the stats route's totals, in the order of the ``emulator`` row.
EMULATOR_STAT_KEYS: tuple[str, ...] = (
    *(f"env_{state}" for state in EMULATOR_ENV_STATES), CONCURRENCY, CONCURRENCY_PEAK,
    *EMULATOR_COUNTERS, ERRORS_BY_KIND, *EMULATOR_LIFECYCLE, *EMULATOR_VANISHED,
)
