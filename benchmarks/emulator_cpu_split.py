"""Where the CPU of a warm invocation goes: the emulator process against its environments.

Run: ``.venv/bin/python benchmarks/emulator_cpu_split.py [--clients 1,4,32] [--duration-s 10]
[--variants realtime,normal,no-freeze]``

Starts the real emulator server (``python -m connstorm.local_stack.lambda_``) with the
no-op function of the warm benchmark behind a payload 2.0 route, drives it with
``wrk -t1`` at each client count (after a warm-up that creates the
environments), and reports per invocation: the emulator process's user and
system CPU, the environments' CPU (all processes under the emulator), and how
busy the machine was, and how often the emulator was preempted (involuntary
context switches per invocation). Variants, run side by side: ``realtime`` (the
default server), ``normal`` (``[lambda] realtime_priority = false``) and
``no-freeze`` (real-time, ``[lambda] freeze = false``: what freezing costs).
On a small machine the emulator process is the serial part
of every invocation, so its CPU per invocation bounds the throughput; the
environments' share grows with their number (each is its own interpreter, and 32
of them share two cores' caches). Traffic goes only to 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import emulator_warm as warm  # noqa: E402

from connstorm.local_stack.lambda_.config import EmulatorConfig  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig, RouteConfig  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def preempted(pid: int) -> int:
    """Involuntary context switches of a process's main thread so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


#: Variant name -> the ``[lambda]`` settings it runs with.
VARIANTS = {"realtime": {}, "normal": {"realtime_priority": False},
            "no-freeze": {"freeze": False}}


def machine() -> tuple[int, int]:
    """All and idle jiffies of the machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", default="1,4,32")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--variants", default="realtime",
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    print(f"load average before: {os.getloadavg()[0]:.1f}\n")
    print("| variant | clients | invocations/s | p50 ms | emulator user us | emulator sys us | "
          "environments us | machine busy | emulator preempted /inv |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, variant in [(c, v) for c in clients for v in variants]:
        with tempfile.TemporaryDirectory(prefix="connstorm-bench-") as tmp:
            work = Path(tmp)
            lua = work / "report.lua"
            lua.write_text(warm.LUA)
            fn = FunctionConfig(name="noop", handler="noop_handler.lambda_handler",
                                code_dir=str(ROOT / "benchmarks" / "handlers"),
                                database="none", preload=())
            config = EmulatorConfig(account=LambdaConfig(**VARIANTS[variant]), functions=(fn,),
                                    routes=(RouteConfig("GET", "/noop", "noop", "2.0"),),
                                    run_dir=str(work / "run"))
            config.write(work / "emulator.json")
            argv = warm.emulator_argv(work / "emulator.json", work / "emu.ready")
            with warm._server(argv, work / "emu.ready", work / "emulator.log") as (url, pid):
                warm.wrk(f"{url}/noop", c, 3, lua)
                envs = warm.descendants(pid)
                user0, sys0 = times(pid)
                pre0 = preempted(pid)
                envs0 = warm.tree_cpu_s(envs)
                all0, idle0 = machine()
                r = warm.wrk(f"{url}/noop", c, args.duration_s, lua)
                user1, sys1 = times(pid)
                pre1 = preempted(pid)
                envs1 = warm.tree_cpu_s(envs)
                all1, idle1 = machine()
        n = max(r["requests"], 1)
        busy = 1 - (idle1 - idle0) / max(all1 - all0, 1)
        print(f"| {variant} | {c} | {r['rps']:,.0f} | {r['p50_ms']:.3f} | "
              f"{(user1 - user0) * 1e6 / n:.0f} | {(sys1 - sys0) * 1e6 / n:.0f} | "
              f"{(envs1 - envs0) * 1e6 / n:.0f} | {busy * 100:.0f} % | "
              f"{(pre1 - pre0) / n:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
