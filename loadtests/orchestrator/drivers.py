"""``connstorm drivers``: every driver configuration through every path, one verdict each.

The survey (issue: "which driver and ORM settings pin behind RDS Proxy, break
PgBouncer, or exhaust PostgreSQL"): each configuration of
:mod:`connstorm.handlers.drivers` (or the user's own handler) runs as a Lambda
function per path (direct; PgBouncer in transaction mode, once per PgBouncer
version found; the RDS Proxy stand-in) under the same short load
(:mod:`.driver_load`) on one stack (:mod:`.driver_stack`). Each cell's verdict
is read off what its requests met and what its proxy logged:

``fails``
    a request failed for a reason other than running out of connections (a
    prepared statement missing on the server connection, a refused connect, an
    import error): the configuration does not work on that path;
``exhausts``
    requests were refused for want of a connection (``too many clients``, a
    pooler's ``query_wait_timeout``, RDS Proxy's borrow timeout);
``pins``
    every request succeeded, but the RDS Proxy stand-in pinned sessions: each
    environment holds a database connection for its life (AWS, "Avoiding
    pinning an RDS Proxy"), so at scale the proxy stops multiplexing;
``works``
    none of these.

The run folder: ``summary.json`` (key ``drivers``, one entry per cell),
``summary.md``, ``report.html``, ``junit.xml``, the servers' logs.
``--expect FILE`` holds verdicts to (exit 6 when one differs); without it the
command exits 0 whatever the verdicts: it is a survey, not a test.
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from connstorm import __version__, error_kinds
from connstorm.errors import ConnstormError, ExitCode, ThresholdsFailedError
from connstorm.handlers.drivers import CONFIGS, DriverConfig
from connstorm.loadtests.orchestrator.driver_load import CellLoad, LoadPlan, run_load
from connstorm.loadtests.orchestrator.driver_stack import (
    Cell,
    DriverStack,
    PeakConnections,
    StackPlan,
    Subject,
    pgbouncer_path,
)
from connstorm.loadtests.orchestrator.driver_statements import Stranded, error_entry, stranded
from connstorm.local_stack.pgbouncer_binaries import (
    PgBouncerBinary,
    ensure_prepared_statement_support,
)
from connstorm.run_folder import SUMMARY_FILE, write_json

log = logging.getLogger(__name__)

VERDICTS = ("works", "pins", "fails", "exhausts")
#: Error kinds that mean "no connection to be had": the verdict is exhausts.
EXHAUSTION = frozenset({error_kinds.TOO_MANY_CONNECTIONS, error_kinds.POOL_QUERY_WAIT_TIMEOUT,
                        error_kinds.PROXY_BORROW_TIMEOUT, error_kinds.POOL_MAX_CLIENT_CONN})
#: Error kinds that say nothing about the driver (see :func:`verdict`).
NOT_THE_DRIVERS = frozenset({error_kinds.LAMBDA_THROTTLED})
#: Error kind of a named statement left on a pooled server connection (see cell_entry).
STRANDED = error_kinds.PREPARED_STATEMENT_STRANDED
INSTALL_DRIVERS = "pip install 'connstorm[drivers]'"
#: The stand-in's pool is the function's reserved concurrency (6): a configuration
#: that pins holds a connection per environment, and when the machine is slow a user's
#: next request finds its environment still busy and Lambda starts a fifth or sixth;
#: with a smaller pool that one waits for a connection no pinned session gives back,
#: and whether the cell reads ``pins`` or ``exhausts`` would depend on the machine's
#: speed. The waits for a connection (PgBouncer's query_wait_timeout, the stand-in's
#: borrow timeout, 5 s each) end well inside the function's timeout (10 s), so a
#: request refused for want of a connection says so (``exhausts``) and is not cut off
#: by a Lambda timeout first (``fails``).
DEFAULT_STACK = StackPlan(users=4, pgbouncer_pool=2, proxy_pool=6, borrow_timeout_s=5.0,
                          query_wait_timeout_s=5, function_timeout_s=10.0)
DEFAULT_LOAD = LoadPlan(users=4, requests=20)


class DriversUsageError(ConnstormError):
    """``--only`` names nothing, ``--expect`` is unreadable or names no cell."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class DriversOptions:
    """What ``connstorm drivers`` was asked for."""

    out: Path
    only: tuple[str, ...] = ()
    handler: str | None = None
    code_dir: Path = field(default_factory=Path.cwd)
    expect: Path | None = None
    stack: StackPlan = DEFAULT_STACK
    load: LoadPlan = DEFAULT_LOAD
    #: PgBouncers to run (default: every one found, a 1.21+ built first on Debian).
    pgbouncers: tuple[PgBouncerBinary, ...] | None = None


def verdict(errors: Mapping[str, Any], pin_reasons: Sequence[Any]) -> str:
    """The cell's verdict from its errors (kind -> count) and the pins logged for it.

    A throttle is the load's own ceiling (the function's reserved concurrency), not
    the driver's doing: it is reported with the errors but decides nothing.
    """
    kinds = {k for k, v in errors.items() if _count(v)} - NOT_THE_DRIVERS
    if kinds - EXHAUSTION:
        return "fails"
    if kinds:
        return "exhausts"
    return "pins" if pin_reasons else "works"


def _count(value: Any) -> int:
    if isinstance(value, Mapping):
        value = value.get("count", 0)
    return int(value) if isinstance(value, int | float) else 0


def driver_installed(config: DriverConfig) -> bool:
    """Whether every module the configuration preloads can be imported here."""
    return all(importlib.util.find_spec(m.split(".")[0]) is not None for m in config.preload)


def subjects_for(opts: DriversOptions, say: Callable[[str], None]) -> list[Subject]:
    """The rows of the matrix: the user's handler, or the chosen built-in configurations."""
    from connstorm.local_stack.lambda_.task_root import builtin_task_root

    if opts.handler:
        return [Subject(name="handler", driver="your handler", config=opts.handler,
                        handler=opts.handler, code_dir=str(opts.code_dir.resolve()))]
    chosen = [c for c in CONFIGS if not opts.only or c.name in opts.only
              or any(o.lower() in c.driver.lower() for o in opts.only)]
    if not chosen:
        raise DriversUsageError(f"--only {','.join(opts.only)}: no such configuration; choose "
                                f"from {', '.join(c.name for c in CONFIGS)} (or a driver's name)")
    missing = [c for c in chosen if not driver_installed(c)]
    if missing:
        say(f"{', '.join(c.name for c in missing)}: driver not installed, left out; "
            f"install the drivers with: {INSTALL_DRIVERS}")
    root = str(builtin_task_root())
    return [Subject(c.name, c.driver, c.config, c.handler, root, c.preload)
            for c in chosen if c not in missing]


def _pins(reasons: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"reason": reason, "count": _count(info),
             "sample": info.get("sample", "") if isinstance(info, Mapping) else ""}
            for reason, info in sorted(reasons.items())]


def cell_entry(cell: Cell, load: CellLoad | None, peak: int, pins: Mapping[str, Any],
               unavailable: str | None, left: Stranded | None = None) -> dict[str, Any]:
    """One ``summary.json`` ``drivers`` entry.

    ``left``: named statements the cell's driver left on a transaction pooler's
    server connections (:mod:`.driver_statements`): an error of kind
    ``prepared_statement_stranded`` (the cell fails) whether or not a request
    of this run happened to meet one.
    """
    errors = dict(load.errors) if load is not None else {}
    if left is not None and left.count:
        errors[STRANDED] = error_entry(left)
    if unavailable is not None:
        errors = {"path_unavailable": {"count": 1, "first": unavailable}}
    pin_reasons = _pins(pins) if cell.path == "rds_proxy" else []
    return {"driver": cell.subject.driver, "config": cell.subject.config,
            "name": cell.subject.name, "path": cell.path,
            "verdict": verdict(errors, pin_reasons), "pin_reasons": pin_reasons,
            "errors": errors, "peak_db_connections": peak,
            "p95_ms": load.p95_ms() if load is not None else None,
            "requests": load.requests if load is not None else 0,
            "failures": load.failures if load is not None else 0,
            "function": cell.function}


def driver_versions(subjects: Sequence[Subject]) -> dict[str, str]:
    """Installed versions of the distributions the configurations run."""
    names = {d for c in CONFIGS if c.name in {s.name for s in subjects} for d in c.distributions}
    found: dict[str, str] = {}
    for name in sorted(names):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


# ---------------------------------------------------------------- expectations


def load_expectations(path: Path) -> dict[str, dict[str, list[str]]]:
    """``--expect FILE``: a TOML table per configuration, ``path = verdict(s)``."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DriversUsageError(f"--expect {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DriversUsageError(f"--expect {path}: {exc}") from None
    found: dict[str, dict[str, list[str]]] = {}
    for config, paths in doc.items():
        if not isinstance(paths, Mapping):
            raise DriversUsageError(f"--expect {path}: [{config}] must be a table of "
                                    "path = verdict")
        for where, wanted in paths.items():
            allowed = [wanted] if isinstance(wanted, str) else wanted
            if not isinstance(allowed, list) or not allowed or any(
                    w not in VERDICTS for w in allowed):
                raise DriversUsageError(f"--expect {path}: {config}.{where}: expected one of "
                                        f"{', '.join(VERDICTS)} (or a list of them)")
            found.setdefault(config, {})[where] = list(allowed)
    return found


def check_expectations(expected: Mapping[str, Mapping[str, list[str]]],
                       entries: Sequence[Mapping[str, Any]], source: Path) -> list[dict[str, Any]]:
    """Each expectation as a threshold entry: a path key matches by prefix."""
    checks = []
    for config, paths in expected.items():
        for where, allowed in paths.items():
            cells = [e for e in entries if e["name"] == config and str(e["path"]).startswith(where)]
            if not cells:
                raise DriversUsageError(f"--expect {source}: {config}.{where}: no such cell "
                                        "in this run")
            for cell in cells:
                checks.append({"name": f"{config} on {cell['path']}", "limit": " or ".join(allowed),
                               "actual": cell["verdict"], "passed": cell["verdict"] in allowed})
    return checks


# ---------------------------------------------------------------- the run


def run_drivers(opts: DriversOptions, say: Callable[[str], None] = lambda line: None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the matrix into ``opts.out``; write and return ``summary.json``.

    Raises :class:`ThresholdsFailedError` (after writing everything) when
    ``--expect`` expectations fail.
    """
    started = time.monotonic()
    expected = load_expectations(opts.expect) if opts.expect else None
    subjects = subjects_for(opts, say)
    if not subjects:
        raise DriversUsageError(f"no configuration to run; install the drivers with: "
                                f"{INSTALL_DRIVERS}")
    pgbouncers = (list(opts.pgbouncers) if opts.pgbouncers is not None
                  else ensure_prepared_statement_support(say))
    opts.out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    note = progress or (lambda line: None)
    with DriverStack(subjects, pgbouncers, opts.out, opts.stack, say=say) as stack:
        assert stack.postgres is not None
        assert stack.emulator is not None
        ready_s = time.monotonic() - started
        cells = stack.runnable()
        note(f"{len(cells)} cells: {len(subjects)} configurations x {len(stack.paths)} paths, "
             f"{opts.load.users} users x {opts.load.requests} requests each")
        with PeakConnections(stack.postgres.admin_dsn) as peaks:
            loads = run_load(stack.emulator.invoke_url, [c.function for c in cells], opts.load,
                             timeout_s=opts.stack.function_timeout_s + 20)
        load_s = time.monotonic() - started - ready_s
        left = _stranded(stack, pgbouncers)
        for cell in stack.cells:
            entries.append(cell_entry(
                cell, loads.get(cell.function), peaks.peaks.get(cell.database, 0),
                stack.pins(cell.subject.name), stack.unavailable.get(cell.path),
                left.get(cell.database)))
        paths = stack.paths
        versions = {"connstorm": __version__, "python": platform.python_version(),
                    "postgresql": _postgres_version(),
                    "pgbouncer": ", ".join(b.version for b in pgbouncers),
                    **driver_versions(subjects)}
        unavailable = dict(stack.unavailable)
    checks = check_expectations(expected, entries, opts.expect) if expected and opts.expect \
        else []
    summary = {
        "scenario": "drivers", "passed": all(c["passed"] for c in checks),
        "thresholds": checks, "variants": [], "drivers": entries, "paths": paths,
        "unavailable": unavailable, "versions": versions,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "elapsed_s": round(time.monotonic() - started, 1),
        # Where the time went: starting the stack (servers, zygotes), the load, the rest
        # (stopping everything, the summary).
        "phases_s": {"stack": round(ready_s, 1), "load": round(load_s, 1)},
        "load": {"users": opts.load.users, "requests_per_user": opts.load.requests,
                 "pgbouncer_pool": opts.stack.pgbouncer_pool,
                 "proxy_pool": opts.stack.proxy_pool}}
    write_json(opts.out / SUMMARY_FILE, summary)
    try:
        from connstorm.reports.render import render_all

        render_all(opts.out)
    except Exception:
        log.exception("could not render the reports of %s", opts.out)
    broken = [c for c in checks if not c["passed"]]
    if broken:
        raise ThresholdsFailedError(
            f"{len(broken)} expectation(s) failed: " + "; ".join(
                f"{c['name']}: {c['actual']}, expected {c['limit']}" for c in broken)
            + f" (see {opts.out / SUMMARY_FILE})")
    return summary


def _stranded(stack: DriverStack, pgbouncers: Sequence[PgBouncerBinary]) -> dict[str, Stranded]:
    """Statements left on the server connections of PgBouncers that do not track them."""
    untracked = {pgbouncer_path(b.version) for b in pgbouncers
                 if not b.tracks_prepared_statements}
    databases = {c.database for c in stack.cells if c.path in untracked}
    assert stack.postgres is not None
    if not databases or not stack.postgres.log_path.is_file():
        return {}
    with stack.postgres.log_path.open(encoding="utf-8", errors="replace") as log_file:
        return stranded(log_file, databases)


def _postgres_version() -> str:
    from connstorm.local_stack.postgres_binaries import find_binaries

    try:
        return find_binaries().version
    except ConnstormError:
        return ""
