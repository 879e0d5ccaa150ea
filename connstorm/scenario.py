"""Scenario files: TOML in, a validated frozen :class:`Scenario` out, built in one place.

A scenario says what stack to start (PostgreSQL, PgBouncer, the RDS Proxy
stand-in, the Lambda functions and their API Gateway routes), what load to put on
it, what happens during the run (``[[timeline]]``, ``[[schedules]]``) and what
counts as a pass. It is connstorm's main user-facing contract: keys keep their
meaning across releases. Server settings keep their native names and units;
connstorm's own durations carry their unit in their name (``timeout_s``).

The model is built on pydantic v2 (``connstorm/sections/``, one module per
section) rather than msgspec: pydantic's dataclasses keep the positional and
``dataclasses.replace`` use the rest of connstorm makes of these configs, its
JSON Schema generation gives editors completion (``connstorm schema``), and its
errors carry the key path that :mod:`connstorm.scenario_messages` words as one
line naming the file, the key and the reason, for example::

    direct.toml: [postgres] max_connections: expected an integer, got "lots"

Precedence is ``--set`` override > file > built-in default, applied once, here.

>>> s = load_scenario("direct-small", overrides=["postgres.max_connections=30"])
>>> s.postgres.max_connections
30
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from connstorm.errors import ScenarioError
from connstorm.scenario_messages import one_line
from connstorm.sections.base import SECTION, KeyProblem, SettingValue, Str
from connstorm.sections.functions import DATABASE_PATHS, PATTERNS, FunctionConfig
from connstorm.sections.lambda_ import SCALING_MODELS, LambdaConfig
from connstorm.sections.live import LiveConfig
from connstorm.sections.load import LOAD_SHAPES, LoadConfig
from connstorm.sections.pgbouncer import (
    PGBOUNCER_MANAGED,
    PGBOUNCER_SETTINGS,
    POOL_MODES,
    PgBouncerConfig,
)
from connstorm.sections.postgres import BACKENDS, POSTGRES_MANAGED, PostgresConfig
from connstorm.sections.rds_proxy import RdsProxyConfig
from connstorm.sections.routes import HTTP_METHODS, PAYLOAD_VERSIONS, RouteConfig
from connstorm.sections.schedules import ScheduleConfig
from connstorm.sections.thresholds import ThresholdsConfig
from connstorm.sections.timeline import TimelineAction
from connstorm.sections.vpc import VpcConfig

__all__ = [
    "BACKENDS", "BUILTIN_DIR", "DATABASE_PATHS", "DEFAULT_SCENARIO", "HTTP_METHODS",
    "LOAD_SHAPES", "PATTERNS", "PAYLOAD_VERSIONS", "PGBOUNCER_MANAGED", "PGBOUNCER_SETTINGS",
    "POOL_MODES", "POSTGRES_MANAGED", "SCALING_MODELS", "FunctionConfig", "LambdaConfig",
    "LiveConfig", "LoadConfig", "PgBouncerConfig", "PostgresConfig", "RdsProxyConfig",
    "RouteConfig", "Scenario", "ScheduleConfig", "SettingValue", "ThresholdsConfig",
    "TimelineAction", "VpcConfig", "apply_override", "builtin_names", "load_scenario",
    "parse_scenario", "parse_value", "resolve_path",
]

#: Folder of the scenarios shipped with connstorm, found by name.
BUILTIN_DIR = Path(__file__).resolve().parent / "loadtests" / "scenarios"
DEFAULT_SCENARIO = "direct-small"
#: Fields of :class:`Scenario` that connstorm fills in; a file cannot set them.
_NOT_KEYS = ("source", "raw")


@dataclass(frozen=True, config=SECTION)
class Scenario:
    """A connstorm scenario: the stack to start, the load to put on it, and the checks.

    A TOML file; ``connstorm schema`` gives editors completion and validation
    (see docs/scenarios.md and docs/commands/schema.md).
    """

    name: Annotated[Str, Field(min_length=1)]
    """The scenario's name, shown in reports."""
    source: SkipJsonSchema[str] = ""
    """The file it was read from (set by connstorm)."""
    description: Str = ""
    """One line on what the scenario shows."""
    # Validated from an empty table, not constructed: only a table's validation fills
    # ``settings`` with the typed keys' defaults (a bare PostgresConfig() left it empty,
    # so a scenario without [postgres] ran the server with PostgreSQL's own defaults).
    postgres: PostgresConfig = Field(
        default_factory=lambda: TypeAdapter(PostgresConfig).validate_python({}))
    """The PostgreSQL server."""
    pgbouncer: PgBouncerConfig = Field(
        default_factory=lambda: TypeAdapter(PgBouncerConfig).validate_python({}))
    """PgBouncer in front of PostgreSQL."""
    lambda_: LambdaConfig = Field(default_factory=LambdaConfig, alias="lambda")
    """The Lambda account the emulator stands for."""
    functions: tuple[FunctionConfig, ...] = ()
    """The Lambda functions."""
    routes: tuple[RouteConfig, ...] = ()
    """API Gateway routes to the functions."""
    load: LoadConfig = Field(default_factory=LoadConfig)
    """The Locust load."""
    thresholds: ThresholdsConfig = Field(default_factory=ThresholdsConfig)
    """Pass/fail limits checked at the end of a run."""
    rds_proxy: RdsProxyConfig = Field(default_factory=RdsProxyConfig)
    """The RDS Proxy stand-in."""
    timeline: tuple[TimelineAction, ...] = ()
    """Actions fired during the run: deploys and faults."""
    schedules: tuple[ScheduleConfig, ...] = ()
    """Scheduled invocations (keep-warm pings)."""
    live: LiveConfig = Field(default_factory=LiveConfig)
    """Settings of connstorm live, against a deployed stack."""
    raw: SkipJsonSchema[Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """The merged TOML document, overrides applied: written to the run folder."""

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        _check_consistency(self)
        if not self.rds_proxy.enabled and any(
                fn.database == "rds_proxy" for fn in self.functions):
            object.__setattr__(self, "rds_proxy",
                               dataclasses.replace(self.rds_proxy, enabled=True))
        return self

    def function(self, name: str) -> FunctionConfig:
        """The function called ``name``; raises ``KeyError`` when there is none."""
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(name)


@cache
def _adapter() -> TypeAdapter[Scenario]:
    return TypeAdapter(Scenario)


# ---------------------------------------------------------------- loading


def resolve_path(name_or_path: str | Path) -> Path:
    """Find a scenario by file path, or by the name of a built-in one."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = BUILTIN_DIR / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    names = ", ".join(builtin_names())
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
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScenarioError(f"{path}: cannot read: {reason}") from None
    if not overrides:
        return parse_scenario(doc, source=str(path))
    as_written = copy.deepcopy(doc)
    for item in overrides:
        apply_override(doc, item, source=str(path))
    try:
        return parse_scenario(doc, source=str(path))
    except ScenarioError:
        _blame_override(as_written, overrides, path)
        raise


def _blame_override(doc: dict[str, Any], overrides: Sequence[str], path: Path) -> None:
    """Raise the error naming the first ``--set`` that makes a valid file invalid.

    Without this, ``--set load.users=abc`` read as a mistake in the scenario file
    (``direct-small.toml: [load] users: expected an integer``), a file the user
    never touched. Returns when the file is invalid by itself (its own error stands).
    """
    try:
        parse_scenario(doc, source=str(path))
    except ScenarioError:
        return
    for item in overrides:
        apply_override(doc, item, source=str(path))
        parse_scenario(doc, source=f"{path}: --set {item}")


def parse_scenario(doc: Mapping[str, Any], *, source: str) -> Scenario:
    """Validate a TOML document (already parsed) into a :class:`Scenario`."""
    for key in _NOT_KEYS:
        if key in doc:
            raise ScenarioError(f"{source}: top level {key}: unknown key")
    try:
        return _adapter().validate_python({**doc, "source": source, "raw": dict(doc)})
    except ValidationError as exc:
        raise ScenarioError(one_line(exc, Scenario, doc, source)) from None


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


# ---------------------------------------------------------------- cross-section rules


def _check_consistency(sc: Scenario) -> None:
    """Settings that are each valid but contradict each other."""
    pg, pb = sc.postgres, sc.pgbouncer
    if any(fn.database == "pgbouncer" for fn in sc.functions) and not pb.enabled:
        raise KeyProblem(("pgbouncer", "enabled"),
                         'a function uses database = "pgbouncer" but PgBouncer is disabled')
    if pb.enabled and pg.url is None and pb.server_connections > pg.app_slots:
        raise KeyProblem(
            ("pgbouncer", "default_pool_size"),
            f"the pool ({pb.server_connections} server connections with the reserve) is larger "
            f"than PostgreSQL allows an ordinary role (max_connections {pg.max_connections} - "
            f"superuser_reserved_connections {pg.superuser_reserved_connections} = "
            f"{pg.app_slots})")
    _check_functions(sc)
    _check_routes(sc)
    _check_timeline(sc)
    for i, schedule in enumerate(sc.schedules):
        if schedule.function not in {fn.name for fn in sc.functions}:
            raise KeyProblem(("schedules", i, "function"),
                             f"{schedule.function!r} is not defined in [[functions]]")


def _check_functions(sc: Scenario) -> None:
    names = [fn.name for fn in sc.functions]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise KeyProblem(("functions", i), "name used twice")
    limit = sc.lambda_.concurrency_limit
    _check_unreserved(sc, limit)
    total = 0
    for i, fn in enumerate(sc.functions):
        total += fn.provisioned_concurrency or 0
        if total > limit:
            raise KeyProblem(("functions", i, "provisioned_concurrency"),
                             f"the functions take {total} in all, more than [lambda] "
                             f"concurrency_limit ({limit})")


#: Concurrency Lambda keeps for the functions without a reservation (AWS, "Configuring
#: reserved concurrency for a function", "Configuring reserved concurrency": "You can
#: reserve up to the Unreserved account concurrency value minus 100. The remaining 100
#: units of concurrency are for functions that aren't using reserved concurrency.")
MIN_UNRESERVED = 100


def _check_unreserved(sc: Scenario, limit: int) -> None:
    """Reservations may not leave less than 100 of the account unreserved.

    An account whose whole limit is under 100 (new accounts) can reserve nothing:
    AWS's refusal then names the whole limit as the minimum (observed, in its
    ``InvalidParameterValueException``: "decreases account's
    UnreservedConcurrentExecution below its minimum value of [N]").
    """
    minimum = min(MIN_UNRESERVED, limit)
    total = 0
    taken: list[str] = []
    for i, fn in enumerate(sc.functions):
        if not fn.reserved_concurrency:
            continue
        total += fn.reserved_concurrency
        taken.append(f"{fn.name} {fn.reserved_concurrency}")
        if total > limit - minimum:
            raise KeyProblem(
                ("functions", i, "reserved_concurrency"),
                f"reservations of {total} ({', '.join(taken)}) leave {limit - total} of "
                f"[lambda] concurrency_limit {limit} unreserved; Lambda keeps at least "
                f"{minimum} for functions without reserved concurrency (reserve at most "
                f"{limit - minimum} in all)")


def _check_routes(sc: Scenario) -> None:
    names = {fn.name for fn in sc.functions}
    seen: set[tuple[str, str]] = set()
    for i, route in enumerate(sc.routes):
        if route.function not in names:
            raise KeyProblem(("routes", i),
                             f"function {route.function!r} is not defined in [[functions]]")
        key = (route.method, route.path)
        if key in seen:
            raise KeyProblem(("routes", i), "defined twice")
        seen.add(key)
    if sc.routes and not sc.load.locustfile and not any(r.load_weight for r in sc.routes):
        raise KeyProblem(("routes", 0, "weight"),
                         "every route has weight 0: nothing would send load (give one a "
                         "weight, or [load] locustfile)")


def _check_timeline(sc: Scenario) -> None:
    names = {fn.name for fn in sc.functions}
    for i, action in enumerate(sc.timeline):
        if action.targets_function and action.target not in names:
            raise KeyProblem(("timeline", i, "target"),
                             f"{action.target!r} is not defined in [[functions]]")
        if action.action == "restart_pgbouncer" and not sc.pgbouncer.enabled:
            raise KeyProblem(("timeline", i, "action"),
                             "restart_pgbouncer, but [pgbouncer] is not enabled")
        uses_proxy = sc.rds_proxy.enabled or any(fn.database == "rds_proxy"
                                                 for fn in sc.functions)
        if action.action == "restart_rds_proxy" and not uses_proxy:
            raise KeyProblem(("timeline", i, "action"),
                             "restart_rds_proxy, but [rds_proxy] is not enabled")
