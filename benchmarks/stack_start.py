"""How long a local stack takes to start and stop, and what the tmpfs scratch buys.

``connstorm repro`` starts several fresh stacks in a row, and every stack test
starts one, so start-up time is paid many times. This measures, ``--rounds``
times each:

* PostgreSQL alone (template copy, start, passwords), with the scratch folder
  on tmpfs (``/dev/shm``, the default when it has room) and on disk (the run
  folder), to show why tmpfs is preferred;
* PostgreSQL + PgBouncer + the workload schema (a ``Stack`` without the emulator);
* stopping each.

The template cluster is built first (once per machine and version) and not
counted.

    .venv/bin/python benchmarks/stack_start.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from connstorm.local_stack.os_user import server_user
from connstorm.local_stack.postgres import PostgresServer, find_binaries, template_cluster
from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario


def _measure(rounds: int, make: Callable[[Path], object], base: Path,
             label: str) -> tuple[list[float], list[float]]:
    starts: list[float] = []
    stops: list[float] = []
    for i in range(rounds):
        resource = make(base / f"{label}-{i}")
        t0 = time.perf_counter()
        resource.start()  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        resource.stop()  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t2 - t1)
    return starts, stops


def _row(label: str, starts: list[float], stops: list[float]) -> str:
    return (f"| {label} | {statistics.median(starts):.2f} s | {max(starts):.2f} s | "
            f"{statistics.median(stops):.2f} s |")


def main() -> None:
    """Run the measurements and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    template_cluster(find_binaries(), server_user())
    scenario = load_scenario("pgbouncer-transaction")
    base = Path(tempfile.mkdtemp(prefix="connstorm-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)  # the server user must reach a run folder used as scratch
    rows = []
    for label, scratch_env in (("PostgreSQL, scratch on tmpfs", None),
                               ("PostgreSQL, scratch on disk", str(base / "scratch"))):
        if scratch_env is not None:
            os.environ["CONNSTORM_SCRATCH_DIR"] = scratch_env
        else:
            os.environ.pop("CONNSTORM_SCRATCH_DIR", None)
        starts, stops = _measure(args.rounds,
                                 lambda d: PostgresServer(scenario.postgres, d), base,
                                 label.split(",")[1].strip().replace(" ", "-"))
        rows.append(_row(label, starts, stops))
    os.environ.pop("CONNSTORM_SCRATCH_DIR", None)
    starts, stops = _measure(args.rounds,
                             lambda d: Stack(scenario, d, with_emulator=False), base, "stack")
    rows.append(_row("PostgreSQL + PgBouncer + schema (tmpfs)", starts, stops))
    shutil.rmtree(base, ignore_errors=True)
    print(f"{args.rounds} rounds each; load average {os.getloadavg()[0]:.1f}")
    print("| what | start, median | start, max | stop, median |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
