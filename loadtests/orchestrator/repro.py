"""``connstorm repro``: the same stepped load on several variants, side by side.

Each variant is a built-in scenario (plus overrides) run by
:class:`connstorm.loadtests.orchestrator.runner.Run` on a fresh local stack, into
``<out>/variants/<name>/``, in a child process of its own; several run at once
(one per core by default, their stacks started one after another: see
:mod:`.repro_jobs`). The load steps up to well above the database's
``max_connections``. Afterwards the top-level ``summary.json`` holds one entry
per variant, and its ``thresholds`` are the *expectations* of the demonstration
(the direct variant is refused connections, the transaction pooler is not, ...),
so ``passed`` says whether the reproduction showed what it is meant to show.

>>> result = run_repro(Path("runs/repro"), quick=True)  # doctest: +SKIP
>>> [v["name"] for v in result["variants"]]  # doctest: +SKIP
['direct-module_level', 'pgbouncer-transaction', 'pgbouncer-session', 'direct-leaky']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connstorm import __version__, error_kinds
from connstorm.errors import ConnstormError, ExitCode
from connstorm.loadtests.orchestrator.baseline import Baseline
from connstorm.loadtests.orchestrator.regression import baseline_section, compare_variant
from connstorm.loadtests.orchestrator.report_files import append_step_summary
from connstorm.loadtests.orchestrator.summary import SCHEMA_VERSION
from connstorm.run_folder import (
    BASELINE_DIR,
    MARKDOWN_FILE,
    SAMPLES_FILE,
    SCENARIO_FILE,
    SUMMARY_FILE,
    VARIANTS_DIR,
    load_json,
    variant_dir,
    write_json,
)
from connstorm.samples import read_samples
from connstorm.scenario import Scenario, load_scenario

log = logging.getLogger(__name__)

REPRO_NAME = "repro"


class ReproOutError(ConnstormError):
    """``--out`` already holds a run: its samples would be mixed with the new ones."""

    exit_code = ExitCode.USAGE


#: What ``connstorm repro --set`` may change: how ``--baseline`` judges a variant,
#: never what a variant runs (its stack and load are what it demonstrates).
SETTABLE = "thresholds.regression."


def check_overrides(items: Sequence[str]) -> tuple[str, ...]:
    """``--set`` items of ``repro``; anything outside ``SETTABLE`` is one line, exit 2."""
    for item in items:
        if not item.strip().startswith(SETTABLE):
            raise ReproOutError(f"--set {item}: connstorm repro sets only {SETTABLE}KEY=VALUE "
                                f"(what counts as a regression against --baseline); its "
                                f"variants' stacks and load are fixed")
    return tuple(items)


@dataclass(frozen=True)
class LoadPlan:
    """The stepped load every variant gets: steps of ``step_users`` up to ``users``."""

    users: int
    step_users: int
    step_duration_s: float
    duration_s: float
    #: PgBouncer's query_wait_timeout for the session variant: waiting clients
    #: must give up within the run for the failure to show.
    query_wait_timeout_s: int
    #: What one variant costs (stack start, load, stop, summary): the command
    #: announces this times the rounds of ``--jobs`` variants up front. Measured on
    #: a quiet 2-core machine (BENCHMARKS.md, "connstorm repro"): the six variants
    #: in three rounds 43-45 s, ``--quick``'s three in two rounds 14-17 s.
    variant_budget_s: int
    #: Milliseconds each answered request spends outside the database
    #: (``APP_WORK_MS``): with it, the environments a step needs follow from the
    #: users and their pauses, not from how fast this machine answers a query.
    work_ms: int = 0

    def overrides(self) -> list[str]:
        """``--set`` overrides putting the plan into a scenario."""
        work = [f"functions.api.env.APP_WORK_MS={self.work_ms}"] if self.work_ms else []
        return [f"load.users={self.users}", 'load.shape="steps"',
                f"load.step_users={self.step_users}",
                f"load.step_duration_s={self.step_duration_s}",
                f"load.duration_s={self.duration_s}", f"load.spawn_rate={self.users}",
                "load.sample_interval_s=0.5", *work]


FULL = LoadPlan(users=60, step_users=15, step_duration_s=2.5, duration_s=10.0,
                query_wait_timeout_s=3, variant_budget_s=15, work_ms=100)
QUICK = LoadPlan(users=45, step_users=15, step_duration_s=1.0, duration_s=4.0,
                 query_wait_timeout_s=1, variant_budget_s=8, work_ms=100)
#: ``--preset failover``: a steady load far below the limit, so every failure is the faults'.
FAILOVER_FULL = LoadPlan(users=8, step_users=8, step_duration_s=20.0, duration_s=20.0,
                         query_wait_timeout_s=3, variant_budget_s=33)
FAILOVER_QUICK = LoadPlan(users=6, step_users=6, step_duration_s=13.0, duration_s=13.0,
                          query_wait_timeout_s=3, variant_budget_s=23)


#: ``--preset deploy``: six users, all the time, well inside the 17 slots; only what the
#: deploys leave behind can fill them (two deploys: three versions' connections).
DEPLOY_FULL = LoadPlan(users=6, step_users=6, step_duration_s=10.0, duration_s=10.0,
                       query_wait_timeout_s=3, variant_budget_s=20)
DEPLOY_QUICK = DEPLOY_FULL


def plan_for(preset: str, *, quick: bool) -> LoadPlan:
    """The load a preset's variants get."""
    if preset == "failover":
        return FAILOVER_QUICK if quick else FAILOVER_FULL
    if preset == "deploy":
        return DEPLOY_QUICK if quick else DEPLOY_FULL
    return QUICK if quick else FULL


@dataclass(frozen=True)
class Variant:
    """One line of the comparison: a built-in scenario, changed by overrides."""

    name: str
    scenario: str
    overrides: tuple[str, ...]
    #: What the variant is there to show, in a few words.
    shows: str
    #: Part of ``--quick`` too (each variant costs a stack start and Locust's).
    quick: bool = True
    #: Which comparison it belongs to (``connstorm repro --preset``).
    preset: str = "connections"
    #: Presets whose full (not ``--quick``) comparison also runs it: the RDS Proxy
    #: pair belongs in the main demonstration, where it proves the fix users deploy.
    also_in: tuple[str, ...] = ()
    #: The variant is there to fail: its own thresholds failing is the point
    #: (reports mark that as intended; only the expectations decide the verdict).
    meant_to_fail: bool = False


#: The failover drill's timeline and room: far below max_connections, failures are counted.
_FAILOVER = ("postgres.max_connections=60", "thresholds.max_fail_ratio=1.0",
             'timeline=[{at_s=4, action="terminate_backends"}, '
             '{at_s=8, action="restart_postgres", mode="fast"}]')

#: Both RDS Proxy variants: through the stand-in, a pool of 10 (50 % of max_connections
#: 20, as RDS computes it), waits for a connection cut at 1 s so the exhaustion shows.
_RDS_PROXY = ('functions.api.database="rds_proxy"', "rds_proxy.max_connections_percent=50",
              "rds_proxy.connection_borrow_timeout_s=1")

#: Both deploy variants: two deploys, the old versions reaped a second after their last
#: request (idle_lifetime_s = 1; on AWS about ten minutes, observed, not documented):
#: only the wait before the tail starts is shortened, not the tail (the server's keepalive);
#: users never pause, so no environment idles out before a deploy retires it.
_DEPLOY = ("functions.api.idle_lifetime_s=1", "load.think_time_max_ms=0",
           'timeline=[{at_s=2, action="deploy", target="api"}, '
           '{at_s=5, action="deploy", target="api"}]')

VARIANTS: tuple[Variant, ...] = (
    Variant("direct-module_level", "direct-small", (),
            "the failure: one connection per environment, straight to PostgreSQL",
            meant_to_fail=True),
    Variant("pgbouncer-transaction", "pgbouncer-transaction", (),
            "the fix on your own servers: PgBouncer in transaction mode"),
    Variant("pgbouncer-session", "pgbouncer-session", (),
            "session pooling: frozen environments stay pinned to server connections",
            meant_to_fail=True),
    Variant("direct-leaky", "direct-small", ('functions.api.pattern="leaky"',),
            "what bad code adds: a connection leaked per invocation", quick=False,
            meant_to_fail=True),
    # The article's "Mistake 3": Lambda in too few subnets, one address per environment
    # (the per_environment model): the same load, through the pooler, so that only
    # the subnets can fail it.
    Variant("vpc-one-subnet", "pgbouncer-transaction", (
        'functions.api.vpc={subnets=1, free_ips_per_subnet=20, eni_model="per_environment", '
        'eni_attach_ms=1000}',),
            "too few subnets: new environments find no free address", preset="vpc",
            meant_to_fail=True),
    Variant("vpc-three-subnets", "pgbouncer-transaction", (
        'functions.api.vpc={subnets=3, free_ips_per_subnet=20, eni_model="per_environment", '
        'eni_attach_ms=1000}',),
            "three subnets: an address for every environment", preset="vpc"),
    # An incident rehearsed on three handler patterns: every backend terminated
    # (an idle timeout, a failover that keeps the server) then a PostgreSQL restart.
    Variant("failover-module_level", "direct-small",
            ('functions.api.pattern="module_level"', *_FAILOVER),
            "no recovery: connection_lost until the environment is recycled", preset="failover",
            meant_to_fail=True),
    Variant("failover-module_level_resilient", "direct-small",
            ('functions.api.pattern="module_level_resilient"', *_FAILOVER),
            "reopens a dead connection once: back within seconds", preset="failover"),
    Variant("failover-per_invocation", "direct-small",
            ('functions.api.pattern="per_invocation"', *_FAILOVER),
            "a connection per request: back as soon as the database is", preset="failover"),
    # RDS Proxy's pinning: the same proxy settings and load, a resilient handler
    # against one that sets session state as ORMs do.
    Variant("rds_proxy-resilient", "direct-small",
            ('functions.api.pattern="module_level_resilient"', *_RDS_PROXY),
            "through the RDS Proxy stand-in: multiplexed over a few database connections",
            preset="rds_proxy", also_in=("connections",)),
    Variant("rds_proxy-session_state", "direct-small",
            ('functions.api.pattern="session_state"', *_RDS_PROXY),
            "SET search_path and TIME ZONE per connection: every environment pinned, "
            "the pool exhausted, borrow timeouts", preset="rds_proxy", meant_to_fail=True,
            also_in=("connections",)),
    # The tail after a deploy: reaped environments vanish without closing their
    # connections (docs/lambda-vanished.md); the same deploys with the connections
    # closed at once (what a graceful-shutdown extension buys) refuse nobody.
    Variant("deploy-vanished", "direct-small", _DEPLOY,
            "two deploys: the old versions' connections stay open at the server (360 s, "
            "RDS's keepalive) and the third version is refused", preset="deploy",
            meant_to_fail=True),
    Variant("deploy-closed", "direct-small", (*_DEPLOY, "lambda.vanished_linger_s=0"),
            "the same deploys, the old connections closed with their environments "
            "(vanished_linger_s = 0, as a graceful-shutdown extension would): no refusals",
            preset="deploy"),
)
#: ``connstorm repro --preset``: the database comparison, the VPC one, the failover drill,
#: RDS Proxy's pinning, or the tail after a deploy.
PRESETS = ("connections", "vpc", "failover", "rds_proxy", "deploy")


@dataclass(frozen=True)
class Expectation:
    """What a variant must show for the reproduction to have worked."""

    variant: str
    name: str
    bound: str  # "at least" or "at most"
    limit: Callable[[Scenario], float]
    actual: Callable[[Mapping[str, Any]], float]

    def check(self, scenario: Scenario, entry: Mapping[str, Any]) -> dict[str, Any]:
        """The expectation as a threshold entry of summary.json."""
        limit, actual = self.limit(scenario), self.actual(entry)
        ok = actual >= limit if self.bound == "at least" else actual <= limit
        return {"name": f"{self.variant}: {self.name}", "limit": limit, "actual": actual,
                "passed": ok, "bound": self.bound, "variant": self.variant}


def _errors(entry: Mapping[str, Any], kind: str) -> float:
    """Errors of ``kind`` as the clients or, if more, as the functions saw them.

    A function refused at init reaches the client as a bare HTTP 502, classified
    ``http_error``; the emulator classified PostgreSQL's own message.
    """
    counts = [0.0]
    for key in ("errors_by_kind", "function_errors_by_kind"):
        errors = entry.get(key) or {}
        if isinstance(errors, Mapping):
            counts.append(float(errors.get(kind, 0)))
    return max(counts)


def _proxy_pool(scenario: Scenario) -> float:
    """The stand-in's pool bound: max_connections_percent of max_connections."""
    from connstorm.local_stack.rds_proxy.pool import pool_limit

    return pool_limit(scenario.postgres.max_connections,
                      scenario.rds_proxy.max_connections_percent)


def _num(entry: Mapping[str, Any], key: str) -> float:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("direct-module_level", "too_many_connections errors", "at least",
                lambda s: 1, lambda e: _errors(e, error_kinds.TOO_MANY_CONNECTIONS)),
    # Ordinary roles are refused once connections of all roles (the collector's
    # included) reach max_connections - superuser_reserved_connections.
    Expectation("direct-module_level", "peak DB connections (all roles)", "at least",
                lambda s: s.postgres.app_slots, lambda e: _num(e, "peak_db_connections")),
    Expectation("pgbouncer-transaction", "too_many_connections errors", "at most",
                lambda s: 0, lambda e: _errors(e, error_kinds.TOO_MANY_CONNECTIONS)),
    Expectation("pgbouncer-transaction", "peak server connections", "at most",
                lambda s: s.pgbouncer.default_pool_size + s.pgbouncer.reserve_pool_size,
                lambda e: _num(e, "peak_pooler_server_connections")),
    Expectation("pgbouncer-session", "clients waiting + query_wait_timeout errors",
                "at least", lambda s: 1,
                lambda e: _num(e, "peak_pooler_waiting")
                + _errors(e, error_kinds.POOL_QUERY_WAIT_TIMEOUT)),
    Expectation("direct-leaky", "too_many_connections errors", "at least",
                lambda s: 1, lambda e: _errors(e, error_kinds.TOO_MANY_CONNECTIONS)),
    Expectation("vpc-one-subnet", "lambda_vpc_limit errors", "at least",
                lambda s: 1, lambda e: _errors(e, error_kinds.LAMBDA_VPC_LIMIT)),
    Expectation("vpc-three-subnets", "failures", "at most",
                lambda s: 0, lambda e: _num(e, "failures")),
    Expectation("rds_proxy-resilient", "failures", "at most",
                lambda s: 0, lambda e: _num(e, "failures")),
    Expectation("rds_proxy-resilient", "peak pinned connections", "at most",
                lambda s: 0, lambda e: _num(e, "peak_pinned_connections")),
    Expectation("rds_proxy-resilient", "peak proxy database connections", "at most",
                _proxy_pool, lambda e: _num(e, "peak_proxy_database_connections")),
    Expectation("rds_proxy-session_state", "peak pinned connections", "at least",
                _proxy_pool, lambda e: _num(e, "peak_pinned_connections")),
    Expectation("rds_proxy-session_state", "proxy_borrow_timeout errors", "at least",
                lambda s: 1, lambda e: _errors(e, error_kinds.PROXY_BORROW_TIMEOUT)),
    Expectation("deploy-vanished", "too_many_connections errors", "at least",
                lambda s: 1, lambda e: _errors(e, error_kinds.TOO_MANY_CONNECTIONS)),
    Expectation("deploy-vanished", "refusals while vanished connections were held",
                "at least", lambda s: 1, lambda e: _lifecycle(e, "refused_while_vanished")),
    Expectation("deploy-closed", "too_many_connections errors", "at most",
                lambda s: 0, lambda e: _errors(e, error_kinds.TOO_MANY_CONNECTIONS)),
    Expectation("deploy-closed", "peak vanished connections", "at most",
                lambda s: 0, lambda e: _num(e, "peak_vanished_connections")),
    Expectation("failover-module_level", "timeline actions not recovered from", "at least",
                lambda s: 1, lambda e: _not_recovered(e)),
    Expectation("failover-module_level_resilient", "timeline actions not recovered from",
                "at most", lambda s: 0, lambda e: _not_recovered(e)),
    Expectation("failover-per_invocation", "timeline actions not recovered from", "at most",
                lambda s: 0, lambda e: _not_recovered(e)),
)


def _lifecycle(entry: Mapping[str, Any], key: str) -> float:
    """A figure of the variant's ``lambda_lifecycle`` (0 when absent)."""
    life = entry.get("lambda_lifecycle")
    return _num(life, key) if isinstance(life, Mapping) else 0.0


def _not_recovered(entry: Mapping[str, Any]) -> float:
    """Timeline actions of a variant whose error rate never came back (``recovery_s`` null)."""
    timeline = entry.get("timeline")
    if not isinstance(timeline, list) or not timeline:
        return float("nan")  # no figures: neither bound holds, the check fails
    return float(sum(1 for e in timeline
                     if isinstance(e, Mapping) and e.get("recovery_s") is None))


def check_out(out: Path) -> None:
    """Refuse a run folder that already holds a run (raises :class:`ReproOutError`)."""
    if (out / VARIANTS_DIR).exists() or (out / SUMMARY_FILE).exists():
        raise ReproOutError(f"{out}: already holds a run; give another --out (samples are "
                            f"appended, so two runs in one folder would mix)")


def variants_for(*, quick: bool, preset: str = "connections") -> tuple[Variant, ...]:
    """The variants a run of ``preset`` includes: all of them, or the ``--quick`` ones.

    A variant another preset borrows (``also_in``) runs there only in full runs, so
    that ``--quick`` stays a few variants.
    """
    return tuple(v for v in VARIANTS
                 if (v.preset == preset and (v.quick or not quick))
                 or (preset in v.also_in and not quick))


def variant_scenario(variant: Variant, plan: LoadPlan, extra: Sequence[str] = ()) -> Scenario:
    """The variant's scenario with the plan's load (and timeouts) applied, then ``extra``
    (``repro --set``, see :func:`check_overrides`)."""
    overrides = [*variant.overrides, *plan.overrides()]
    if variant.name == "pgbouncer-session":
        overrides.append(f"pgbouncer.query_wait_timeout={plan.query_wait_timeout_s}")
    return load_scenario(variant.scenario, overrides=[*overrides, *extra])


def function_errors(run_dir: Path) -> dict[str, int]:
    """The emulator's cumulative error kinds at the end of a run (its last good sample)."""
    last: dict[str, int] = {}
    for row in read_samples(run_dir / SAMPLES_FILE):
        if row.get("collector") == "emulator" and row.get("ok") \
                and isinstance(row.get("errors_by_kind"), dict):
            last = {str(k): int(v) for k, v in row["errors_by_kind"].items() if v}
    return last


def _entry(variant: Variant, summary: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    entries = summary.get("variants") or [{}]
    entry = dict(entries[0])
    entry.setdefault("function_errors_by_kind", function_errors(run_dir))
    entry.update(name=variant.name, shows=variant.shows, expected_to_fail=variant.meant_to_fail,
                 thresholds=list(summary.get("thresholds") or []),
                 passed=summary.get("passed"))
    return entry


def build_summary(results: Sequence[tuple[Variant, Scenario, dict[str, Any]]], *,
                  quick: bool, elapsed_s: float, complete: bool,
                  name: str = REPRO_NAME, baseline: Baseline | None = None) -> dict[str, Any]:
    """The comparison's summary.json: variants, the expectations as its thresholds, and
    with a ``baseline`` each variant compared with the baseline's of the same name."""
    entries = [entry for _, _, entry in results]
    by_name = {variant.name: (scenario, entry) for variant, scenario, entry in results}
    checks = [exp.check(*by_name[exp.variant]) for exp in EXPECTATIONS if exp.variant in by_name]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "scenario": name,
        "passed": complete and all(c["passed"] for c in checks),
        "thresholds": checks, "variants": entries,
        "repro": {"quick": quick, "elapsed_s": round(elapsed_s, 1), "complete": complete},
        "versions": {"connstorm": __version__}}
    if baseline is not None:
        compared = [(variant.name, compare_variant(entry, baseline.variant(variant.name),
                                                   scenario.thresholds.regression))
                    for variant, scenario, entry in results]
        section = baseline_section(baseline.given, baseline.summary, compared,
                                   copied_to=BASELINE_DIR)
        doc["baseline"] = section
        doc["passed"] = doc["passed"] and section["passed"]
    return doc


def repro_name(preset: str) -> str:
    """The ``scenario`` a repro of ``preset`` writes in its summary (a baseline's must match)."""
    return REPRO_NAME if preset == "connections" else f"{REPRO_NAME}-{preset}"


ProgressHook = Callable[[int, Variant, str], None]


def run_repro(out: Path, *, quick: bool = False,
              progress: ProgressHook | None = None,
              preset: str = "connections", locustfile: Path | None = None,
              baseline: Baseline | None = None, jobs: int | None = None,
              overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run every variant into ``out/variants/<name>``; write and return the summary.

    ``progress(index, variant, phase)`` is called with phase "start" and "done".
    ``jobs`` variants run at once, each in a child process, their stacks started
    one after another (:mod:`.repro_jobs`; default: one per core, 1: one after
    another). Whatever stops the run (Ctrl-C, SIGTERM, an error), the variants
    finished so far, and what the stopped ones measured, are summarised and
    rendered before the exception goes on. ``locustfile`` (``--locustfile``) puts
    your own users on every variant; it is checked once, before the first stack
    starts. With a ``baseline`` (an earlier repro of the same preset, checked
    before anything runs), each variant folder gets the baseline's variant as its
    ``baseline/``, compared by ``[thresholds.regression]`` with ``overrides`` (``--set``).
    """
    from connstorm.loadtests.orchestrator.locustfiles import check_own, load_source
    from connstorm.loadtests.orchestrator.repro_jobs import (
        Job,
        default_jobs,
        run_jobs,
        variant_argv,
    )

    plan = plan_for(preset, quick=quick)
    chosen = variants_for(quick=quick, preset=preset)
    name = repro_name(preset)
    if baseline is not None:
        baseline.require_variants([variant.name for variant in chosen])
    check_out(out)
    scenarios = [(variant, variant_scenario(variant, plan, check_overrides(overrides)))
                 for variant in chosen]
    if locustfile is not None:
        locustfile = locustfile.resolve()
        check_own(load_source(scenarios[0][1], locustfile))
    out.mkdir(parents=True, exist_ok=True)
    if baseline is not None:
        baseline.copy_into(out)
    started = time.monotonic()
    write_json(out / SCENARIO_FILE, {
        "name": name, "description": "the same stepped load on each variant, "
        "on fresh local stacks of their own",
        "variants": {v.name: dict(s.raw) for v, s in scenarios}})
    job_list = [Job(index, variant.name,
                    variant_argv(variant.name, variant_dir(out, variant.name), quick=quick,
                                 preset=preset, locustfile=locustfile),
                    variant_dir(out, variant.name))
                for index, (variant, _) in enumerate(scenarios)]
    finished: set[int] = set()

    def on_start(index: int, _: str) -> None:
        variant = scenarios[index][0]
        if baseline is not None:
            baseline.copy_into(variant_dir(out, variant.name), variant=variant.name)
        if progress:
            progress(index, variant, "start")
        if index == min(1, len(scenarios) - 1):
            # While the first variants load, nothing here waits: import the renderer
            # (plotly, about 0.2 s) now rather than after the last variant.
            import connstorm.reports.render  # noqa: F401

    def on_done(index: int, _: str) -> None:
        finished.add(index)
        if progress:
            progress(index, scenarios[index][0], "done")

    complete = False
    try:
        run_jobs(job_list, jobs or default_jobs(), on_start, on_done)
        complete = True
    finally:
        results: list[tuple[Variant, Scenario, dict[str, Any]]] = []
        for index, (variant, scenario) in enumerate(scenarios):
            run_dir = variant_dir(out, variant.name)
            summary = load_json(run_dir / SUMMARY_FILE)
            if not summary:
                continue  # never started, or stopped before its load began
            entry = _entry(variant, summary, run_dir)
            if index not in finished:
                entry["interrupted"] = True
            results.append((variant, scenario, entry))
        if results:
            doc = build_summary(results, quick=quick, elapsed_s=time.monotonic() - started,
                                complete=complete, name=name, baseline=baseline)
            write_json(out / SUMMARY_FILE, doc)
            try:
                from connstorm.reports.render import render_all

                render_all(out)
                append_step_summary(out / MARKDOWN_FILE)
            except Exception:
                log.exception("could not render the reports of %s", out)
    return load_json(out / SUMMARY_FILE)
