"""Warm invocations through the API Gateway front, side by side with a bare aiohttp "hello".

Run: ``.venv/bin/python benchmarks/emulator_warm.py [--duration-s 10]``

Starts, in one run on this machine:

- a baseline: a minimal aiohttp "hello" server on uvloop, in its own process (the
  issue's yardstick; the emulator's own listener is a bare httptools protocol);
- the front alone (``connstorm.local_stack.lambda_.front`` on ``http_server``) in front of an
  invoker that answers at once: what the HTTP side costs by itself;
- the real emulator server process (``python -m connstorm.local_stack.lambda_``) with one
  no-op function (``benchmarks/handlers/noop_handler.py``) behind a payload 2.0
  route, a payload 1.0 route and the Invoke API; real awslambdaric environments,
  freeze on (SIGSTOP/SIGCONT around every invocation);
- the same server with ``[lambda] realtime_priority = false``, on the payload 2.0
  route: what the emulator's real-time priority (``local_stack/priority.py``)
  buys, side by side.

Then drives each with ``wrk -t1`` at 1 and 32 connections after a warm-up that
creates the environments, and prints throughput and p50/p99 latency (wrk's own
histogram, read through a small Lua ``done`` hook). Targets (issue 3): at 32
clients at least 0.15x the baseline's throughput; p50 under 1 ms at one client;
issue 24: at 32 clients at least 0.30x.

On a shared machine the baseline itself swings by half from one 10 s run to the
next, so ``--rounds N`` measures every target N times, in an order that rotates
each round, and reports each round's ratio to the baseline of that round and
their median. ``--before DIR`` also runs another checkout's emulator (DIR, with
its own ``.venv``) on the payload 2.0 route in every round, side by side.
``--targets`` picks targets by key (``hello`` always runs). Besides the server's
own CPU per request, the table shows its descendants' (the zygote and the
environments): the other half of every warm invocation's cost.
Traffic goes only to 127.0.0.1, bounded in time. Speed is reported, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connstorm.local_stack.deathsig import preexec_death_signal  # noqa: E402
from connstorm.local_stack.lambda_.config import EmulatorConfig  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig, RouteConfig  # noqa: E402

WRK = shutil.which("wrk") or "/usr/bin/wrk"

LUA = r"""
local method = os.getenv("WRK_METHOD")
if method then
  wrk.method = method
  wrk.body = os.getenv("WRK_BODY") or ""
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""

HELLO = r"""
import json, os, sys
import uvloop
from aiohttp import web

async def hello(request):
    return web.Response(text="hello")

async def main(ready):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": port, "pid": os.getpid()}, f)
    os.replace(tmp, ready)
    import asyncio
    await asyncio.Event().wait()

uvloop.run(main(sys.argv[1]))
"""


# The front alone, in front of an invoker that answers at once: what the HTTP side
# itself costs, with no execution environment behind it.
FRONT_ONLY = r"""
import asyncio, json, os, sys
import uvloop
from connstorm.local_stack.lambda_.front import MAX_PAYLOAD_BYTES, Front
from connstorm.local_stack.lambda_.http_server import HttpServer
from connstorm.local_stack.lambda_.invocation import InvocationResult
from connstorm.local_stack.lambda_.routes import SimpleRoute

class Instant:
    def has_function(self, name):
        return True
    def submit(self, request):
        future = asyncio.get_running_loop().create_future()
        future.set_result(InvocationResult(request_id="r", outcome="success",
                                           payload=b'{"statusCode": 200, "body": "ok"}'))
        return future

async def main(ready):
    front = Front(Instant(), [SimpleRoute("GET", "/noop", "noop", "2.0")])
    server = HttpServer(front.handle, max_body_bytes=MAX_PAYLOAD_BYTES)
    port = await server.start("127.0.0.1", 0)
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": port, "pid": os.getpid()}, f)
    os.replace(tmp, ready)
    await asyncio.Event().wait()

uvloop.run(main(sys.argv[1]))
"""


@contextmanager
def _server(argv: list[str], ready: Path, log: Path, timeout_s: float = 60,
            cwd: Path = ROOT) -> Iterator[tuple[str, int]]:
    """Run a server process that writes ``{"port", "pid"}`` to ``ready``; yield URL and pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=preexec_death_signal,
                                cwd=str(cwd))
    try:
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} did not start:\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        doc = json.loads(ready.read_text())
        yield f"http://127.0.0.1:{doc['port']}", int(doc["pid"])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wrk(url: str, connections: int, duration_s: float, lua: Path,
        method: str | None = None, body: str = "") -> dict[str, Any]:
    """One wrk run; returns its summary (requests/s, latency percentiles in ms)."""
    env = dict(os.environ)
    if method:
        env["WRK_METHOD"], env["WRK_BODY"] = method, body
    out = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "10s",
         "-s", str(lua), url], capture_output=True, text=True, env=env,
        timeout=duration_s + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    doc = json.loads(line.removeprefix("WRKJSON "))
    seconds = doc["duration_us"] / 1e6
    return {"connections": connections, "requests": doc["requests"],
            "rps": doc["requests"] / seconds, "p50_ms": doc["p50_us"] / 1000,
            "p90_ms": doc["p90_us"] / 1000, "p99_ms": doc["p99_us"] / 1000,
            "max_ms": doc["max_us"] / 1000, "errors": doc["socket_errors"],
            "non2xx": doc["non2xx"]}


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (an emulator's zygotes and environments)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [pid]
    while todo:
        pid = todo.pop()
        kids = [c for c, pp in parent.items() if pp == pid]
        out += kids
        todo += kids
    return out


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds of processes (those gone since count 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_s(pid)
        except OSError:
            continue
    return total


def emulator_argv(config: Path, ready: Path, python: str = sys.executable) -> list[str]:
    """The emulator server, as the stack starts it, dying with this process."""
    return [python, "-m", "connstorm.local_stack.lambda_", "--config", str(config),
            "--ready-file", str(ready), "--parent-pid", str(os.getpid())]


def _all_stats(url: str) -> dict[str, Any]:
    import urllib.request
    with urllib.request.urlopen(f"{url}/_connstorm/stats", timeout=10) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def _stats(url: str) -> dict[str, Any]:
    doc: dict[str, Any] = _all_stats(url)["functions"]["noop"]
    return doc


def _scheduling(url: str) -> str:
    return str(_all_stats(url).get("scheduling", "normal"))


#: Target key -> its name in the table; ``hello`` is the baseline of every round.
TARGETS = {"hello": "aiohttp hello (baseline)", "front": "front alone, instant invoker",
           "v2": "front, payload 2.0", "normal": "front, payload 2.0, {normal} priority",
           "v1": "front, payload 1.0", "invoke": "Invoke API",
           "before": "front, payload 2.0, before ({before})"}


def _measure(url: str, conns: int, duration_s: float, lua: Path, method: str | None,
             pid: int) -> dict[str, Any]:
    """One wrk run against ``url``, with the CPU per request of the server and of the
    processes under it (an emulator's zygotes and environments)."""
    kids = descendants(pid)
    before_cpu, before_kids = cpu_s(pid), tree_cpu_s(kids)
    r = wrk(url, conns, duration_s, lua, method, "{}")
    # Server CPU per request: robust where wall-clock figures are not
    # (this machine is shared).
    n = max(r["requests"], 1)
    r["server_cpu_us"] = (cpu_s(pid) - before_cpu) * 1e6 / n
    r["children_cpu_us"] = (tree_cpu_s(kids) - before_kids) * 1e6 / n
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration-s", type=float, default=10.0, help="each wrk run")
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every target this many times, alternating")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="another checkout (with its .venv) whose emulator runs beside")
    parser.add_argument("--targets", default="front,v2,normal,v1,invoke",
                        help=f"comma-separated keys of: {', '.join(TARGETS)} "
                             "(hello always runs; before with --before)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    keys = ["hello"] + [k for k in args.targets.split(",") if k and k != "hello"]
    unknown = sorted(set(keys) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    before_python = None
    if args.before is not None:
        before_python = args.before / ".venv" / "bin" / "python"
        if not before_python.exists():
            parser.error(f"--before {args.before}: no {before_python}")
        if "before" not in keys:
            keys.append("before")
    elif "before" in keys:
        parser.error("target 'before' needs --before DIR")
    load_before = f"{os.getloadavg()[0]:.1f}"

    with tempfile.TemporaryDirectory(prefix="connstorm-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        lua = work / "report.lua"
        lua.write_text(LUA)
        fn = FunctionConfig(name="noop", handler="noop_handler.lambda_handler",
                            code_dir=str(ROOT / "benchmarks" / "handlers"), database="none",
                            preload=())
        routes = (RouteConfig("GET", "/noop", "noop", "2.0"),
                  RouteConfig("GET", "/noop-rest", "noop", "1.0"))

        def emulator(name: str, python: str = sys.executable, cwd: Path = ROOT,
                     **account: Any) -> tuple[str, int]:
            config = EmulatorConfig(account=LambdaConfig(freeze=True, **account),
                                    functions=(fn,), routes=routes,
                                    run_dir=str(work / f"run-{name}"))
            config.write(work / f"{name}.json")
            return stack.enter_context(_server(
                emulator_argv(work / f"{name}.json", work / f"{name}.ready", python),
                work / f"{name}.ready", work / f"{name}.log", cwd=cwd))

        hello, hello_pid = stack.enter_context(_server(
            [sys.executable, "-c", HELLO, str(work / "hello.ready")], work / "hello.ready",
            work / "hello.log"))
        urls: dict[str, tuple[str, str | None, int]] = {"hello": (f"{hello}/", None, hello_pid)}
        scheduling: dict[str, str] = {}
        if "front" in keys:
            front, front_pid = stack.enter_context(_server(
                [sys.executable, "-c", FRONT_ONLY, str(work / "front.ready")],
                work / "front.ready", work / "fr.log"))
            urls["front"] = (f"{front}/noop", None, front_pid)
        emu, emu_pid = emulator("emulator")
        scheduling["emulator"] = _scheduling(emu)
        urls["v2"] = (f"{emu}/noop", None, emu_pid)
        urls["v1"] = (f"{emu}/noop-rest", None, emu_pid)
        urls["invoke"] = (f"{emu}/2015-03-31/functions/noop/invocations", "POST", emu_pid)
        if "normal" in keys:
            slow, slow_pid = emulator("normal", realtime_priority=False)
            scheduling["normal"] = _scheduling(slow)
            urls["normal"] = (f"{slow}/noop", None, slow_pid)
        if before_python is not None:
            old, old_pid = emulator("before", str(before_python), cwd=args.before)
            urls["before"] = (f"{old}/noop", None, old_pid)
        # Warm-up: create as many environments as the widest run needs.
        for key in ("v2", "normal", "before", "hello"):
            if key in urls:
                wrk(urls[key][0], max(conns), args.warmup_s, lua)
        stats_before = _stats(emu)
        results: list[dict[str, Any]] = []
        for rnd in range(args.rounds):
            order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
            for c in conns:
                for key in order:
                    url, method, pid = urls[key]
                    r = _measure(url, c, args.duration_s, lua, method, pid)
                    r.update(key=key, round=rnd + 1, target=TARGETS[key].format(
                        normal=scheduling.get("normal", "normal"), before=args.before))
                    results.append(r)
        stats_after = _stats(emu)
    base = {(r["round"], r["connections"]): r["rps"] for r in results if r["key"] == "hello"}
    for r in results:
        r["x_baseline"] = r["rps"] / base[(r["round"], r["connections"])]
    print(f"wrk -t1, {args.duration_s:g} s per run, warm environments, freeze on, "
          f"{args.rounds} round(s)\n")
    print(f"load average before: {load_before}, after: {os.getloadavg()[0]:.1f}")
    print(f"emulator scheduling: {scheduling['emulator']}\n")
    print("| target | clients | round | req/s | x baseline | p50 ms | p90 ms | p99 ms | "
          "server CPU us/req | its children's CPU us/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['target']} | {r['connections']} | {r['round']} | {r['rps']:,.0f} | "
              f"{r['x_baseline']:.2f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
              f"{r['p99_ms']:.3f} | {r['server_cpu_us']:.0f} | {r['children_cpu_us']:.0f} | "
              f"{r['errors'] + r['non2xx']} |")
    if args.rounds > 1:
        print("\n| target | clients | x baseline, median (range) | req/s, median | "
              "server + children CPU us/req, median |")
        print("|---|---|---|---|---|")
        for c in conns:
            for key in keys:
                rows = [r for r in results if r["key"] == key and r["connections"] == c]
                ratios = [r["x_baseline"] for r in rows]
                cpu = [r["server_cpu_us"] + r["children_cpu_us"] for r in rows]
                print(f"| {rows[0]['target']} | {c} | {statistics.median(ratios):.3f} "
                      f"({min(ratios):.2f}-{max(ratios):.2f}) | "
                      f"{statistics.median(r['rps'] for r in rows):,.0f} | "
                      f"{statistics.median(cpu):.0f} |")
    cold = stats_after["cold_starts"] - stats_before["cold_starts"]
    print(f"\nduring the measured runs (this checkout's emulator): "
          f"{stats_after['invocations'] - stats_before['invocations']:,} "
          f"invocations, {cold} cold starts, "
          f"{stats_after['throttles'] - stats_before['throttles']} "
          f"throttles, {stats_after['errors'] - stats_before['errors']} errors; "
          f"environments alive: {stats_after['env_total']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "cold_starts": cold},
                                              indent=1))
    return 0

if __name__ == "__main__":
    sys.exit(main())
