"""Scale: ramp to N concurrent environments, each holding its own PostgreSQL connection.

A private PostgreSQL (``connstorm.local_stack.postgres.PostgresServer``, max_connections
above N) and the emulator core in this process. N invocations are sent at once
to one function whose module opens a connection at Init (the module_level
pattern) and whose handler then holds the environment busy for ``--hold-s``.
Requests arrive at Lambda's own scaling rate by default (100 per second, i.e.
1,000 new environments per 10 s), so a perfect emulator reaches N = 1,000 at
10 s; the emulator applies that rate too (bucket of 1,000, refilled
continuously, starting full). ``--arrival-per-s 0`` sends all N at once.

Reported: time until all N environments finished Init and hold their event
(concurrency N), connections PostgreSQL sees from them, the CPU used by the
emulator core, by the environments and by their PostgreSQL backends (who the
bottleneck is), proportional memory
(PSS, ``/proc/<pid>/smaps_rollup``) per environment and of the zygote, the Init
Duration distribution, and every failure. ``--without-db`` runs the same ramp
with a handler that opens nothing (``benchmarks/handlers/sleep_handler.py``):
what the environments alone cost, without libpq's and PostgreSQL's share. Usage::

    .venv/bin/python benchmarks/emulator_scale.py --envs 1000 [--without-db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connstorm.local_stack.lambda_.config import EmulatorConfig  # noqa: E402
from connstorm.local_stack.lambda_.emulator import Emulator  # noqa: E402
from connstorm.local_stack.lambda_.environment import BUSY  # noqa: E402
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult  # noqa: E402
from connstorm.local_stack.lambda_.server import raise_nofile_limit  # noqa: E402
from connstorm.local_stack.postgres import PostgresServer  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig, PostgresConfig  # noqa: E402

FIXTURES = ROOT / "tests" / "local_stack" / "lambda_" / "fixture_handlers"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pss_kb(pid: int) -> int:
    """Proportional set size of a process, in kB."""
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_s_of(pid: int) -> float:
    """CPU time a process has run so far (``/proc/<pid>/schedstat``), seconds."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def env_connections(admin_dsn: str) -> tuple[int, float]:
    """Client backends of the environments, and the CPU those backends have used."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("select pid from pg_stat_activity "
                            "where application_name like 'env-%'").fetchall()
    return len(rows), sum(cpu_s_of(int(r[0])) for r in rows)


async def ramp(n: int, hold_s: float, dsn: str, admin_dsn: str, run_dir: Path,
               arrival_per_s: float = 0.0, with_db: bool = True,
               enforce_memory: bool = True) -> dict[str, object]:
    """Send ``n`` invocations (at ``arrival_per_s``, 0 = at once); measure until all hold one."""
    if with_db:
        fn = FunctionConfig(name="db", handler="pg_handler.lambda_handler",
                            code_dir=str(FIXTURES), preload=("psycopg",),
                            timeout_s=hold_s + 120, env={"FIXTURE_DSN": dsn})
    else:
        fn = FunctionConfig(name="db", handler="sleep_handler.lambda_handler",
                            code_dir=str(ROOT / "benchmarks" / "handlers"), preload=(),
                            database="none", timeout_s=hold_s + 120)
    config = EmulatorConfig(account=LambdaConfig(init_timeout_s=60, enforce_memory=enforce_memory),
                            functions=(fn,),
                            run_dir=str(run_dir))
    async with Emulator(config) as emu:
        payload = json.dumps({"sleep_s": hold_s}).encode()
        cpu_before = _cpu_s()
        started = time.monotonic()
        calls: list[asyncio.Future[InvocationResult]] = []

        async def arrive() -> None:
            for i in range(n):
                if arrival_per_s > 0:
                    delay_s = started + i / arrival_per_s - time.monotonic()
                    if delay_s > 0:
                        await asyncio.sleep(delay_s)
                calls.append(asyncio.ensure_future(emu.invoke(InvocationRequest("db", payload))))

        arrivals = asyncio.ensure_future(arrive())
        reached_s = None
        peak_busy = 0
        arrival_span_s = n / arrival_per_s if arrival_per_s > 0 else 0.0
        while time.monotonic() - started < hold_s + arrival_span_s:
            busy = sum(1 for e in emu.by_id.values() if e.state == BUSY)
            peak_busy = max(peak_busy, busy)
            if busy >= n:
                reached_s = time.monotonic() - started
                break
            if arrivals.done() and all(c.done() for c in calls):
                break
            await asyncio.sleep(0.05)
        emulator_cpu_s = _cpu_s() - cpu_before
        pids = [e.pid for e in emu.by_id.values() if e.pid is not None]
        pss = [pss_kb(pid) for pid in pids]
        pool = emu.pools["db"]
        zygote_pss = pss_kb(pool.zygote.pid) if pool.zygote and pool.zygote.pid else 0
        env_cpu_s = sum(cpu_s_of(pid) for pid in pids)
        connections, backend_cpu_s = await asyncio.to_thread(env_connections, admin_dsn)
        await arrivals
        results = await asyncio.gather(*calls)
        stats = emu.stats()
    init_ms = sorted(r.init_ms for r in results if r.init_ms is not None)
    outcomes = Counter(r.outcome for r in results)
    failures = Counter(f"{r.outcome}: {r.error_type or r.throttle_reason}: "
                       f"{(r.error_message or '')[:120]}" for r in results
                       if r.outcome != "success")
    return {
        "envs_requested": n,
        "database_connection_per_env": with_db,
        "arrival_per_s": arrival_per_s or "all at once",
        "time_to_all_busy_s": None if reached_s is None else round(reached_s, 2),
        "peak_busy": peak_busy,
        "emulator_cpu_s_during_ramp": round(emulator_cpu_s, 2),
        "db_connections_from_envs": connections,
        "cpu_s_environments": round(env_cpu_s, 1),
        "cpu_s_their_postgres_backends": round(backend_cpu_s, 1),
        "pss_per_env_mb_median": round(statistics.median(pss) / 1024, 2) if pss else None,
        "pss_per_env_mb_mean": round(statistics.mean(pss) / 1024, 2) if pss else None,
        "pss_all_envs_mb": round(sum(pss) / 1024, 1),
        "zygote_pss_mb": round(zygote_pss / 1024, 1),
        "init_ms_median": round(statistics.median(init_ms), 1) if init_ms else None,
        "init_ms_p90": round(init_ms[int(0.9 * (len(init_ms) - 1))], 1) if init_ms else None,
        "init_ms_max": round(init_ms[-1], 1) if init_ms else None,
        "outcomes": dict(outcomes),
        "failures": dict(failures),
        "concurrency_peak": stats["concurrency_peak"],
        "cold_starts": stats["cold_starts"],
    }


def main() -> None:
    """Start PostgreSQL, ramp, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1000)
    parser.add_argument("--hold-s", type=float, default=45.0)
    parser.add_argument("--arrival-per-s", type=float, default=100.0,
                        help="requests per second (default: Lambda's scaling rate, "
                             "1,000 per 10 s); 0 sends all at once")
    parser.add_argument("--without-db", action="store_true",
                        help="environments that open no database connection")
    parser.add_argument("--no-memory-limit", action="store_true",
                        help="[lambda] enforce_memory = false: no memory checks (their cost)")
    args = parser.parse_args()
    raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="connstorm-scale-") as tmp:
        pg_config = PostgresConfig(max_connections=args.envs + 50,
                                   settings={"max_connections": args.envs + 50,
                                             "superuser_reserved_connections": 3})
        with PostgresServer(pg_config, Path(tmp) / "pg") as pg:
            figures = uvloop.run(ramp(args.envs, args.hold_s, pg.app_dsn, pg.admin_dsn,
                                      Path(tmp) / "run", args.arrival_per_s,
                                      not args.without_db, not args.no_memory_limit))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
