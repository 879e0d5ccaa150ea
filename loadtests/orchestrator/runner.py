"""``connstorm run`` / ``connstorm ui``: stack, Locust, live view, summary and thresholds.

The order of a run:

1. the run folder (``--out``, default ``runs/<UTC time>-<scenario>``);
2. the local stack (``connstorm.local_stack.stack.Stack``), unless ``--target-url`` points
   at a live deployment, in which case ``stack.json`` holds only the URL and the
   DSNs given on the command line;
3. Locust as a subprocess (:class:`~connstorm.loadtests.orchestrator.locust_process.LocustProcess`),
   whose plugin starts the collectors on the master (with ``--metrics-port``, the
   ``/metrics`` endpoint, bound before the stack starts, follows their samples);
4. while it runs, the live terminal view (headless) or the web UI's URL (ui);
5. ``summary.json``, ``junit.xml``, ``summary.md``, then the verdict: a broken
   threshold, or a regression against ``--baseline`` (:mod:`.baseline`, checked
   before step 1), raises :class:`~connstorm.errors.ThresholdsFailedError` (exit 6).

Whatever ends the run (the end of the test, Ctrl-C, SIGTERM, an error), Locust
and the stack are stopped, and the summary is still written from what the run
folder holds.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connstorm.console import output_console
from connstorm.errors import (
    ConnstormError,
    EnvironmentProblemError,
    ExitCode,
    ScenarioError,
    ThresholdsFailedError,
)
from connstorm.loadtests.orchestrator.baseline import compare_summary
from connstorm.loadtests.orchestrator.live_view import LiveView
from connstorm.loadtests.orchestrator.locust_command import answers, locust_args, web_url
from connstorm.loadtests.orchestrator.locust_process import LocustProcess, wait_until
from connstorm.loadtests.orchestrator.locustfiles import check_own, load_source
from connstorm.loadtests.orchestrator.regression import describe as describe_comparison
from connstorm.loadtests.orchestrator.regression import regressions, status_word
from connstorm.loadtests.orchestrator.report_files import write_reports
from connstorm.loadtests.orchestrator.run_options import RunOptions
from connstorm.loadtests.orchestrator.summary import build_summary, db_path, variant_name
from connstorm.loadtests.orchestrator.thresholds import describe, failed
from connstorm.run_folder import (
    COLLECTORS_FILE,
    LOCUST_LOG,
    LOCUST_STATS_CSV,
    LOCUST_WORKER_LOG,
    LOGS_DIR,
    SAMPLES_FILE,
    SCENARIO_FILE,
    STACK_FILE,
    SUMMARY_FILE,
    load_json,
    write_json,
    write_private_json,
)
from connstorm.signals import Terminated

log = logging.getLogger(__name__)

#: Seconds Locust may take beyond the run time before connstorm stops it.
GRACE_S = 90.0
#: Seconds Locust started beside the stack waits for ``stack.json`` (the stack's own
#: start fails sooner, and stops Locust when it does).
STACK_WAIT_S = 600.0


class LocustFailedError(ConnstormError):
    """Locust itself failed (bad options, crash): carries the end of its output."""

    exit_code = ExitCode.STACK


class Run:
    """One run of a scenario; :meth:`execute` does it all and returns ``summary.json``."""

    def __init__(self, opts: RunOptions, console: Console | None = None) -> None:
        self.opts = opts
        self.console = console or output_console()
        self.run_dir = opts.run_dir
        self.web_url: str | None = None
        #: The local stack while it runs (None against a live target).
        self.stack: Any = None
        #: The baseline's copy in the run folder (``baseline``), once made.
        self.baseline_copy: str | None = None
        #: Ctrl-C or SIGTERM stopped a headless run before its end.
        self.cut_short = False

    # -- the stack ---------------------------------------------------------------

    def _live_target_stack(self) -> Path:
        """``stack.json`` of a run against a live URL: the URL and any DSNs given."""
        doc = {"scenario": self.opts.scenario.name, "run_dir": str(self.run_dir.resolve()),
               "pid": os.getpid(), "api_url": self.opts.target_url,
               "postgres_admin_dsn": self.opts.postgres_admin_dsn,
               "pgbouncer_admin_dsn": self.opts.pgbouncer_admin_dsn,
               "postgres_dsn": None, "pgbouncer_dsn": None, "invoke_url": None,
               "stats_url": None, "live_target": True}
        path = self.run_dir / STACK_FILE
        write_private_json(path, doc)
        write_json(self.run_dir / SCENARIO_FILE, dict(self.opts.scenario.raw))
        return path

    def _local_stack(self, stack: ExitStack) -> Path:
        try:
            from connstorm.local_stack.stack import Stack
        except ImportError as exc:
            raise EnvironmentProblemError(
                f"the local stack is not available ({exc}); use --target-url URL "
                "to load a deployed API instead") from None
        self.stack = stack.enter_context(Stack(self.opts.scenario, self.run_dir))
        return self.run_dir / STACK_FILE

    # -- the run -----------------------------------------------------------------

    def variant_names(self) -> list[str]:
        """The names the run's variants will have (a baseline must have them all)."""
        return [variant_name(self.opts.scenario)]

    def execute(self) -> dict[str, Any]:
        """Run it; returns the summary (raises ThresholdsFailedError after writing it)."""
        baseline = None if self.opts.worker else self.opts.baseline
        if baseline is not None:  # before anything starts: one line, exit code 2
            baseline.require_variants(self.variant_names())
        self._check_locustfile()
        self._check_locust_ports()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / LOGS_DIR).mkdir(exist_ok=True)
        if self.opts.worker:
            self._run_worker()
            return {}
        self.baseline_copy = baseline.copy_into(self.run_dir) if baseline else None
        started = False
        try:
            with ExitStack() as stack:
                self._start_metrics(stack)
                if self._locust_first():
                    # Locust's start overlaps the stack's; it is stopped first on the
                    # way out (an exit stack unwinds last in, first out).
                    proc = self._start_locust_for_the_stack(stack)
                    self._local_stack(stack)
                    stack.callback(proc.stop)
                    started = True
                    self._watch_locust(proc, stack)
                else:
                    if self.opts.target_url:
                        stack_file = self._live_target_stack()
                    else:
                        stack_file = self._local_stack(stack)
                    host = load_json(stack_file).get("api_url")
                    if not host:
                        raise ScenarioError(f"{self.opts.scenario.source}: the scenario has "
                                            "no [[functions]] and [[routes]]: nothing to "
                                            "send load to")
                    args = locust_args(self.opts, str(host), stack_file)
                    started = True
                    self._run_locust(args, stack)
                if self.opts.on_load_end is not None:
                    self.opts.on_load_end()
        except BaseException as exc:
            # Interrupted or failed mid-run: Locust and the stack are stopped by
            # now; keep whatever the run folder holds, then let the error through.
            # A headless run cut short says so (the web UI's is ended by Ctrl-C).
            cut_short = self.opts.headless and isinstance(exc, KeyboardInterrupt | Terminated)
            if started:
                try:
                    self.cut_short = cut_short
                    self._finish()
                except Exception:
                    log.exception("could not write the summary of the interrupted run")
            raise
        return self._verdict(self._finish())

    def _locust_first(self) -> bool:
        """Start Locust while the local stack starts (a headless run on one process).

        Locust's start (about 0.5 s of imports) then overlaps the stack's; its plugin
        waits for ``stack.json`` before any user spawns (``--connstorm-stack-wait-s``).
        The web UI, distributed runs and live targets keep the order stack, then Locust.
        """
        opts = self.opts
        processes = opts.processes if opts.processes is not None else \
            opts.scenario.load.processes
        return (opts.headless and not opts.target_url and not opts.master and not processes
                and bool(opts.scenario.functions and opts.scenario.routes))

    def _start_locust_for_the_stack(self, stack: ExitStack) -> LocustProcess:
        """Locust, told to wait for ``stack.json`` and to take its host from there."""
        stack_file = self.run_dir / STACK_FILE
        stack_file.unlink(missing_ok=True)  # the plugin waits for this run's own
        return self._enter_locust([*locust_args(self.opts, None, stack_file),
                                   "--connstorm-stack-wait-s", f"{STACK_WAIT_S:g}"], stack)

    def _check_locustfile(self) -> None:
        """Your own locustfile must load and have users, before a server starts."""
        source = load_source(self.opts.scenario, self.opts.locustfile)
        users = check_own(source, env=self._locust_env())
        if users:
            self.console.print(f"Locust users from {source.own}: {', '.join(users)}",
                               highlight=False)

    def _check_locust_ports(self) -> None:
        """A port the user chose for Locust must be free before a server starts.

        Locust would fail to bind it only after the stack is up, and the run would
        end as "no data" (the web UI) or a Locust traceback (the master).
        """
        from connstorm.local_stack.ports import port_in_use

        opts = self.opts
        wanted = []
        if not opts.headless and opts.web_port:
            wanted.append(("--web-port", "127.0.0.1", opts.web_port,
                           "choose another port, or leave --web-port out for a free one"))
        if opts.master:
            wanted.append(("--master-bind-port", opts.master_bind_host,
                           opts.master_bind_port or 5557, "choose another with --master-bind-port"))
        for option, host, port, hint in wanted:
            if port_in_use(port, host):
                raise EnvironmentProblemError(f"{option} {port}: {host}:{port} is in use ({hint})")

    def _start_metrics(self, stack: ExitStack) -> None:
        """Bind ``/metrics`` first: a port in use stops the run before anything started."""
        if self.opts.metrics_port is None:
            return
        from connstorm.loadtests.orchestrator.metrics_endpoint import MetricsEndpoint

        endpoint = stack.enter_context(MetricsEndpoint(self.run_dir / SAMPLES_FILE,
                                                       self.opts.metrics_port))
        self.console.print(f"metrics: {endpoint.url}", highlight=False, soft_wrap=True)

    def _locust_env(self) -> dict[str, str]:
        """Locust's environment: ours, what the start form shows about the stack, the routes."""
        scenario = self.opts.scenario
        path = db_path(scenario)
        fn = scenario.functions[0] if scenario.functions else None
        env = dict(os.environ)
        env.update({"CONNSTORM_DB_PATH": path,
                    "CONNSTORM_PATTERN": (fn.pattern or fn.handler) if fn else "none",
                    "CONNSTORM_POOL_MODE": (scenario.pgbouncer.pool_mode
                                            if path == "pgbouncer" else "none")})
        env.update(load_source(scenario, self.opts.locustfile).env)
        env.update(self.opts.extra_env)
        return env

    def _run_locust(self, args: list[str], stack: ExitStack) -> None:
        """Start Locust after the stack and run it to its end (a live run wraps this)."""
        self._watch_locust(self._enter_locust(args, stack), stack)

    def _enter_locust(self, args: list[str], stack: ExitStack) -> LocustProcess:
        """Locust with these arguments, stopped when ``stack`` unwinds."""
        return stack.enter_context(LocustProcess(args, self.run_dir / LOCUST_LOG,
                                                 env=self._locust_env()))

    def _watch_locust(self, proc: LocustProcess, stack: ExitStack) -> None:
        """Fire the timeline, show the samples as they come, and wait for Locust's end."""
        self._start_timeline(stack)
        duration = self.opts.scenario.load.run_time_s(self.opts.duration_s)
        self.web_url = web_url(proc.argv)
        if self.web_url is not None:
            if not wait_until(lambda: proc.poll() is not None or answers(self.web_url or ""),
                              30.0):
                raise LocustFailedError(f"Locust's web UI did not answer within 30 s:\n"
                                        f"{proc.tail()}")
            if proc.poll() is None:
                self.console.print(f"Locust web UI: {self.web_url}", highlight=False)
                self.console.print(f"Live chart: {self.web_url}/connstorm/chart  "
                                   "(Ctrl-C stops everything)", highlight=False)
            deadline = None
        else:
            deadline = time.monotonic() + duration + GRACE_S
        title = f"connstorm run {self.opts.scenario.name}"
        with LiveView(self.run_dir / SAMPLES_FILE, title, self.console) as view:
            while proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    hint = (f" (did {self.opts.expect_workers} worker(s) connect?)"
                            if self.opts.master else "")
                    raise LocustFailedError(
                        f"Locust ran {GRACE_S:.0f} s past its run time of {duration:g} s and "
                        f"was stopped{hint}; see {proc.log_path}")
                view.refresh()
                proc.wait(0.5)  # returns as Locust ends: the stack stops at once
            view.refresh()
        code = proc.poll()
        if code not in (0, None) and not (self.run_dir / LOCUST_STATS_CSV).exists():
            raise LocustFailedError(f"Locust exited with code {code}:\n{proc.tail()}")

    def _start_timeline(self, stack: ExitStack) -> None:
        """Fire the scenario's ``[[timeline]]`` during the load (local stack only).

        Entered after Locust, so it is stopped (lasting faults undone) before
        Locust and the stack are.
        """
        timeline = self.opts.scenario.timeline
        if not timeline:
            return
        if self.stack is None:
            self.console.print("timeline skipped: its actions need the local stack, not "
                               "--target-url", highlight=False)
            return
        from connstorm.loadtests.orchestrator.timeline import TimelineRunner
        from connstorm.local_stack.faults import Faults

        stack.enter_context(TimelineRunner(timeline, Faults(self.stack),
                                           self.run_dir / SAMPLES_FILE))

    def _run_worker(self) -> None:
        if self.opts.metrics_port is not None:
            self.console.print("--metrics-port ignored: a worker samples nothing (give it to "
                               "the master)", highlight=False)
        args = locust_args(self.opts, "", None)
        with LocustProcess(args, self.run_dir / LOCUST_WORKER_LOG,
                           env=self._locust_env()) as proc:
            self.console.print(f"Locust worker connecting to {self.opts.master_host}:"
                               f"{self.opts.master_port}", highlight=False)
            while proc.poll() is None:
                time.sleep(0.5)
            if proc.poll() not in (0, None):
                raise LocustFailedError(f"Locust worker exited with code {proc.poll()}:\n"
                                        f"{proc.tail()}")

    def _finish(self) -> dict[str, Any]:
        collectors = load_json(self.run_dir / COLLECTORS_FILE)
        summary = build_summary(self.run_dir, self.opts.scenario,
                                skipped=collectors.get("skipped") or {}, users=self.opts.users,
                                duration_s=self.opts.duration_s)
        summary = self.mark_cut_short(self.compare(summary))
        write_json(self.run_dir / SUMMARY_FILE, summary)
        write_reports(self.run_dir, summary, step_summary=self.opts.step_summary)
        self.print_summary(summary)
        return summary

    def mark_cut_short(self, summary: dict[str, Any]) -> dict[str, Any]:
        """A run Ctrl-C or SIGTERM cut short: each variant ``interrupted`` (as a repro
        marks one it stopped) and ``passed`` false: its verdict is of a part of the load."""
        if self.cut_short:
            for entry in summary.get("variants") or []:
                entry["interrupted"] = True
            summary["passed"] = False
        return summary

    def compare(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The summary compared with ``--baseline``, if one was given."""
        if self.opts.baseline is None:
            return summary
        return compare_summary(summary, self.opts.baseline,
                               self.opts.scenario.thresholds.regression,
                               copied_to=self.baseline_copy)

    def _verdict(self, summary: dict[str, Any]) -> dict[str, Any]:
        broken = failed(summary["thresholds"])
        worse = regressions(summary)
        parts = []
        if broken:
            parts.append(f"{len(broken)} threshold(s) failed: "
                         + "; ".join(describe(v) for v in broken))
        if worse:
            parts.append(f"{len(worse)} regression(s) against the baseline "
                         f"{summary['baseline']['path']}: "
                         + "; ".join(describe_comparison(c) for c in worse))
        if parts:
            raise ThresholdsFailedError("; ".join(parts) + f" (see {self.run_dir / SUMMARY_FILE})")
        return summary

    def print_summary(self, summary: dict[str, Any]) -> None:
        """The end-of-run table and the thresholds, on the console."""
        for variant in summary["variants"]:
            table = Table(title=f"{summary['scenario']}: {variant['name']}")
            table.add_column("figure")
            table.add_column("value", justify="right")
            for key in ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms",
                        "peak_db_connections", "max_connections", "peak_pooler_clients",
                        "peak_pooler_server_connections", "peak_environments", "peak_concurrency",
                        "cold_starts", "throttles"):
                table.add_row(key, "–" if variant.get(key) is None else f"{variant[key]}")
            kinds = variant.get("errors_by_kind") or {}
            table.add_row("errors_by_kind",
                          ", ".join(f"{k}: {v}" for k, v in kinds.items()) or "none")
            self.console.print(table)
            budget = _budget_line(variant)
            if budget:
                self.console.print(f"connection budget: {budget}", highlight=False)
        for line in _timeline_lines(summary):
            self.console.print(f"timeline: {line}", highlight=False)
        for name, reason in (summary.get("collectors_skipped") or {}).items():
            self.console.print(f"collector {name} skipped: {reason}", highlight=False)
        for verdict in summary["thresholds"]:
            self.console.print(("PASS " if verdict["passed"] else "FAIL ") + describe(verdict),
                               highlight=False)
        section = summary.get("baseline") or {}
        for variant in section.get("variants") or []:
            for comparison in variant.get("comparisons") or []:
                self.console.print(f"{status_word(comparison)} baseline "
                                   f"{describe_comparison(comparison)}",
                                   highlight=False, soft_wrap=True, markup=False)
        self.console.print(f"run folder: {self.run_dir}", highlight=False)


def _timeline_lines(summary: dict[str, Any]) -> list[str]:
    """One line per timeline action: what the pattern did after it (none without reports)."""
    try:
        from connstorm.reports.timeline import recovery_text
    except ImportError:  # the reports are optional here, as in report_files
        return []
    return [line for variant in summary["variants"]
            for line in recovery_text(variant).split("; ") if line]


def _budget_line(variant: dict[str, Any]) -> str:
    """The variant's connection budget in words ("" without the reports or a budget)."""
    try:
        from connstorm.reports.budget import budget_text
    except ImportError:  # the reports are optional here, as in report_files
        return ""
    return budget_text(variant.get("connection_budget"))
