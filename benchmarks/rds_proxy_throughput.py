"""RDS Proxy stand-in: queries per second and added p50 latency, against PgBouncer and direct.

One private PostgreSQL; in front of it PgBouncer (transaction mode) and the RDS
Proxy stand-in (``python -m connstorm.local_stack.rds_proxy``, a process of its own like
PgBouncer), both with a pool of ``--pool`` connections. The same load runs
against the three targets, interleaved, ``--rounds`` times, in the same run:

* throughput: ``--clients`` client processes, each one connection running
  ``SELECT 1`` (psycopg, autocommit, extended protocol, no prepared
  statements: what the handlers send) back to back for ``--seconds``;
  the stand-in once more with psycopg's defaults (``prepare_threshold=5``:
  after five runs a named prepared statement, which the stand-in multiplexes
  by translating each Bind; PgBouncer 1.18 cannot carry them at all);
* latency: one client alone, the same loop; its p50 minus the direct p50 is
  the latency the pooler adds (and the stand-in's minus PgBouncer's, what it
  adds over PgBouncer).

The stand-in runs twice, side by side: as the stack runs it (its loop at
real-time priority, ``[rds_proxy] realtime_priority``) and at the ordinary
priority, what that buys on a shared machine.

Each figure is the median over the rounds. The clients, PostgreSQL and the
poolers share the machine's cores: read the figures as ratios, not as what
the hardware can do. ``--before DIR`` also runs another checkout's stand-in
(``DIR`` first on ``PYTHONPATH``, e.g. a worktree of the commit before a
change; this checkout's interpreter and packages) in the same rounds: a
before/after pair measured together.

    .venv/bin/python benchmarks/rds_proxy_throughput.py --seconds 5 --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

from connstorm.scenario import load_scenario
from connstorm.sections.rds_proxy import RdsProxyConfig

#: The stand-in again, with psycopg's defaults: named prepared statements from the 6th run.
PREPARED = "RDS Proxy stand-in, prepared"
#: The other checkout's stand-in (``--before``).
BEFORE = "RDS Proxy stand-in, before"


def _client(dsn: str, seconds: float, out: multiprocessing.Queue,  # type: ignore[type-arg]
            prepare_threshold: int | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=prepare_threshold) as conn:
        cur = conn.cursor()
        for _ in range(200):  # warm-up
            cur.execute("SELECT 1")
        latencies: list[int] = []
        deadline = time.perf_counter() + seconds
        while (start := time.perf_counter_ns()) < deadline * 1e9:
            cur.execute("SELECT 1")
            cur.fetchall()
            latencies.append(time.perf_counter_ns() - start)
    out.put(latencies)


def run_load(dsn: str, clients: int, seconds: float,
             prepare_threshold: int | None = None) -> tuple[float, float]:
    """(queries per second over all clients, p50 latency in ms)."""
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_client, args=(dsn, seconds, out, prepare_threshold))
             for _ in range(clients)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = sorted(x for r in results for x in r)
    return len(latencies) / seconds, latencies[len(latencies) // 2] / 1e6


def _before_proxy(checkout: Path, pg: Any, run_dir: Path, pool: int) -> Any:
    """The stand-in of ``checkout``, run with it first on PYTHONPATH (not started yet)."""
    from connstorm.local_stack.rds_proxy.process import RdsProxyProcess

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(checkout.resolve())
    try:  # the process wrapper copies the environment now
        return RdsProxyProcess(RdsProxyConfig(), upstream_host=pg.host, upstream_port=pg.port,
                               user=pg.app_user, password=pg.app_password or "",
                               work_dir=run_dir / "rdsp-before", pool_size=pool)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run the stand-in of this checkout (a worktree)")
    args = parser.parse_args()

    from connstorm.local_stack.pgbouncer import PgBouncerServer
    from connstorm.local_stack.postgres import PostgresServer
    from connstorm.local_stack.rds_proxy.process import RdsProxyProcess

    scenario = load_scenario("pgbouncer-transaction", overrides=[
        "postgres.max_connections=40", f"pgbouncer.default_pool_size={args.pool}"])
    normal = "RDS Proxy stand-in, normal priority"
    qps: dict[str, list[float]] = {"direct": [], "PgBouncer": [], "RDS Proxy stand-in": [],
                                   normal: [], PREPARED: []}
    if args.before is not None:
        qps[BEFORE] = []
    p50: dict[str, list[float]] = {k: [] for k in qps}
    with tempfile.TemporaryDirectory(prefix="connstorm-bench-") as tmp, ExitStack() as stack:
        run_dir = Path(tmp)
        with PostgresServer(scenario.postgres, run_dir) as pg, \
                PgBouncerServer(scenario.pgbouncer, pg, run_dir) as pb, \
                RdsProxyProcess(RdsProxyConfig(), upstream_host=pg.host, upstream_port=pg.port,
                                user=pg.app_user, password=pg.app_password or "",
                                work_dir=run_dir / "rdsp", pool_size=args.pool) as proxy, \
                RdsProxyProcess(RdsProxyConfig(realtime_priority=False), upstream_host=pg.host,
                                upstream_port=pg.port, user=pg.app_user,
                                password=pg.app_password or "", work_dir=run_dir / "rdsp-normal",
                                pool_size=args.pool) as slow:
            proxied = proxy.dsn(pg.app_user, pg.app_password, pg.app_dbname)
            targets: dict[str, tuple[str, int | None]] = {
                "direct": (pg.app_dsn, None), "PgBouncer": (pb.dsn, None),
                "RDS Proxy stand-in": (proxied, None),
                normal: (slow.dsn(pg.app_user, pg.app_password, pg.app_dbname), None),
                PREPARED: (proxied, 5)}
            if args.before is not None:
                old = stack.enter_context(_before_proxy(args.before, pg, run_dir, args.pool))
                targets[BEFORE] = (old.dsn(pg.app_user, pg.app_password, pg.app_dbname), None)
            for _ in range(args.rounds):
                for name, (dsn, threshold) in targets.items():
                    qps[name].append(run_load(dsn, args.clients, args.seconds, threshold)[0])
                    p50[name].append(run_load(dsn, 1, args.seconds, threshold)[1])
    load = os.getloadavg()
    print(f"{args.clients} clients (throughput) / 1 client (latency), {args.seconds:g} s each, "
          f"{args.rounds} rounds interleaved, pool {args.pool}; {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    print()
    print("| target | queries/s | vs PgBouncer | p50 latency (1 client) | added p50 vs direct "
          "| vs PgBouncer's |")
    print("|---|---|---|---|---|---|")
    direct_p50 = statistics.median(p50["direct"])
    pb_p50 = statistics.median(p50["PgBouncer"])
    pb_qps = statistics.median(qps["PgBouncer"])
    for name in qps:
        q, lat = statistics.median(qps[name]), statistics.median(p50[name])
        added = "" if name == "direct" else f"{(lat - direct_p50) * 1000:+.0f} µs"
        over = "" if name in ("direct", "PgBouncer") else f"{(lat - pb_p50) * 1000:+.0f} µs"
        print(f"| {name} | {q:,.0f} | {q / pb_qps:.2f} | {lat:.3f} ms | {added} | {over} |")
    print()
    print("per round, queries/s vs PgBouncer's: " + "; ".join(
        f"{name}: " + " ".join(f"{a / b:.2f}" for a, b in zip(qps[name], qps["PgBouncer"],
                                                               strict=True))
        for name in qps if name not in ("direct", "PgBouncer")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
