"""Environments holding a connection: memory per frozen one, and a 1,000 ramp against the floor.

Run::

    .venv/bin/python benchmarks/environment_costs.py memory --envs 200 [--rounds 3] [--before DIR]
    .venv/bin/python benchmarks/environment_costs.py ramp --envs 1000 [--rounds 3] [--before DIR]

Both use one private PostgreSQL 15 (SCRAM, max_connections above N) and the
probe handler (``benchmarks/handlers/probe_handler.py``: imports psycopg and
connects at Init), one function, and the emulator core in a process of its own
(real awslambdaric in every environment, freeze on). The function's ``preload``:
``memory`` keeps the default (what users get: psycopg, psycopg_pool, boto3,
botocore.session); ``ramp`` preloads psycopg alone, what the floor's parent has
imported, so both fork the same modules; ``--preload`` overrides either.

``memory``: N invocations at once, each holding its environment until all N
are busy; once all N have answered and are frozen (SIGSTOPped on ``/next``),
the proportional set size of each (``/proc/<pid>/smaps_rollup``), its mean,
and what it is made of (private and shared, anonymous and file-backed), with
the largest private mappings of one environment (``/proc/<pid>/smaps``): where
the memory goes. Target (issue 24): mean PSS at most 5.0 MB over 200.

``ramp``: N invocations at once, time until all N environments have finished
Init (their connection open) and hold their event, as a ratio to the machine's
floor measured in the same round: N processes forked, as fast as one process
can, from a process that has imported psycopg, each opening the same connection
(``floor``). CPU is split between the emulator, the zygote, the environments
(or the floor's children) and their PostgreSQL backends. Target (issue 24):
ratio at most 1.2.

``--before DIR`` measures another checkout (its ``DIR/.venv``; the commit before
a change, in a git worktree, even with the old module layout) in the same
rounds, right before this one. Each measurement runs in a fresh process;
traffic stays on 127.0.0.1. Speed is reported, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ROOT / "benchmarks" / "handlers"
APP_NAME = "connstorm-probe"
SMAPS_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Shared_Dirty",
              "Private_Clean", "Private_Dirty")


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB figures of ``/proc/<pid>/smaps_rollup`` named in SMAPS_KEYS."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in SMAPS_KEYS:
                out[key] = int(rest.split()[0])
    return out


def private_mappings(pid: int, top: int = 12) -> list[tuple[str, int, int]]:
    """The mappings of a process with the most private memory: (name, private kB, PSS kB)."""
    totals: dict[str, list[int]] = {}
    name = ""
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as fh:
        for line in fh:
            first = line.split(None, 5)
            if len(first) >= 5 and "-" in first[0] and ":" not in first[0]:
                name = first[5].strip() if len(first) > 5 else "[anon]"
                name = os.path.basename(name) if name.startswith("/") else name
                totals.setdefault(name, [0, 0])
            elif first and first[0] in ("Private_Clean:", "Private_Dirty:"):
                totals[name][0] += int(first[1])
            elif first and first[0] == "Pss:":
                totals[name][1] += int(first[1])
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
    return [(n, priv, pss) for n, (priv, pss) in ranked]


def cpu_s_of(pid: int) -> float:
    """CPU time a process has run so far (``/proc/<pid>/schedstat``), seconds."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backends(admin_dsn: str) -> tuple[int, float]:
    """The probe's client backends, and the CPU they have used."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("select pid from pg_stat_activity where application_name = %s",
                            (APP_NAME,)).fetchall()
    return len(rows), sum(cpu_s_of(int(r[0])) for r in rows)


# ------------------------------------------------------------------ the floor


def floor(n: int, dsn: str, admin_dsn: str) -> dict[str, Any]:
    """N children forked from this process (psycopg imported), each connecting."""
    import psycopg

    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pids = []
    cpu_before = _self_cpu_s()
    started = time.monotonic()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(ready_r)
                os.close(release_w)
                conn = psycopg.connect(dsn, autocommit=True, application_name=APP_NAME)
                os.write(ready_w, b"x")
                os.read(release_r, 1)  # until the parent closes its end
                conn.close()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(ready_w)
    got = 0
    while got < n:
        chunk = os.read(ready_r, 65536)
        if not chunk:
            break
        got += len(chunk)
    elapsed = time.monotonic() - started
    parent_cpu = _self_cpu_s() - cpu_before
    children_cpu = sum(cpu_s_of(p) for p in pids)
    connections, backend_cpu = backends(admin_dsn)
    os.close(release_w)
    for pid in pids:
        os.waitpid(pid, 0)
    return {"what": "floor", "n": n, "connected": got, "time_s": round(elapsed, 3),
            "cpu_s_parent": round(parent_cpu, 2), "cpu_s_children": round(children_cpu, 2),
            "cpu_s_backends": round(backend_cpu, 2),
            "connections": connections}


# ------------------------------------------------------------- the emulator


def _emulator_modules() -> dict[str, Any]:
    """The emulator's classes, in this checkout's layout (``connstorm.local_stack`` or the
    older top-level ``local_stack``)."""
    try:
        from connstorm.local_stack.lambda_ import config, emulator, environment, invocation, server
    except ImportError:
        from local_stack.lambda_ import (  # type: ignore[no-redef]
            config,
            emulator,
            environment,
            invocation,
            server,
        )
    from connstorm import scenario

    return {"EmulatorConfig": config.EmulatorConfig, "Emulator": emulator.Emulator,
            "BUSY": environment.BUSY, "FROZEN": environment.FROZEN,
            "InvocationRequest": invocation.InvocationRequest,
            "raise_nofile_limit": server.raise_nofile_limit,
            "FunctionConfig": scenario.FunctionConfig, "LambdaConfig": scenario.LambdaConfig}


async def emulator_run(mode: str, n: int, dsn: str, admin_dsn: str, run_dir: Path,
                       preload: tuple[str, ...] | None, hold_s: float) -> dict[str, Any]:
    """Send N invocations at once; measure the ramp, or the frozen environments' memory."""
    m = _emulator_modules()
    m["raise_nofile_limit"]()
    extra = {} if preload is None else {"preload": preload}
    fn = m["FunctionConfig"](name="probe", handler="probe_handler.lambda_handler",
                             code_dir=str(HANDLERS), database="none", timeout_s=hold_s + 300,
                             env={"PROBE_DSN": dsn}, **extra)
    config = m["EmulatorConfig"](account=m["LambdaConfig"](init_timeout_s=300),
                                 functions=(fn,), run_dir=str(run_dir))
    out: dict[str, Any] = {"what": mode, "n": n, "preload": list(fn.preload)}
    async with m["Emulator"](config) as emu:
        zygote_pid = emu.pools["probe"].zygote.pid
        payload = json.dumps({"sleep_s": hold_s}).encode()
        cpu_before, zygote_cpu_before = _self_cpu_s(), cpu_s_of(zygote_pid)
        started = time.monotonic()
        calls = [asyncio.ensure_future(emu.invoke(m["InvocationRequest"]("probe", payload)))
                 for _ in range(n)]
        reached = None
        pool = emu.pools["probe"]
        while time.monotonic() - started < hold_s:
            if pool.counts[m["BUSY"]] >= n:
                reached = time.monotonic() - started
                break
            await asyncio.sleep(0.02)
        pids = [e.pid for e in emu.by_id.values() if e.pid is not None]
        out.update({"time_s": None if reached is None else round(reached, 3),
                    "cpu_s_emulator": round(_self_cpu_s() - cpu_before, 2),
                    "cpu_s_zygote": round(cpu_s_of(zygote_pid) - zygote_cpu_before, 2),
                    "cpu_s_environments": round(sum(cpu_s_of(p) for p in pids), 2)})
        connections, backend_cpu = await asyncio.to_thread(backends, admin_dsn)
        out.update({"connections": connections, "cpu_s_backends": round(backend_cpu, 2)})
        if mode == "memory":
            results = await asyncio.gather(*calls)
            out["outcomes"] = sorted({r.outcome for r in results})
            while sum(1 for e in emu.by_id.values() if e.state == m["FROZEN"]) < n:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # let the last ones settle in the stopped state
            pids = [e.pid for e in emu.by_id.values() if e.pid is not None]
            rollups = [smaps_rollup(p) for p in pids]
            out["envs_measured"] = len(rollups)
            for key in SMAPS_KEYS:
                out[f"{key}_kb_mean"] = round(statistics.mean(r.get(key, 0) for r in rollups), 1)
            out["pss_mb_mean"] = round(out["Pss_kb_mean"] / 1024, 2)
            out["pss_mb_median"] = round(statistics.median(r["Pss"] for r in rollups) / 1024, 2)
            out["zygote"] = smaps_rollup(zygote_pid)
            out["one_env_private_mappings"] = private_mappings(pids[0])
        else:
            for call in calls:
                call.cancel()
    return out


# ------------------------------------------------------------------ driver


def _measure(args: argparse.Namespace) -> int:
    if args.mode == "floor":
        doc = floor(args.envs, args.dsn, args.admin_dsn)
    else:
        import uvloop

        preload = None if args.preload is None else tuple(p for p in args.preload.split(",") if p)
        # The run folder on tmpfs, as the stack's scratch goes (local_stack/scratch.py): on
        # this machine /tmp is slow to create files in (about 0.35 ms of CPU each, measured),
        # which is the disk's cost, not the emulator's (a run folder under runs/ pays 15 us).
        scratch = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        with tempfile.TemporaryDirectory(prefix="connstorm-envcost-", dir=scratch) as tmp:
            doc = uvloop.run(emulator_run(args.mode, args.envs, args.dsn, args.admin_dsn,
                                          Path(tmp) / "run", preload, args.hold_s))
    print("RESULT " + json.dumps(doc))
    return 0


def _run_child(python: Path, checkout: Path, argv: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), str(Path(__file__).resolve()), *argv],
                          cwd=str(checkout), env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{python} {argv[:2]} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return doc


def _wait_disconnected(admin_dsn: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while backends(admin_dsn)[0] and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", choices=("memory", "ramp", "floor"))
    parser.add_argument("--envs", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="another checkout (with its own .venv) measured in the same rounds")
    parser.add_argument("--preload", help="comma-separated modules (default: the function's "
                                          "default for memory, psycopg for ramp); '' for none")
    parser.add_argument("--hold-s", type=float, default=None,
                        help="how long each invocation holds its environment")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--admin-dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.envs is None:
        args.envs = 200 if args.mode == "memory" else 1000
    if args.hold_s is None:
        args.hold_s = 30.0 if args.mode == "memory" else 240.0
    if args.preload is None and args.mode == "ramp":
        args.preload = "psycopg"  # the floor's parent imported psycopg alone
    if args.measure:
        return _measure(args)
    sys.path.insert(0, str(ROOT))
    from connstorm.local_stack.lambda_.server import raise_nofile_limit
    from connstorm.local_stack.postgres import PostgresServer
    from connstorm.scenario import PostgresConfig

    raise_nofile_limit()
    checkouts = [("after", ROOT)]
    if args.before is not None:
        checkouts.insert(0, ("before", args.before.resolve()))
    rows: list[dict[str, Any]] = []
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="connstorm-envcost-") as tmp:
        pg_config = PostgresConfig(max_connections=args.envs + 50,
                                   settings={"max_connections": args.envs + 50,
                                             "superuser_reserved_connections": 3})
        with PostgresServer(pg_config, Path(tmp) / "pg") as pg:
            common = ["--envs", str(args.envs), "--hold-s", str(args.hold_s), "--measure",
                      "--dsn", pg.app_dsn, "--admin-dsn", pg.admin_dsn]
            if args.preload is not None:
                common += ["--preload", args.preload]
            for rnd in range(1, args.rounds + 1):
                runs = [("floor", ROOT)] if args.mode == "ramp" else []
                runs += checkouts
                for label, checkout in runs:
                    mode = "floor" if label == "floor" else args.mode
                    load = os.getloadavg()[0]
                    doc = _run_child(checkout / ".venv" / "bin" / "python", checkout,
                                     [mode, *common])
                    doc.update({"round": rnd, "label": label, "load_before": round(load, 2)})
                    rows.append(doc)
                    print(json.dumps(doc), flush=True)
                    _wait_disconnected(pg.admin_dsn)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}\n")
    _print_table(args.mode, rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _print_table(mode: str, rows: list[dict[str, Any]]) -> None:
    if mode == "memory":
        print("| round | code | load | PSS MB mean | median | private kB | shared kB | "
              "Pss_Anon kB | Pss_File kB | zygote PSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            private = r["Private_Clean_kb_mean"] + r["Private_Dirty_kb_mean"]
            shared = r["Shared_Clean_kb_mean"] + r["Shared_Dirty_kb_mean"]
            print(f"| {r['round']} | {r['label']} | {r['load_before']} | {r['pss_mb_mean']} | "
                  f"{r['pss_mb_median']} | {private:.0f} | {shared:.0f} | "
                  f"{r['Pss_Anon_kb_mean']:.0f} | {r['Pss_File_kb_mean']:.0f} | "
                  f"{r['zygote']['Pss'] / 1024:.1f} |")
        return
    print("| round | code | load | time to all N s | x floor | CPU s: emulator / zygote "
          "(forking parent) / environments (children) / backends |")
    print("|---|---|---|---|---|---|")
    floors = {r["round"]: r["time_s"] for r in rows if r["label"] == "floor"}
    for r in rows:
        ratio = (r["time_s"] / floors[r["round"]]) if r["time_s"] else float("nan")
        cpu = (f"- / {r['cpu_s_parent']} / {r['cpu_s_children']} / {r['cpu_s_backends']}"
               if r["label"] == "floor"
               else f"{r['cpu_s_emulator']} / {r['cpu_s_zygote']} / "
                    f"{r['cpu_s_environments']} / {r['cpu_s_backends']}")
        print(f"| {r['round']} | {r['label']} | {r['load_before']} | {r['time_s']} | "
              f"{ratio:.2f} | {cpu} |")


if __name__ == "__main__":
    sys.exit(main())
