"""Memory per environment: frozen (a process) against vanished (its sockets held), same run.

A reaped environment vanishes (docs/lambda-vanished.md): its process is killed
and only its database connection is kept, duplicated into the emulator, until
the server's keepalive would give up. This measures what that costs against
keeping the environment frozen, in one run on one machine:

1. N environments (the ``pg_handler`` fixture: one module-level PostgreSQL
   connection each) are started by N invocations at once, then frozen.
   Measured: each environment's proportional memory (PSS,
   ``/proc/<pid>/smaps_rollup``) and page tables (``VmPTE``).
2. All N are reaped the way the reaper does (``Emulator._shutdown``): each
   vanishes, its connection held by the emulator, which runs in this process.
   Measured: the change of this process's resident memory (RSS: the pages it
   touched anew; its PSS and USS grow too, with nothing allocated, as pages it
   shared with the dead environments fall to it alone), the kernel objects of one held
   socket (their sizes from ``/proc/slabinfo``: ``TCP``, ``sock_inode_cache``,
   ``filp``, ``dentry``, ``eventpoll_epi``), how many sockets were held, and the
   event loop's time per vanishing (the pidfd work runs on it).

PostgreSQL's backends are the same in both phases (the server still sees every
connection) and are left out. Usage::

    .venv/bin/python benchmarks/vanished_memory.py --envs 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connstorm.local_stack.lambda_.config import EmulatorConfig  # noqa: E402
from connstorm.local_stack.lambda_.emulator import Emulator  # noqa: E402
from connstorm.local_stack.lambda_.environment import FROZEN  # noqa: E402
from connstorm.local_stack.lambda_.invocation import InvocationRequest  # noqa: E402
from connstorm.local_stack.lambda_.server import raise_nofile_limit  # noqa: E402
from connstorm.local_stack.postgres import PostgresServer  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig, PostgresConfig  # noqa: E402

FIXTURES = ROOT / "tests" / "local_stack" / "lambda_" / "fixture_handlers"
#: The slab caches one held TCP socket (an fd watched by the event loop) occupies.
SOCKET_SLABS = ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi")


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/smaps_rollup`` (``Pss``, ``Private_*``) or ``status``."""
    name = "smaps_rollup" if field == "Pss" or field.startswith("Private") else "status"
    with open(f"/proc/{pid}/{name}", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def uss_kb(pid: int) -> int:
    """Memory only this process holds (``Private_Clean + Private_Dirty``), kB.

    Not PSS for the emulator: when N environments die, the pages it shares with
    them (the interpreter, libraries) are split among fewer processes, and its
    PSS grows with nothing allocated.
    """
    return status_kb(pid, "Private_Clean") + status_kb(pid, "Private_Dirty")


def socket_slab_bytes() -> dict[str, int]:
    """Object size of each slab cache a held socket uses (root reads /proc/slabinfo)."""
    sizes: dict[str, int] = {}
    try:
        with open("/proc/slabinfo", encoding="ascii") as fh:
            for line in fh:
                parts = line.split()
                if parts and parts[0] in SOCKET_SLABS:
                    sizes[parts[0]] = int(parts[3])
    except OSError:
        pass
    return sizes


def env_backends(admin_dsn: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("select count(*) from pg_stat_activity "
                           "where application_name like 'env-%'").fetchone()
    return int(row[0]) if row else 0


async def measure(n: int, dsn: str, admin_dsn: str, run_dir: Path) -> dict[str, object]:
    """Start N environments, measure them frozen, make them vanish, measure again."""
    fn = FunctionConfig(name="db", handler="pg_handler.lambda_handler", code_dir=str(FIXTURES),
                        preload=("psycopg",), timeout_s=300, idle_lifetime_s=3600,
                        env={"FIXTURE_DSN": dsn})
    config = EmulatorConfig(account=LambdaConfig(init_timeout_s=120, vanished_linger_s=3600,
                                                 realtime_priority=False),
                            functions=(fn,), run_dir=str(run_dir))
    async with Emulator(config) as emu:
        payload = json.dumps({"sleep_s": 2.0 + n / 200}).encode()
        results = await asyncio.gather(*(emu.invoke(InvocationRequest("db", payload))
                                         for _ in range(n)))
        failed = sum(1 for r in results if r.outcome != "success")
        pool = emu.pools["db"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and pool.counts[FROZEN] < n - failed:
            await asyncio.sleep(0.05)
        envs = [e for e in pool.envs.values() if e.state == FROZEN and e.pid is not None]
        pss = [status_kb(e.pid, "Pss") for e in envs if e.pid is not None]
        pte = [status_kb(e.pid, "VmPTE") for e in envs if e.pid is not None]
        frozen_backends = await asyncio.to_thread(env_backends, admin_dsn)
        pids = [e.pid for e in envs if e.pid is not None]
        self_before = uss_kb(os.getpid())
        rss_before = status_kb(os.getpid(), "VmRSS")
        started, cpu_started = time.perf_counter(), time.process_time()
        for env in envs:
            emu._shutdown(env)  # what the reaper does to an idle environment
        vanish_s = time.perf_counter() - started
        vanish_cpu_s = time.process_time() - cpu_started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the zygote's exit reports settle
        self_after = uss_kb(os.getpid())
        rss_after = status_kb(os.getpid(), "VmRSS")
        stats = emu.stats()
        vanished_backends = await asyncio.to_thread(env_backends, admin_dsn)
    slabs = socket_slab_bytes()
    held = int(stats["vanished_connections"])
    kernel_per_socket = sum(slabs.values())
    frozen_kb = statistics.mean(pss) + statistics.mean(pte) if pss else 0.0
    vanished_kb = (max(0, rss_after - rss_before) / max(1, len(envs))
                   + kernel_per_socket / 1024 * held / max(1, len(envs)))
    return {
        "envs": n,
        "failed_invocations": failed,
        "frozen": {
            "environments": len(envs),
            "pss_kb_mean": round(statistics.mean(pss), 1) if pss else None,
            "pss_kb_median": statistics.median(pss) if pss else None,
            "page_tables_kb_mean": round(statistics.mean(pte), 1) if pte else None,
            "db_backends_seen": frozen_backends,
        },
        "vanished": {
            "processes_left": sum(1 for p in pids if os.path.exists(f"/proc/{p}")),
            "sockets_held": held,
            "db_backends_seen": vanished_backends,
            "emulator_rss_change_kb": rss_after - rss_before,
            "emulator_uss_change_kb": self_after - self_before,
            "kernel_bytes_per_held_socket": kernel_per_socket,
            "kernel_slab_sizes": slabs,
            "event_loop_ms_per_vanishing": round(vanish_s * 1000 / max(1, len(envs)), 3),
            "cpu_ms_per_vanishing": round(vanish_cpu_s * 1000 / max(1, len(envs)), 3),
        },
        "per_environment_kb": {"frozen": round(frozen_kb, 1), "vanished": round(vanished_kb, 1),
                               "ratio": round(frozen_kb / vanished_kb, 1)
                               if vanished_kb > 0 else None},
    }


def main() -> None:
    """Start PostgreSQL, measure, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=200)
    args = parser.parse_args()
    raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="connstorm-vanished-") as tmp:
        limit = args.envs + 50
        pg_config = PostgresConfig(max_connections=limit, settings={
            "max_connections": limit, "superuser_reserved_connections": 3})
        with PostgresServer(pg_config, Path(tmp) / "pg") as pg:
            figures = uvloop.run(measure(args.envs, pg.app_dsn, pg.admin_dsn, Path(tmp) / "run"))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
