"""The Locust side of connstorm: collectors, the errors-by-kind counter and the web UI tab.

Imported by ``loadtests/locust_plugin/locustfile.py``; it hooks Locust's events when imported.
On ``init`` in the master or a local runner (never a worker: the database must
be sampled once, not once per worker) it opens the run folder's
``samples.jsonl`` and starts one collector per target it can find: targets come
from ``--connstorm-stack PATH/stack.json`` (or env ``CONNSTORM_STACK``), else
from explicit admin DSNs; a collector without a target is skipped and the reason
is written to ``collectors.json``. Collectors stop on ``quitting``. Failed
requests of any user, one's own locustfile's included, are described by their
kind before Locust records them (:mod:`.failure_kinds`).

Import order matters: ``locust`` is imported first, so gevent has patched the
standard library before psycopg is imported and psycopg picks its
gevent-friendly wait function (psycopg documentation, "Concurrent operations",
section "Gevent support"; Locust documentation, "Testing other systems/protocols").
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg's import
from locust import events
from locust.runners import WorkerRunner

from connstorm.loadtests.locust_plugin import failure_kinds
from connstorm.loadtests.locust_plugin import options as connstorm_options
from connstorm.loadtests.locust_plugin.collectors.base import Collector
from connstorm.loadtests.locust_plugin.collectors.locust_stats import (
    ErrorKindCounter,
    LocustStatsCollector,
)
from connstorm.loadtests.locust_plugin.collectors.stack_targets import stack_collectors
from connstorm.loadtests.locust_plugin.plugin_state import PluginState
from connstorm.loadtests.locust_plugin.worker_options import parse_defaults_once
from connstorm.run_folder import COLLECTORS_FILE, SAMPLES_FILE, default_run_dir, write_json
from connstorm.samples import SampleWriter

log = logging.getLogger(__name__)

#: Counts failures by kind in every process; workers send theirs to the master.
counter = ErrorKindCounter()


state = PluginState()

#: How long the load waits, at most, for every collector's first sample.
FIRST_ROW_WAIT_S = 10.0


def load_stack(path: str) -> dict[str, Any]:
    """Read ``stack.json``; a missing or broken file is reported, not fatal to plain Locust."""
    if not path:
        return {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.error("connstorm: cannot read stack file %s: %s; collectors need it", path, exc)
        return {}
    return doc if isinstance(doc, dict) else {}


def resolve_run_dir(opts: Any) -> Path:
    """``--connstorm-out``, else the stack file's folder, else ``runs/<UTC time>-locust``."""
    if getattr(opts, "connstorm_out", ""):
        return Path(opts.connstorm_out)
    if getattr(opts, "connstorm_stack", ""):
        return Path(opts.connstorm_stack).resolve().parent
    return default_run_dir("locust")


def build_collectors(environment: Any, writer: SampleWriter, stack: dict[str, Any],
                     opts: Any) -> tuple[list[Collector], dict[str, str]]:
    """The collectors this run can have, and why each missing one is missing."""
    interval_s = float(getattr(opts, "sample_interval_s", 1.0) or 1.0)
    collectors, skipped = stack_collectors(
        writer, stack, interval_s=interval_s,
        postgres_admin_dsn=getattr(opts, "postgres_admin_dsn", "") or "",
        pgbouncer_admin_dsn=getattr(opts, "pgbouncer_admin_dsn", "") or "")
    collectors.append(LocustStatsCollector(writer, environment, counter, interval_s=interval_s))
    return collectors, skipped


def start(environment: Any, web_ui: Any = None) -> None:
    """Open the run folder and start the collectors (master or local runner only)."""
    opts = environment.parsed_options
    state.stack = load_stack(getattr(opts, "connstorm_stack", "") if opts else "")
    state.run_dir = resolve_run_dir(opts)
    state.run_dir.mkdir(parents=True, exist_ok=True)
    state.writer = SampleWriter(state.run_dir / SAMPLES_FILE)
    state.writer.open()
    state.collectors, state.skipped = build_collectors(environment, state.writer, state.stack,
                                                       opts)
    for name, reason in state.skipped.items():
        log.warning("connstorm: %s collector skipped: %s", name, reason)
    write_json(state.run_dir / COLLECTORS_FILE,
               {"running": [c.name for c in state.collectors], "skipped": state.skipped,
                "sample_interval_s": state.collectors[0].interval_s})
    for collector in state.collectors:
        collector.start()
    # Locust spawns its first users only after the init event, so waiting here
    # makes every collector's first row a sample from before the load.
    deadline = time.monotonic() + FIRST_ROW_WAIT_S
    for collector in state.collectors:
        if not collector.wait_first_row(max(0.0, deadline - time.monotonic())):
            log.warning("connstorm: %s collector took over %.0f s for its first sample; "
                        "the load starts without it", collector.name, FIRST_ROW_WAIT_S)
    if web_ui is not None:
        from connstorm.loadtests.locust_plugin.web import register
        register(web_ui, state)


def stop() -> None:
    """Stop every collector and close the samples file; safe to call twice."""
    for collector in state.collectors:
        collector.stop()
    state.collectors = []
    if state.writer is not None:
        state.writer.close()
        state.writer = None


def _on_parser(parser: Any, **kwargs: Any) -> None:
    connstorm_options.add_arguments(parser)


def wait_for_stack(environment: Any) -> None:
    """With ``--connstorm-stack-wait-s``: wait for the stack file, then aim at its API.

    connstorm starts Locust (about half a second of imports) while the stack starts,
    and the stack writes its file last, once every server answers; Locust's users
    spawn only after the init event, so none is sent before the API is up. A stack
    that never comes up ends Locust with one line and exit code 3.
    """
    opts = environment.parsed_options
    wait_s = float(getattr(opts, "connstorm_stack_wait_s", 0.0) or 0.0) if opts else 0.0
    path = Path(getattr(opts, "connstorm_stack", "") or "") if opts else Path()
    if wait_s <= 0 or not path.name:
        return
    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() > deadline:
            log.error("connstorm: %s did not appear within %g s; stopping", path, wait_s)
            raise SystemExit(3)
        time.sleep(0.02)
    if not environment.host:
        environment.host = load_stack(str(path)).get("api_url") or None
        opts.host = environment.host


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **kwargs: Any) -> None:
    counter.attach(environment.events)
    if isinstance(runner, WorkerRunner) or runner is None:
        return
    wait_for_stack(environment)
    start(environment, web_ui)


def _on_quitting(environment: Any, **kwargs: Any) -> None:
    stop()


# Registered through Any: Locust's EventHook.add_listener is untyped.
_events: Any = events
_events.init_command_line_parser.add_listener(_on_parser)
_events.init.add_listener(_on_init)
_events.quitting.add_listener(_on_quitting)
parse_defaults_once()  # or a worker under load misses its heartbeats on every spawn message
# Now, at import: before Locust builds its runner, whose stats listen to this event.
failure_kinds.install(_events.request)
