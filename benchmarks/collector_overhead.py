"""What sampling costs: CPU of the PostgreSQL and PgBouncer collectors at a 1 s interval.

Starts a private PostgreSQL and PgBouncer (as ``connstorm run`` would), holds
``--idle`` application connections open so ``pg_stat_activity`` has rows to
group, and runs both collectors for ``--seconds``. It reports, as a share of
one core over the wall-clock time:

* the collectors' own CPU (this process, ``time.process_time``, which covers
  their threads), and
* the CPU of the PostgreSQL backend serving the collector's connection
  (``/proc/<pid>/stat`` utime+stime), since that is load the collector puts on
  the database it measures.

The emulator collector (one small HTTP GET per second) and the Locust
collector (reads in-memory counters) are not included: both are cheaper.

    .venv/bin/python benchmarks/collector_overhead.py --seconds 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psycopg

from connstorm.loadtests.locust_plugin.collectors.pgbouncer import PgBouncerCollector
from connstorm.loadtests.locust_plugin.collectors.postgres import (
    APPLICATION_NAME,
    PostgresCollector,
)
from connstorm.run_folder import SAMPLES_FILE
from connstorm.samples import SampleWriter, read_samples
from connstorm.scenario import load_scenario

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--idle", type=int, default=15, help="idle app connections to hold")
    args = parser.parse_args()

    from connstorm.local_stack.pgbouncer import PgBouncerServer
    from connstorm.local_stack.postgres import PostgresServer

    scenario = load_scenario("pgbouncer-transaction", overrides=[
        "postgres.max_connections=40", "pgbouncer.default_pool_size=10"])
    with tempfile.TemporaryDirectory(prefix="connstorm-bench-") as tmp:
        run_dir = Path(tmp)
        with PostgresServer(scenario.postgres, run_dir) as pg, \
                PgBouncerServer(scenario.pgbouncer, pg, run_dir) as pb:
            idle = [psycopg.connect(pg.app_dsn, application_name=f"idle-{i}")
                    for i in range(args.idle)]
            try:
                with SampleWriter(run_dir / SAMPLES_FILE) as writer:
                    collectors = [
                        PostgresCollector(writer, pg.admin_dsn, interval_s=args.interval_s),
                        PgBouncerCollector(writer, pb.admin_dsn, interval_s=args.interval_s)]
                    collectors[0].tick()  # connect first, so the backend can be found
                    with psycopg.connect(pg.admin_dsn, autocommit=True) as admin:
                        row = admin.execute(
                            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                            (APPLICATION_NAME,)).fetchone()
                    assert row is not None
                    backend_pid = int(row[0])
                    backend0, cpu0, wall0 = (proc_cpu_s(backend_pid), time.process_time(),
                                             time.monotonic())
                    for c in collectors:
                        c.start()
                    time.sleep(args.seconds)
                    for c in collectors:
                        c.stop()
                    wall = time.monotonic() - wall0
                    cpu = time.process_time() - cpu0
                    backend = proc_cpu_s(backend_pid) - backend0 if os.path.exists(
                        f"/proc/{backend_pid}") else float("nan")
                rows = read_samples(run_dir / SAMPLES_FILE)
            finally:
                for conn in idle:
                    conn.close()
    ok = sum(1 for r in rows if r.get("ok"))
    print(f"interval {args.interval_s:g} s, {wall:.1f} s wall, {len(rows)} rows ({ok} ok), "
          f"{args.idle} idle app connections")
    print(f"collectors (client side): {cpu * 1000:.0f} ms CPU = {100 * cpu / wall:.3f} % "
          "of one core")
    print(f"PostgreSQL backend of the collector: {backend * 1000:.0f} ms CPU = "
          f"{100 * backend / wall:.3f} % of one core")
    print(f"total: {100 * (cpu + backend) / wall:.3f} % of one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
