"""Warm invocations through the emulator core alone (no HTTP front), freeze on.

What the Runtime API hot path and the core's bookkeeping cost: C in-process
callers loop on ``Emulator.invoke`` against a no-op function, so every
invocation is SIGCONT, ``/next`` answer, handler, ``/response``, ``/next``,
SIGSTOP on a real awslambdaric environment. The guide's calibration for this
shape (eight environments behind a bare aiohttp Runtime API, driven
in-process, freeze on) is about 4,180 invocations/s on this 2-core machine.
Usage::

    .venv/bin/python benchmarks/emulator_core_warm.py --duration-s 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connstorm.local_stack.lambda_.config import EmulatorConfig  # noqa: E402
from connstorm.local_stack.lambda_.emulator import Emulator  # noqa: E402
from connstorm.local_stack.lambda_.invocation import InvocationRequest  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig  # noqa: E402

FIXTURES = ROOT / "tests" / "local_stack" / "lambda_" / "fixture_handlers"


async def drive(emu: Emulator, clients: int, duration_s: float) -> tuple[int, list[float]]:
    """``clients`` loops invoking for ``duration_s``; returns count and latencies (ms)."""
    request = InvocationRequest("noop", b"{}")
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def client() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            result = await emu.invoke(request)
            latencies.append((time.perf_counter() - t0) * 1000)
            if result.outcome != "success":
                raise RuntimeError(f"invocation failed: {result}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies), latencies


async def main_async(duration_s: float) -> None:
    """Warm up the environments, then measure at 1 and 8 clients."""
    fn = FunctionConfig(name="noop", handler="noop_handler.lambda_handler",
                        code_dir=str(FIXTURES), preload=())
    with tempfile.TemporaryDirectory(prefix="connstorm-warm-") as tmp:
        config = EmulatorConfig(account=LambdaConfig(), functions=(fn,), run_dir=tmp)
        async with Emulator(config) as emu:
            await drive(emu, 8, 1.0)
            print("| clients | environments | invocations/s | p50 ms | p99 ms |")
            print("|---|---|---|---|---|")
            for clients in (1, 8):
                count, lat = await drive(emu, clients, duration_s)
                lat.sort()
                print(f"| {clients} | {emu.stats()['env_total']} | {count / duration_s:,.0f} | "
                      f"{statistics.median(lat):.3f} | {lat[int(0.99 * (len(lat) - 1))]:.3f} |")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    args = parser.parse_args()
    uvloop.run(main_async(args.duration_s))


if __name__ == "__main__":
    main()
