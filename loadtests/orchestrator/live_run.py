"""``connstorm live``'s run: the ``--target-url`` run, plus CloudWatch during and after it.

A :class:`LiveRun` is a :class:`connstorm.loadtests.orchestrator.runner.Run` against the stack's API
URL (Locust, the live view, the run folder, the summary: all the same code),
with three additions:

1. while Locust runs, a :class:`~connstorm.loadtests.orchestrator.cloudwatch.CloudWatchPoller`
   reads the window so far and the view prints each new minute's figures as it
   arrives (one to three minutes late: CloudWatch's ingestion delay);
2. after the load, a bounded wait with a visible countdown for the window's last
   data points (``[live] wait_for_metrics_s``, ``--metrics-wait``);
3. the final reading and the logs' findings go into ``samples.jsonl`` (one row
   per group and minute, ``source: cloudwatch``, ``period_s: 60``) and fill the
   summary (:mod:`connstorm.loadtests.orchestrator.live_summary`), before the reports are written;
   the proxy's own log group, when it has one, fills the pinning audit
   (:mod:`connstorm.loadtests.orchestrator.proxy_logs`).

Interrupted runs skip the wait but still read what CloudWatch has.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from connstorm.loadtests.orchestrator.cloudwatch import (
    CloudWatchPoller,
    CloudWatchReader,
    Reading,
    wait_for_last_points,
    write_rows,
)
from connstorm.loadtests.orchestrator.cloudwatch_logs import (
    COLLECTOR,
    LogFindings,
    findings_rows,
    read_logs,
)
from connstorm.loadtests.orchestrator.live_summary import live_summary, live_variant_name
from connstorm.loadtests.orchestrator.live_target import LiveTarget
from connstorm.loadtests.orchestrator.proxy_logs import ProxyPins, read_proxy_pins
from connstorm.loadtests.orchestrator.report_files import write_reports
from connstorm.loadtests.orchestrator.run_options import RunOptions
from connstorm.loadtests.orchestrator.runner import Run
from connstorm.loadtests.orchestrator.summary import build_summary, db_path, variant_name
from connstorm.run_folder import (
    COLLECTORS_FILE,
    SAMPLES_FILE,
    SUMMARY_FILE,
    load_json,
    write_json,
    write_private_json,
)
from connstorm.samples import SampleWriter, read_samples
from connstorm.scenario import Scenario

#: Credentials in the environment that Locust (and its log) never needs to see.
_AWS_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class LiveSettings:
    """How CloudWatch is read: period, the wait after the load, the poll interval."""

    period_s: int = 60
    wait_s: float = 180.0
    poll_s: float = 30.0


def live_variant_names(scenario: Scenario, target: LiveTarget) -> list[str]:
    """The names a live run of ``scenario`` gives its variants (a baseline needs them)."""
    return [live_variant_name(variant_name(scenario), db_path(scenario), target.connect_mode)]


class LiveRun(Run):
    """One load of a deployed stack, with CloudWatch's figures in the run folder."""

    def __init__(self, opts: RunOptions, target: LiveTarget, aws_session: Any,
                 settings: LiveSettings, console: Any = None) -> None:
        super().__init__(opts, console)
        self.target = target
        self.settings = settings
        self.reader = CloudWatchReader(aws_session.client("cloudwatch"), target.targets(),
                                       settings.period_s)
        self.logs_client = aws_session.client("logs")
        self.start_t = time.time()
        self.end_t: float | None = None
        self._interrupted = False
        self._shown: dict[tuple[str, str], float] = {}

    def variant_names(self) -> list[str]:
        """The variant's name as the deployed stack connects (``rds_proxy-...``)."""
        return live_variant_names(self.opts.scenario, self.target)

    def _live_target_stack(self) -> Any:
        path = super()._live_target_stack()
        doc = load_json(path)
        doc["live"] = self.target.as_json()
        write_private_json(path, doc)
        return path

    def _locust_env(self) -> dict[str, str]:
        """Locust's environment without AWS credentials: it only sends HTTP to the API."""
        env = super()._locust_env()
        for name in _AWS_SECRETS:
            env.pop(name, None)
        return env

    # -- during the load -----------------------------------------------------------

    def _show_new_points(self, reading: Reading) -> None:
        """Print each series' newest minute once it arrives (the live figures)."""
        new = []
        for (group, key), series in sorted(reading.points.items()):
            if not series:
                continue
            t = max(series)
            if self._shown.get((group, key)) != t:
                self._shown[(group, key)] = t
                new.append(f"{group}.{key}={series[t]:g}")
        if new:
            self.console.print(f"CloudWatch (60 s points, ~1-3 min late) "
                               f"{time.strftime('%H:%M', time.gmtime(max(self._shown.values())))}"
                               f" UTC: " + "  ".join(new), highlight=False, soft_wrap=True)

    def _run_locust(self, args: list[str], stack: ExitStack) -> None:
        self.start_t = time.time()
        with CloudWatchPoller(self.reader, self.start_t, self.settings.poll_s,
                              self._show_new_points):
            try:
                super()._run_locust(args, stack)
            except BaseException:
                self._interrupted = True
                raise
            finally:
                self.end_t = time.time()

    # -- after the load ---------------------------------------------------------------

    def _countdown(self, left: float, done: int, total: int) -> None:
        self.console.print(f"waiting for CloudWatch's last data points: {left:.0f} s left, "
                           f"{done}/{total} series complete", highlight=False)

    def _final_reading(self) -> tuple[Reading, LogFindings | None, ProxyPins | None]:
        end_t = self.end_t or time.time()
        wait = 0.0 if self._interrupted else self.settings.wait_s
        reading = wait_for_last_points(self.reader, self.start_t, end_t, wait,
                                       poll_s=min(15.0, self.settings.poll_s),
                                       on_tick=self._countdown)
        findings = None
        if self.target.log_groups:
            findings = read_logs(self.logs_client, self.target.log_groups, self.start_t,
                                 end_t + 5.0)
        pins = None
        if self.target.proxy_log_group:
            pins = read_proxy_pins(self.logs_client, self.target.proxy_log_group,
                                   self.start_t, end_t + 5.0)
            if not pins.found:
                self.console.print(f"RDS Proxy log group {pins.group} not found: no pinning "
                                   f"audit (deploy with ProxyDebugLogging=true to have one)",
                                   highlight=False)
        return reading, findings, pins

    def _samples_origin(self) -> float:
        """The time ``elapsed_s`` counts from in samples.jsonl (the Locust plugin's start)."""
        for row in read_samples(self.run_dir / SAMPLES_FILE)[:1]:
            try:
                return float(row["t"]) - float(row["elapsed_s"])
            except (KeyError, TypeError, ValueError):
                break
        return self.start_t

    def _finish(self) -> dict[str, Any]:
        end_t = self.end_t or time.time()
        pins: ProxyPins | None
        try:
            reading, findings, pins = self._final_reading()
        except Exception as exc:  # CloudWatch failing must not lose the load's results
            self.console.print(f"CloudWatch could not be read: {' '.join(str(exc).split())}"
                               [:300], highlight=False)
            reading, findings, pins = Reading(), None, None
        period = self.settings.period_s
        with SampleWriter(self.run_dir / SAMPLES_FILE, started_at=self._samples_origin()) as writer:
            write_rows(writer, reading, self.reader.groups(), self.start_t, end_t, period)
            if findings is not None:
                for t, values in findings_rows(findings, self.start_t, end_t, period):
                    writer.write(COLLECTOR, values, t=t)
        collectors = load_json(self.run_dir / COLLECTORS_FILE)
        summary = build_summary(self.run_dir, self.opts.scenario,
                                skipped=collectors.get("skipped") or {}, users=self.opts.users,
                                duration_s=self.opts.duration_s)
        rows = read_samples(self.run_dir / SAMPLES_FILE)
        summary = live_summary(summary, self.opts.scenario, rows, reading, findings,
                               (self.start_t, end_t), period, self.target.as_json(), pins)
        summary = self.mark_cut_short(self.compare(summary))
        write_json(self.run_dir / SUMMARY_FILE, summary)
        write_reports(self.run_dir, summary, step_summary=self.opts.step_summary)
        self.print_summary(summary)
        return summary
