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
clients at least 0.15x the baseline's throughput; p50 under 1 ms at one client.
Traffic goes only to 127.0.0.1, bounded in time. Speed is reported, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
def _server(argv: list[str], ready: Path, log: Path,
            timeout_s: float = 60) -> Iterator[tuple[str, int]]:
    """Run a server process that writes ``{"port", "pid"}`` to ``ready``; yield URL and pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=preexec_death_signal,
                                cwd=str(ROOT))
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


def emulator_argv(config: Path, ready: Path) -> list[str]:
    """The emulator server, as the stack starts it, dying with this process."""
    return [sys.executable, "-m", "connstorm.local_stack.lambda_", "--config", str(config),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration-s", type=float, default=10.0, help="each wrk run")
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    load_before = f"{os.getloadavg()[0]:.1f}"

    with tempfile.TemporaryDirectory(prefix="connstorm-bench-") as tmp:
        work = Path(tmp)
        lua = work / "report.lua"
        lua.write_text(LUA)
        fn = FunctionConfig(name="noop", handler="noop_handler.lambda_handler",
                            code_dir=str(ROOT / "benchmarks" / "handlers"), database="none",
                            preload=())
        routes = (RouteConfig("GET", "/noop", "noop", "2.0"),
                  RouteConfig("GET", "/noop-rest", "noop", "1.0"))
        config = EmulatorConfig(account=LambdaConfig(freeze=True), functions=(fn,),
                                routes=routes, run_dir=str(work / "run"))
        config.write(work / "emulator.json")
        normal = EmulatorConfig(account=LambdaConfig(freeze=True, realtime_priority=False),
                                functions=(fn,), routes=routes, run_dir=str(work / "run-normal"))
        normal.write(work / "normal.json")
        hello_argv = [sys.executable, "-c", HELLO, str(work / "hello.ready")]
        emu_argv = emulator_argv(work / "emulator.json", work / "emu.ready")
        normal_argv = emulator_argv(work / "normal.json", work / "normal.ready")
        front_argv = [sys.executable, "-c", FRONT_ONLY, str(work / "front.ready")]
        with _server(hello_argv, work / "hello.ready", work / "hello.log") as (hello, hello_pid), \
                _server(front_argv, work / "front.ready", work / "fr.log") as (front, front_pid), \
                _server(emu_argv, work / "emu.ready", work / "emulator.log") as (emu, emu_pid), \
                _server(normal_argv, work / "normal.ready", work / "normal.log") as (
                    slow, slow_pid):
            scheduling = {"emulator": _scheduling(emu), "normal": _scheduling(slow)}
            targets = [
                ("aiohttp hello (baseline)", f"{hello}/", None, hello_pid),
                ("front alone, instant invoker", f"{front}/noop", None, front_pid),
                ("front, payload 2.0", f"{emu}/noop", None, emu_pid),
                (f"front, payload 2.0, {scheduling['normal']} priority", f"{slow}/noop", None,
                 slow_pid),
                ("front, payload 1.0", f"{emu}/noop-rest", None, emu_pid),
                ("Invoke API", f"{emu}/2015-03-31/functions/noop/invocations", "POST", emu_pid),
            ]
            # Warm-up: create as many environments as the widest run needs.
            wrk(f"{emu}/noop", max(conns), args.warmup_s, lua)
            wrk(f"{slow}/noop", max(conns), args.warmup_s, lua)
            wrk(f"{hello}/", max(conns), args.warmup_s, lua)
            before = _stats(emu)
            results: list[dict[str, Any]] = []
            for c in conns:
                for name, url, method, pid in targets:
                    before_cpu = cpu_s(pid)
                    r = wrk(url, c, args.duration_s, lua, method, "{}")
                    # Server CPU per request: robust where wall-clock figures are not
                    # (this machine is shared); excludes the environments' own CPU.
                    r["server_cpu_us"] = (cpu_s(pid) - before_cpu) * 1e6 / max(r["requests"], 1)
                    r["target"] = name
                    results.append(r)
            after = _stats(emu)
    base = {r["connections"]: r["rps"] for r in results if "baseline" in r["target"]}
    print(f"wrk -t1, {args.duration_s:g} s per run, warm environments, freeze on\n")
    print(f"load average before: {load_before}, after: {os.getloadavg()[0]:.1f}")
    print(f"emulator scheduling: {scheduling['emulator']} (the second one: "
          f"{scheduling['normal']})\n")
    print("| target | clients | req/s | x baseline | p50 ms | p90 ms | p99 ms | server CPU "
          "us/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = r["rps"] / base[r["connections"]]
        r["x_baseline"] = ratio
        print(f"| {r['target']} | {r['connections']} | {r['rps']:,.0f} | {ratio:.2f} | "
              f"{r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | "
              f"{r['server_cpu_us']:.0f} | {r['errors'] + r['non2xx']} |")
    cold = after["cold_starts"] - before["cold_starts"]
    print(f"\nduring the measured runs: {after['invocations'] - before['invocations']:,} "
          f"invocations, {cold} cold starts, {after['throttles'] - before['throttles']} "
          f"throttles, {after['errors'] - before['errors']} errors; "
          f"environments alive: {after['env_total']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "cold_starts": cold},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
