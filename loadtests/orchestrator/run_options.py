"""What one run needs to know: :class:`RunOptions`, built by ``run``, ``ui`` and ``repro``.

Its own module so that both the runner and Locust's command line
(:mod:`.locust_command`) can read it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from connstorm.loadtests.orchestrator.baseline import Baseline
from connstorm.scenario import Scenario


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs; built by the ``run`` and ``ui`` commands.

    ``None`` for users, spawn rate, duration and processes means "the scenario's
    ``[load]`` value".
    """

    scenario: Scenario
    run_dir: Path
    headless: bool = True
    users: int | None = None
    spawn_rate: float | None = None
    duration_s: float | None = None
    shape: str | None = None
    target_url: str | None = None
    postgres_admin_dsn: str | None = None
    pgbouncer_admin_dsn: str | None = None
    processes: int | None = None
    master: bool = False
    expect_workers: int = 1
    master_bind_host: str = "127.0.0.1"
    master_bind_port: int | None = None
    worker: bool = False
    master_host: str = "127.0.0.1"
    master_port: int = 5557
    web_port: int | None = None
    #: ``--metrics-port``: serve the samples at ``/metrics`` (None: off; 0: a free port).
    metrics_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: ``--locustfile``: your own users instead of the scenario's (absolute, or
    #: relative to the working directory); ``None`` means ``[load] locustfile``.
    locustfile: Path | None = None
    #: ``--baseline``: the earlier run to compare with (already read and checked).
    baseline: Baseline | None = None
    #: Append summary.md to $GITHUB_STEP_SUMMARY (repro appends its comparison instead).
    step_summary: bool = True
    #: Called once Locust has ended and before the stack stops: ``connstorm repro``
    #: lets its next variant start then, while this one's stack stops.
    on_load_end: Callable[[], None] | None = None
