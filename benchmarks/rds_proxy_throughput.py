"""RDS Proxy stand-in: queries per second and added p50 latency, against PgBouncer and direct.

One private PostgreSQL; in front of it PgBouncer (transaction mode) and the RDS
Proxy stand-in (``python -m connstorm.local_stack.rds_proxy``, a process of its own like
PgBouncer), both with a pool of ``--pool`` connections. The same load runs
against the three targets, interleaved, ``--rounds`` times, in the same run:

* throughput: ``--clients`` client processes, each one connection running
  ``SELECT 1`` (psycopg, autocommit, extended protocol, no prepared
  statements: what the handlers send) back to back for ``--seconds``;
* latency: one client alone, the same loop; its p50 minus the direct p50 is
  the latency the pooler adds (and the stand-in's minus PgBouncer's, what it
  adds over PgBouncer).

The stand-in runs twice, side by side: as the stack runs it (its loop at
real-time priority, ``[rds_proxy] realtime_priority``) and at the ordinary
priority, what that buys on a shared machine.

Each figure is the median over the rounds. The clients, PostgreSQL and the
poolers share the machine's cores: read the figures as ratios, not as what
the hardware can do.

    .venv/bin/python benchmarks/rds_proxy_throughput.py --seconds 5 --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from connstorm.scenario import load_scenario
from connstorm.sections.rds_proxy import RdsProxyConfig


def _client(dsn: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
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


def run_load(dsn: str, clients: int, seconds: float) -> tuple[float, float]:
    """(queries per second over all clients, p50 latency in ms)."""
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_client, args=(dsn, seconds, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = sorted(x for r in results for x in r)
    return len(latencies) / seconds, latencies[len(latencies) // 2] / 1e6


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pool", type=int, default=4)
    args = parser.parse_args()

    from connstorm.local_stack.pgbouncer import PgBouncerServer
    from connstorm.local_stack.postgres import PostgresServer
    from connstorm.local_stack.rds_proxy.process import RdsProxyProcess

    scenario = load_scenario("pgbouncer-transaction", overrides=[
        "postgres.max_connections=40", f"pgbouncer.default_pool_size={args.pool}"])
    normal = "RDS Proxy stand-in, normal priority"
    qps: dict[str, list[float]] = {"direct": [], "PgBouncer": [], "RDS Proxy stand-in": [],
                                   normal: []}
    p50: dict[str, list[float]] = {k: [] for k in qps}
    with tempfile.TemporaryDirectory(prefix="connstorm-bench-") as tmp:
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
            targets = {"direct": pg.app_dsn, "PgBouncer": pb.dsn,
                       "RDS Proxy stand-in": proxy.dsn(pg.app_user, pg.app_password,
                                                       pg.app_dbname),
                       normal: slow.dsn(pg.app_user, pg.app_password, pg.app_dbname)}
            for _ in range(args.rounds):
                for name, dsn in targets.items():
                    qps[name].append(run_load(dsn, args.clients, args.seconds)[0])
                    p50[name].append(run_load(dsn, 1, args.seconds)[1])
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
