"""Scenario files: TOML in, typed frozen dataclasses out, built in one place.

A scenario says what stack to start (PostgreSQL and PgBouncer settings, the
Lambda functions and their API Gateway routes) and what load to put on it. It is
connstorm's main user-facing contract: keys keep their meaning across releases.
PostgreSQL and PgBouncer settings keep their native names and units; connstorm's
own durations carry their unit in their name (``timeout_s``).

Every mistake is reported as a :class:`~connstorm.errors.ScenarioError` naming the
file, the key and the reason, for example::

    direct.toml: [postgres] max_connections: expected an integer, got "lots"

Precedence is ``--set`` override > file > built-in default, applied once, here.

>>> s = load_scenario("direct-small", overrides=["postgres.max_connections=30"])
>>> s.postgres.max_connections
30
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connstorm import error_kinds
from connstorm.errors import ScenarioError
from local_stack.lambda_.routes import RouteTemplateError, compile_route

#: Folder of the scenarios shipped with connstorm, found by name.
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "loadtests" / "scenarios"
DEFAULT_SCENARIO = "direct-small"

SettingValue = str | int | float | bool

PATTERNS: tuple[str, ...] = (
    "per_invocation",
    "leaky",
    "module_level",
    "module_level_resilient",
    "in_process_pool",
    "secrets_cached",
    "iam_token",
)
DATABASE_PATHS = ("direct", "pgbouncer", "none")
POOL_MODES = ("session", "transaction", "statement")
PAYLOAD_VERSIONS = ("1.0", "2.0")
SCALING_MODELS = ("current", "legacy")
LOAD_SHAPES = ("constant", "ramp", "steps", "spike", "soak")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
BACKENDS = ("native", "docker")

_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HANDLER = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")

# PgBouncer 1.18's [pgbouncer] settings; an unknown name is a typo, not a feature.
PGBOUNCER_SETTINGS = frozenset(
    """
    logfile pidfile listen_addr listen_port unix_socket_dir unix_socket_mode unix_socket_group
    user pool_mode max_client_conn default_pool_size min_pool_size reserve_pool_size
    reserve_pool_timeout max_db_connections max_user_connections server_round_robin
    ignore_startup_parameters disable_pqexec application_name_add_host conffile service_name
    job_name stats_period auth_type auth_hba_file auth_file auth_user auth_query auth_dbname
    syslog syslog_ident syslog_facility log_connections log_disconnections log_pooler_errors
    log_stats verbose admin_users stats_users server_reset_query server_reset_query_always
    server_check_delay server_check_query server_fast_close server_lifetime server_idle_timeout
    server_connect_timeout server_login_retry client_login_timeout autodb_idle_timeout
    dns_max_ttl dns_nxdomain_ttl dns_zone_check_period resolv_conf query_timeout
    query_wait_timeout cancel_wait_timeout client_idle_timeout idle_transaction_timeout
    suspend_timeout pkt_buf max_packet_size listen_backlog sbuf_loopcnt so_reuseport
    tcp_defer_accept tcp_socket_buffer tcp_keepalive tcp_keepcnt tcp_keepidle tcp_keepintvl
    tcp_user_timeout client_tls_sslmode client_tls_key_file client_tls_cert_file
    client_tls_ca_file client_tls_protocols client_tls_ciphers client_tls_ecdhcurve
    client_tls_dheparams server_tls_sslmode server_tls_ca_file server_tls_key_file
    server_tls_cert_file server_tls_protocols server_tls_ciphers peer_id
    """.split()  # noqa: SIM905 - a word list reads better than 90 quoted names
)
# Settings connstorm owns: a scenario cannot override them without breaking the stack.
PGBOUNCER_MANAGED = frozenset(
    {"logfile", "pidfile", "listen_addr", "listen_port", "unix_socket_dir", "auth_type",
     "auth_file", "admin_users", "stats_users", "user", "conffile"}
)
POSTGRES_MANAGED = frozenset(
    {"port", "listen_addresses", "unix_socket_directories", "data_directory", "hba_file",
     "ident_file", "external_pid_file", "password_encryption"}
)


# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class PostgresConfig:
    """The ``[postgres]`` section: the cluster connstorm starts (or an existing one).

    ``settings`` holds every postgresql.conf setting of the section, the typed
    fields below included, ready to be written to the server's configuration.
    """

    max_connections: int = 20
    superuser_reserved_connections: int = 3
    idle_session_timeout: str | int = 0
    idle_in_transaction_session_timeout: str | int = 0
    log_connections: bool = True
    log_disconnections: bool = True
    settings: Mapping[str, SettingValue] = field(default_factory=dict)
    #: An existing server's URL (superuser) instead of a private cluster.
    url: str | None = None
    #: How to run it: "native" processes, or "docker" containers.
    backend: str = "native"
    #: Rows of seed data the workload gets (products).
    seed_products: int = 1000

    @property
    def app_slots(self) -> int:
        """Connections an ordinary role can open before PostgreSQL refuses it."""
        return self.max_connections - self.superuser_reserved_connections


@dataclass(frozen=True)
class PgBouncerConfig:
    """The ``[pgbouncer]`` section; names and units are PgBouncer's own."""

    enabled: bool = True
    pool_mode: str = "transaction"
    default_pool_size: int = 10
    min_pool_size: int = 0
    reserve_pool_size: int = 0
    reserve_pool_timeout: float = 5.0
    max_client_conn: int = 1000
    max_db_connections: int = 0
    query_wait_timeout: int = 120
    server_idle_timeout: int = 600
    server_lifetime: int = 3600
    client_idle_timeout: int = 0
    settings: Mapping[str, SettingValue] = field(default_factory=dict)


@dataclass(frozen=True)
class LambdaConfig:
    """The ``[lambda]`` section: the emulator as a whole (the account)."""

    concurrency_limit: int = 1000
    freeze: bool = True
    scaling: str = "current"
    #: New environments per function per 10 s ("current" model, refilled continuously).
    scaling_per_10s: int = 1000
    #: Initial burst and per-minute growth of the "legacy" model.
    legacy_burst: int = 1000
    legacy_per_minute: int = 500
    init_timeout_s: float = 10.0
    shutdown_timeout_s: float = 2.0
    region: str = "us-east-1"
    #: Lambda's request-rate limit: a reserved function may start 10 x its reserved
    #: concurrency invocations per second, the unreserved functions together 10 x
    #: ``concurrency_limit``. On by default, as on AWS; a function can override it.
    request_rate_limit: bool = True
    #: Run the emulator's event loop at real-time priority (SCHED_FIFO 1) over its
    #: environments, as AWS runs the invoke path on CPUs the sandboxes never share;
    #: needs CAP_SYS_NICE, else it stays at the normal priority (see
    #: ``local_stack/lambda_/priority.py``).
    realtime_priority: bool = True
    #: Kill an environment whose resident memory passes its function's ``memory_mb``,
    #: as Lambda does (``Runtime.ExitError``, ``signal: killed``). Checked every
    #: ``memory_check_interval_s`` (a fast allocation can overshoot in between).
    enforce_memory: bool = True
    memory_check_interval_s: float = 0.1


@dataclass(frozen=True)
class FunctionConfig:
    """One ``[[functions]]`` entry: a Lambda function the emulator runs."""

    name: str
    handler: str
    code_dir: str = "."
    pattern: str | None = None
    database: str = "pgbouncer"
    timeout_s: float = 10.0
    memory_mb: int = 512
    reserved_concurrency: int | None = None
    idle_lifetime_s: float = 600.0
    max_lifetime_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: Modules the environment's parent imports before forking, to make cold
    #: starts cheap; the handler module itself is always imported in the environment.
    preload: tuple[str, ...] = ("psycopg", "psycopg_pool", "boto3", "botocore.session")
    #: This function's request-rate limit on or off; ``None`` follows ``[lambda]``.
    request_rate_limit: bool | None = None
    #: Retries of a failed ``Event`` invocation (MaximumRetryAttempts, 0-2).
    event_retry_attempts: int = 2
    #: Wait before the first retry of a failed ``Event`` invocation; the second
    #: waits twice as long (AWS: about 1 then 2 minutes).
    event_retry_delay_s: float = 60.0


@dataclass(frozen=True)
class RouteConfig:
    """One ``[[routes]]`` entry: an API Gateway route to a function."""

    method: str
    path: str
    function: str
    payload: str = "2.0"
    integration_timeout_s: float | None = None

    @property
    def effective_timeout_s(self) -> float:
        """API Gateway's integration timeout: 29 s for REST (1.0), 30 s for HTTP APIs."""
        if self.integration_timeout_s is not None:
            return self.integration_timeout_s
        return 29.0 if self.payload == "1.0" else 30.0


@dataclass(frozen=True)
class LoadConfig:
    """The ``[load]`` section: what Locust does."""

    users: int = 100
    spawn_rate: float = 20.0
    duration_s: float = 60.0
    shape: str = "constant"
    step_users: int = 20
    step_duration_s: float = 5.0
    think_time_min_ms: float = 0.0
    think_time_max_ms: float = 50.0
    sample_interval_s: float = 1.0
    processes: int = 0


@dataclass(frozen=True)
class ThresholdsConfig:
    """The ``[thresholds]`` section: limits checked at the end of a run."""

    max_fail_ratio: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    min_rps: float | None = None
    max_db_connections: int | None = None
    #: Maximum count per error kind, e.g. ``too_many_connections = 0``.
    max_errors: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A whole scenario, validated. Build it with :func:`load_scenario`."""

    name: str
    source: str
    description: str = ""
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    pgbouncer: PgBouncerConfig = field(default_factory=PgBouncerConfig)
    lambda_: LambdaConfig = field(default_factory=LambdaConfig)
    functions: tuple[FunctionConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    load: LoadConfig = field(default_factory=LoadConfig)
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)
    #: The merged TOML document, overrides applied: written to the run folder.
    raw: Mapping[str, Any] = field(default_factory=dict)

    def function(self, name: str) -> FunctionConfig:
        """The function called ``name``; raises ``KeyError`` when there is none."""
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(name)


# ---------------------------------------------------------------- loading


def resolve_path(name_or_path: str | Path) -> Path:
    """Find a scenario by file path, or by the name of a built-in one."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = BUILTIN_DIR / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.toml")))
    raise ScenarioError(f"{name_or_path}: no such scenario file, and no built-in one by that name "
                        f"(built-in: {names})")


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with connstorm."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path | None = None,
                  overrides: Sequence[str] = ()) -> Scenario:
    """Read, override and validate a scenario; the only way scenarios are built."""
    path = resolve_path(name_or_path if name_or_path is not None else DEFAULT_SCENARIO)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    for item in overrides:
        apply_override(doc, item, source=str(path))
    return parse_scenario(doc, source=str(path))


def parse_value(text: str) -> Any:
    """Parse an override's value as TOML (``30``, ``true``, ``"x"``), else keep the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(doc: dict[str, Any], item: str, *, source: str) -> None:
    """Apply one ``section.key=value``; ``functions.NAME.key`` picks a function by name."""
    where = f"{source}: --set {item}"
    if "=" not in item:
        raise ScenarioError(f"{where}: expected section.key=value")
    dotted, _, text = item.partition("=")
    parts = [p for p in dotted.strip().split(".") if p]
    if not parts:
        raise ScenarioError(f"{where}: empty key")
    target: Any = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(target, list):
            target = _select_entry(target, part, f"{where}: {'.'.join(parts[:i])}")
        elif isinstance(target, dict):
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict | list):
                raise ScenarioError(f"{where}: {part} is a value, not a section")
            target = nxt
    if not isinstance(target, dict):
        raise ScenarioError(f"{where}: cannot set a key on a list; name an entry first")
    target[parts[-1]] = parse_value(text.strip())


def _select_entry(entries: list[Any], key: str, where: str) -> dict[str, Any]:
    if key.isdigit() and int(key) < len(entries):
        entry = entries[int(key)]
        if isinstance(entry, dict):
            return entry
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == key:
            return entry
    raise ScenarioError(f"{where}: no entry named or numbered {key!r}")


# ---------------------------------------------------------------- validation


class _Section:
    """Reads one table of the document, checking each key as it is taken."""

    def __init__(self, table: Any, label: str, source: str) -> None:
        self.source = source
        self.label = label
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise ScenarioError(f"{source}: {label}: expected a table, got {_show(table)}")
        self.table: dict[str, Any] = table
        self.taken: set[str] = set()

    def fail(self, key: str, reason: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {self.label} {key}: {reason}")

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str) -> Any:
        self.taken.add(key)
        return self.table.get(key)

    def int_(self, key: str, default: int | None, lo: int | None = None,
             hi: int | None = None) -> Any:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_show(value)}")
        self._range(key, value, lo, hi)
        return value

    def num(self, key: str, default: float | None, lo: float | None = None,
            hi: float | None = None) -> Any:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {_show(value)}")
        self._range(key, value, lo, hi)
        return float(value)

    def bool_(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_show(value)}")
        return value

    def str_(self, key: str, default: str | None, choices: Sequence[str] | None = None,
             pattern: re.Pattern[str] | None = None) -> Any:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_show(value)}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}; got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key, f"not a valid value: {value!r}")
        return value

    def _range(self, key: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise self.fail(key, f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            raise self.fail(key, f"must be at most {hi}, got {value}")

    def reject_unknown(self, allowed: Sequence[str] = ()) -> None:
        for key in self.table:
            if key not in self.taken and key not in allowed:
                known = ", ".join(sorted(self.taken))
                raise self.fail(key, f"unknown key (known: {known})")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}"


def _settings(section: _Section, known: set[str], managed: frozenset[str],
              allowed: frozenset[str] | None, what: str) -> dict[str, SettingValue]:
    """The section's native settings: every key not consumed as connstorm's own."""
    out: dict[str, SettingValue] = {}
    for key, value in section.table.items():
        if key in known:
            continue
        if not _SETTING_NAME.match(key):
            raise section.fail(key, f"not a valid {what} setting name")
        if key in managed:
            raise section.fail(key, "is managed by connstorm and cannot be set in a scenario")
        if allowed is not None and key not in allowed:
            raise section.fail(key, f"unknown {what} setting")
        if not isinstance(value, str | int | float | bool):
            raise section.fail(key, f"expected a single value, got {_show(value)}")
        section.taken.add(key)
        out[key] = value
    return out


def parse_scenario(doc: Mapping[str, Any], *, source: str) -> Scenario:
    """Validate a TOML document (already parsed) into a :class:`Scenario`."""
    top = _Section(dict(doc), "", source)
    top.label = "top level"
    name = top.str_("name", None)
    if not name:
        raise top.fail("name", "missing; every scenario needs a name")
    description = top.str_("description", "")

    postgres = _parse_postgres(_Section(top.raw("postgres"), "[postgres]", source))
    pgbouncer = _parse_pgbouncer(_Section(top.raw("pgbouncer"), "[pgbouncer]", source))
    lambda_ = _parse_lambda(_Section(top.raw("lambda"), "[lambda]", source))
    functions = tuple(_parse_functions(top.raw("functions"), source))
    routes = tuple(_parse_routes(top.raw("routes"), source))
    load = _parse_load(_Section(top.raw("load"), "[load]", source))
    thresholds = _parse_thresholds(_Section(top.raw("thresholds"), "[thresholds]", source))
    top.reject_unknown()

    scenario = Scenario(name=name, source=source, description=description, postgres=postgres,
                        pgbouncer=pgbouncer, lambda_=lambda_, functions=functions,
                        routes=routes, load=load, thresholds=thresholds, raw=dict(doc))
    _check_consistency(scenario)
    return scenario


def _parse_postgres(s: _Section) -> PostgresConfig:
    defaults = PostgresConfig()
    max_conn = s.int_("max_connections", defaults.max_connections, 1, 262143)
    reserved = s.int_("superuser_reserved_connections", defaults.superuser_reserved_connections,
                      0, 262143)
    idle = _duration_setting(s, "idle_session_timeout")
    idle_tx = _duration_setting(s, "idle_in_transaction_session_timeout")
    log_conn = s.bool_("log_connections", defaults.log_connections)
    log_disc = s.bool_("log_disconnections", defaults.log_disconnections)
    url = s.str_("url", None)
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise s.fail("url", f"expected a postgresql:// URL, got {url!r}")
    backend = s.str_("backend", "native", BACKENDS)
    seed = s.int_("seed_products", defaults.seed_products, 0, 10_000_000)
    if reserved >= max_conn:
        raise s.fail("superuser_reserved_connections",
                     f"must be less than max_connections ({max_conn}), got {reserved}")
    own = {"url", "backend", "seed_products"}
    native = _settings(s, own | set(s.taken), POSTGRES_MANAGED, None, "PostgreSQL")
    settings: dict[str, SettingValue] = {
        "max_connections": max_conn,
        "superuser_reserved_connections": reserved,
        "idle_session_timeout": idle,
        "idle_in_transaction_session_timeout": idle_tx,
        "log_connections": log_conn,
        "log_disconnections": log_disc,
        **native,
    }
    return PostgresConfig(max_connections=max_conn, superuser_reserved_connections=reserved,
                          idle_session_timeout=idle, idle_in_transaction_session_timeout=idle_tx,
                          log_connections=log_conn, log_disconnections=log_disc,
                          settings=settings, url=url, backend=backend, seed_products=seed)


_PG_DURATION = re.compile(r"^\s*\d+\s*(us|ms|s|min|h|d)?\s*$")


def _duration_setting(s: _Section, key: str) -> str | int:
    value = s.raw(key)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise s.fail(key, f"expected milliseconds or a PostgreSQL duration like \"10s\", "
                          f"got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise s.fail(key, f"must be at least 0, got {value}")
        return value
    if isinstance(value, str) and _PG_DURATION.match(value):
        return value.strip()
    raise s.fail(key, f"expected milliseconds or a PostgreSQL duration like \"10s\", "
                      f"got {_show(value)}")


def _parse_pgbouncer(s: _Section) -> PgBouncerConfig:
    d = PgBouncerConfig()
    enabled = s.bool_("enabled", d.enabled)
    pool_mode = s.str_("pool_mode", d.pool_mode, POOL_MODES)
    pool = s.int_("default_pool_size", d.default_pool_size, 1, 100_000)
    min_pool = s.int_("min_pool_size", d.min_pool_size, 0, 100_000)
    reserve = s.int_("reserve_pool_size", d.reserve_pool_size, 0, 100_000)
    reserve_timeout = s.num("reserve_pool_timeout", d.reserve_pool_timeout, 0)
    max_client = s.int_("max_client_conn", d.max_client_conn, 1, 1_000_000)
    max_db = s.int_("max_db_connections", d.max_db_connections, 0, 100_000)
    qwt = s.int_("query_wait_timeout", d.query_wait_timeout, 0)
    sit = s.int_("server_idle_timeout", d.server_idle_timeout, 0)
    slt = s.int_("server_lifetime", d.server_lifetime, 0)
    cit = s.int_("client_idle_timeout", d.client_idle_timeout, 0)
    if min_pool > pool:
        raise s.fail("min_pool_size", f"must not exceed default_pool_size ({pool}), got {min_pool}")
    native = _settings(s, {"enabled"} | set(s.taken), PGBOUNCER_MANAGED, PGBOUNCER_SETTINGS,
                       "PgBouncer")
    settings: dict[str, SettingValue] = {
        "pool_mode": pool_mode, "default_pool_size": pool, "min_pool_size": min_pool,
        "reserve_pool_size": reserve, "reserve_pool_timeout": reserve_timeout,
        "max_client_conn": max_client, "max_db_connections": max_db,
        "query_wait_timeout": qwt, "server_idle_timeout": sit, "server_lifetime": slt,
        "client_idle_timeout": cit, **native,
    }
    return PgBouncerConfig(enabled=enabled, pool_mode=pool_mode, default_pool_size=pool,
                           min_pool_size=min_pool, reserve_pool_size=reserve,
                           reserve_pool_timeout=reserve_timeout, max_client_conn=max_client,
                           max_db_connections=max_db, query_wait_timeout=qwt,
                           server_idle_timeout=sit, server_lifetime=slt,
                           client_idle_timeout=cit, settings=settings)


def _parse_lambda(s: _Section) -> LambdaConfig:
    d = LambdaConfig()
    cfg = LambdaConfig(
        concurrency_limit=s.int_("concurrency_limit", d.concurrency_limit, 1, 100_000),
        freeze=s.bool_("freeze", d.freeze),
        scaling=s.str_("scaling", d.scaling, SCALING_MODELS),
        scaling_per_10s=s.int_("scaling_per_10s", d.scaling_per_10s, 1, 1_000_000),
        legacy_burst=s.int_("legacy_burst", d.legacy_burst, 1, 1_000_000),
        legacy_per_minute=s.int_("legacy_per_minute", d.legacy_per_minute, 1, 1_000_000),
        init_timeout_s=s.num("init_timeout_s", d.init_timeout_s, 0.1, 600),
        shutdown_timeout_s=s.num("shutdown_timeout_s", d.shutdown_timeout_s, 0, 60),
        region=s.str_("region", d.region),
        request_rate_limit=s.bool_("request_rate_limit", d.request_rate_limit),
        realtime_priority=s.bool_("realtime_priority", d.realtime_priority),
        enforce_memory=s.bool_("enforce_memory", d.enforce_memory),
        memory_check_interval_s=s.num("memory_check_interval_s", d.memory_check_interval_s,
                                      0.01, 10),
    )
    s.reject_unknown()
    return cfg


def _parse_functions(value: Any, source: str) -> list[FunctionConfig]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(f"{source}: functions: expected [[functions]] tables, got "
                            f"{_show(value)}")
    out: list[FunctionConfig] = []
    for i, entry in enumerate(value):
        s = _Section(entry, f"[[functions]] #{i + 1}", source)
        name = s.str_("name", None, pattern=_FUNCTION_NAME)
        if name is None:
            raise s.fail("name", "missing")
        s.label = f"[[functions]] {name}:"
        pattern = s.str_("pattern", None, PATTERNS)
        handler = s.str_("handler", None, pattern=_HANDLER)
        if pattern and handler:
            raise s.fail("pattern", "give either pattern or handler, not both")
        if pattern:
            handler = f"handlers.{pattern}_handler.lambda_handler"
        if handler is None:
            raise s.fail("handler", "missing; give handler = \"module.function\" or pattern")
        d = FunctionConfig(name=name, handler=handler)
        env = s.raw("env") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str | int | float | bool)
                                                for v in env.values()):
            raise s.fail("env", "expected a table of strings")
        preload = s.raw("preload")
        if preload is None:
            preload = d.preload
        elif not (isinstance(preload, list) and all(isinstance(m, str) for m in preload)):
            raise s.fail("preload", "expected a list of module names")
        reserved = s.int_("reserved_concurrency", None, 0, 100_000)
        rate_limit = s.raw("request_rate_limit")
        if rate_limit is not None:
            rate_limit = s.bool_("request_rate_limit", True)
        fn = FunctionConfig(
            name=name, handler=handler, pattern=pattern,
            code_dir=s.str_("code_dir", d.code_dir),
            database=s.str_("database", d.database, DATABASE_PATHS),
            timeout_s=s.num("timeout_s", d.timeout_s, 0.01, 900),
            memory_mb=s.int_("memory_mb", d.memory_mb, 128, 10240),
            reserved_concurrency=reserved,
            idle_lifetime_s=s.num("idle_lifetime_s", d.idle_lifetime_s, 0.1),
            max_lifetime_s=s.num("max_lifetime_s", None, 0.1),
            env={str(k): _env_str(v) for k, v in env.items()},
            preload=tuple(preload),
            request_rate_limit=rate_limit,
            event_retry_attempts=s.int_("event_retry_attempts", d.event_retry_attempts, 0, 2),
            event_retry_delay_s=s.num("event_retry_delay_s", d.event_retry_delay_s, 0, 21_600),
        )
        s.reject_unknown()
        out.append(fn)
    names = [fn.name for fn in out]
    for name in names:
        if names.count(name) > 1:
            raise ScenarioError(f"{source}: [[functions]] {name}: name used twice")
    return out


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_routes(value: Any, source: str) -> list[RouteConfig]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(f"{source}: routes: expected [[routes]] tables, got {_show(value)}")
    out: list[RouteConfig] = []
    for i, entry in enumerate(value):
        s = _Section(entry, f"[[routes]] #{i + 1}", source)
        method = s.str_("method", None)
        if method is None:
            raise s.fail("method", "missing")
        method = method.upper()
        if method not in HTTP_METHODS:
            raise s.fail("method", f"must be one of {', '.join(HTTP_METHODS)}; got {method!r}")
        path = s.str_("path", None)
        if path is None or not path.startswith("/"):
            raise s.fail("path", f"must start with '/', got {path!r}")
        function = s.str_("function", None)
        if function is None:
            raise s.fail("function", "missing")
        route = RouteConfig(method=method, path=path, function=function,
                            payload=s.str_("payload", "2.0", PAYLOAD_VERSIONS),
                            integration_timeout_s=s.num("integration_timeout_s", None, 0.05, 30))
        s.reject_unknown()
        try:
            compile_route(route)
        except RouteTemplateError as exc:
            raise s.fail("path", str(exc)) from None
        out.append(route)
    return out


def _parse_load(s: _Section) -> LoadConfig:
    d = LoadConfig()
    cfg = LoadConfig(
        users=s.int_("users", d.users, 1, 1_000_000),
        spawn_rate=s.num("spawn_rate", d.spawn_rate, 0.01),
        duration_s=s.num("duration_s", d.duration_s, 1),
        shape=s.str_("shape", d.shape, LOAD_SHAPES),
        step_users=s.int_("step_users", d.step_users, 1),
        step_duration_s=s.num("step_duration_s", d.step_duration_s, 0.5),
        think_time_min_ms=s.num("think_time_min_ms", d.think_time_min_ms, 0),
        think_time_max_ms=s.num("think_time_max_ms", d.think_time_max_ms, 0),
        sample_interval_s=s.num("sample_interval_s", d.sample_interval_s, 0.05, 60),
        processes=s.int_("processes", d.processes, 0, 64),
    )
    s.reject_unknown()
    if cfg.think_time_min_ms > cfg.think_time_max_ms:
        raise s.fail("think_time_min_ms",
                     f"must not exceed think_time_max_ms ({cfg.think_time_max_ms})")
    return cfg


def _parse_thresholds(s: _Section) -> ThresholdsConfig:
    cfg_fail = s.num("max_fail_ratio", None, 0, 1)
    p95 = s.num("p95_ms", None, 0)
    p99 = s.num("p99_ms", None, 0)
    rps = s.num("min_rps", None, 0)
    max_db = s.int_("max_db_connections", None, 0)
    errors: dict[str, int] = {}
    for kind in error_kinds.ALL_KINDS:
        if s.has(kind):
            errors[kind] = s.int_(kind, 0, 0)
    s.reject_unknown()
    return ThresholdsConfig(max_fail_ratio=cfg_fail, p95_ms=p95, p99_ms=p99, min_rps=rps,
                            max_db_connections=max_db, max_errors=errors)


def _check_consistency(sc: Scenario) -> None:
    """Settings that are each valid but contradict each other."""
    src = sc.source
    pg, pb = sc.postgres, sc.pgbouncer
    uses_pooler = any(fn.database == "pgbouncer" for fn in sc.functions)
    if uses_pooler and not pb.enabled:
        raise ScenarioError(f"{src}: [pgbouncer] enabled: a function uses database = "
                            f"\"pgbouncer\" but PgBouncer is disabled")
    if pb.enabled and pg.url is None:
        server_side = pb.default_pool_size + pb.reserve_pool_size
        if pb.max_db_connections:
            server_side = min(server_side, pb.max_db_connections)
        if server_side > pg.app_slots:
            raise ScenarioError(
                f"{src}: [pgbouncer] default_pool_size: the pool ({server_side} server "
                f"connections with the reserve) is larger than PostgreSQL allows an ordinary "
                f"role (max_connections {pg.max_connections} - superuser_reserved_connections "
                f"{pg.superuser_reserved_connections} = {pg.app_slots})")
    names = {fn.name for fn in sc.functions}
    seen: set[tuple[str, str]] = set()
    for route in sc.routes:
        if route.function not in names:
            raise ScenarioError(f"{src}: [[routes]] {route.method} {route.path}: function "
                                f"{route.function!r} is not defined in [[functions]]")
        key = (route.method, route.path)
        if key in seen:
            raise ScenarioError(f"{src}: [[routes]] {route.method} {route.path}: defined twice")
        seen.add(key)
    reserved = sum(fn.reserved_concurrency or 0 for fn in sc.functions)
    if reserved > sc.lambda_.concurrency_limit:
        raise ScenarioError(f"{src}: [[functions]] reserved_concurrency: the functions reserve "
                            f"{reserved} in all, more than [lambda] concurrency_limit "
                            f"({sc.lambda_.concurrency_limit})")
