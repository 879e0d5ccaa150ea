"""Cold start: spawn of an execution environment to its first ``/next``.

Two ways side by side, with the same no-op handler (so the handler's own init
is ~0) and the real awslambdaric:

* **zygote**: the emulator's way, a fork of a process that has preloaded
  awslambdaric's Python modules (plus psycopg, as a function would); measured
  by the emulator itself as Init Duration (spawn request -> first ``/next``);
* **fresh**: ``python -m awslambdaric`` as a new interpreter, as other local
  emulators start a runtime; measured from ``Popen`` to its first ``/next``
  against a minimal Runtime API listener.

Cold starts run one at a time (each environment is retired right after its
invocation with ``max_lifetime_s``), so the figures are per start, not under
contention. Usage::

    .venv/bin/python benchmarks/emulator_cold_start.py --runs 40
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
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


async def zygote_cold_starts(runs: int, run_dir: Path,
                             preload: tuple[str, ...]) -> list[float]:
    """Init Duration of ``runs`` environments forked from the zygote, one at a time."""
    fn = FunctionConfig(name="noop", handler="noop_handler.lambda_handler",
                        code_dir=str(FIXTURES), preload=preload, max_lifetime_s=0.1)
    config = EmulatorConfig(account=LambdaConfig(), functions=(fn,), run_dir=str(run_dir))
    out: list[float] = []
    async with Emulator(config) as emu:
        for _ in range(runs):
            result = await emu.invoke(InvocationRequest("noop", b"{}"))
            if not result.cold or result.init_ms is None:
                raise RuntimeError(f"expected a cold start, got {result}")
            out.append(result.init_ms)
            await asyncio.sleep(0.12)  # past max_lifetime_s: the next one is cold again
    return out


async def fresh_cold_starts(runs: int) -> list[float]:
    """Popen -> first /next of a fresh ``python -m awslambdaric`` interpreter."""
    loop = asyncio.get_running_loop()
    out: list[float] = []
    for _ in range(runs):
        got_next: asyncio.Future[float] = loop.create_future()

        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          fut: asyncio.Future[float] = got_next) -> None:
            line = await reader.readline()
            if b"/invocation/next" in line and not fut.done():
                fut.set_result(time.perf_counter())
            await reader.read()  # until the runtime is killed
            writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
               "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11"}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "awslambdaric",
                                 "noop_handler.lambda_handler"], cwd=str(FIXTURES), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            out.append((await asyncio.wait_for(got_next, 30) - started) * 1000)
        finally:
            proc.kill()
            proc.wait()
            server.close()
    return out


def _summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return (f"| {name} | {len(values)} | {statistics.median(values):.1f} | {p90:.1f} | "
            f"{values[0]:.1f} | {values[-1]:.1f} |")


def main() -> None:
    """Run both measurements and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    default_preload = FunctionConfig(name="x", handler="m.h").preload
    with tempfile.TemporaryDirectory(prefix="connstorm-coldstart-") as tmp:
        small = uvloop.run(zygote_cold_starts(args.runs, Path(tmp) / "a", ("psycopg",)))
        full = uvloop.run(zygote_cold_starts(args.runs, Path(tmp) / "b", default_preload))
    fresh = uvloop.run(fresh_cold_starts(args.runs))
    print("| way | runs | median ms | p90 ms | min ms | max ms |")
    print("|---|---|---|---|---|---|")
    print(_summary("fork of the zygote, preload psycopg", small))
    print(_summary(f"fork of the zygote, default preload {', '.join(default_preload)}", full))
    print(_summary("fresh `python -m awslambdaric`", fresh))


if __name__ == "__main__":
    main()
