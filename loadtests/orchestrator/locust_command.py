"""Locust's command line for a run, and the few checks made on a running Locust.

Kept apart from :mod:`.runner`, which runs the stack and Locust: this is what the
container's entry point and the tests build too, without running anything.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from connstorm.loadtests.orchestrator.locustfiles import load_source
from connstorm.loadtests.orchestrator.run_options import RunOptions
from connstorm.local_stack.ports import free_port
from connstorm.run_folder import LOCUST_CSV_PREFIX


def locust_args(opts: RunOptions, host: str | None, stack_file: Path | None) -> list[str]:
    """Locust's command line for a run (everything but ``python -m locust``).

    ``host`` None: none given (the plugin takes it from the stack file).
    """
    load = opts.scenario.load
    # The files are passed by path: the orchestrator never imports the Locust side.
    args = ["-f", load_source(opts.scenario, opts.locustfile).locustfile_arg]
    if opts.worker:
        return [*args, "--worker", "--master-host", opts.master_host,
                "--master-port", str(opts.master_port)]
    users = load.peak_users(opts.users)
    rate = load.peak_spawn_rate(opts.spawn_rate)
    duration = load.run_time_s(opts.duration_s)
    if host is not None:
        args += ["--host", host]
    args += ["-u", str(users), "-r", f"{rate:g}", "-t", f"{int(duration)}s",
             "--csv", str(opts.run_dir / LOCUST_CSV_PREFIX), "--exit-code-on-error", "0",
             "--connstorm-out", str(opts.run_dir),
             "--sample-interval-s", f"{load.sample_interval_s:g}",
             "--shape", opts.shape or load.shape,
             "--step-users", str(load.step_users), "--step-duration-s", f"{load.step_duration_s:g}",
             "--think-time-min-ms", f"{load.think_time_min_ms:g}",
             "--think-time-max-ms", f"{load.think_time_max_ms:g}",
             "--products", str(opts.scenario.postgres.seed_products)]
    if stack_file is not None:
        args += ["--connstorm-stack", str(stack_file)]
    if opts.headless:
        args += ["--headless", "--only-summary"]
    else:
        args += ["--web-host", "127.0.0.1", "--web-port", str(opts.web_port or free_port())]
    processes = opts.processes if opts.processes is not None else load.processes
    if opts.master:
        port = opts.master_bind_port or 5557
        args += ["--master", "--expect-workers", str(opts.expect_workers),
                 "--master-bind-host", opts.master_bind_host, "--master-bind-port", str(port)]
    elif processes:
        # A private port on loopback: several runs may share the machine, and the
        # children must be told the same port or they never find their master.
        port = free_port()
        args += ["--processes", str(processes), "--master-bind-host", "127.0.0.1",
                 "--master-bind-port", str(port), "--master-host", "127.0.0.1",
                 "--master-port", str(port)]
    return args


def web_url(args: list[str]) -> str | None:
    """The web UI's address when Locust's command line gives it a port."""
    if "--web-port" not in args:
        return None
    return f"http://127.0.0.1:{args[args.index('--web-port') + 1]}"


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
