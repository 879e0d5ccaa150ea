"""``connstorm live --dry-run``: what the run would send and read, without sending anything.

Printed from the same objects the real run uses (the resolved target, the run
options, :func:`connstorm.loadtests.orchestrator.cloudwatch_metrics.selected`), so the plan cannot
disagree with the run.
"""

from __future__ import annotations

from typing import Any

from connstorm.loadtests.orchestrator.cloudwatch_metrics import selected
from connstorm.loadtests.orchestrator.live_target import LiveTarget


def describe_plan(opts: Any, target: LiveTarget, settings: Any) -> str:
    """The dry run's text: URL, load, metrics and logs, one item a line."""
    load = opts.scenario.load
    users = load.peak_users(opts.users)
    rate = load.peak_spawn_rate(opts.spawn_rate)
    duration = load.run_time_s(opts.duration_s)
    shape = opts.shape or load.shape
    think = f"think time {load.think_time_min_ms:g}-{load.think_time_max_ms:g} ms per user"
    if load.think_time_min_ms > 0:
        bound = f"at most {users * duration * 1000.0 / load.think_time_min_ms:.0f} requests"
    else:
        bound = "no upper bound on requests: each user sends again as soon as it is answered"
    lines = [f"dry run: nothing sent (stack {target.stack_name or '-'}, region {target.region})",
             f"would load: {target.api_url}",
             f"load: {users} users, {rate:g}/s spawn rate, {shape} shape, for {duration:g} s "
             f"({think}; {bound})",
             f"then wait up to {settings.wait_s:g} s for CloudWatch's last data points "
             f"(period {settings.period_s} s; polled every {settings.poll_s:g} s during the load)",
             "metrics it would read (get_metric_data):"]
    for spec, value in selected(target.targets()):
        lines.append(f"  {spec.label} = {value}")
    if target.log_groups:
        lines.append("logs it would read (filter_log_events): " + ", ".join(target.log_groups)
                     + " (REPORT lines, timeouts, database errors)")
    return "\n".join(lines)
