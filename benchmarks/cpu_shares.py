"""CPU share by memory size: a busy-loop handler's Duration per memory size, shares on and off.

With ``[lambda] cpu_shares = true`` each environment runs in a cgroup with
``memory_mb / 1769`` of a CPU (``local_stack/lambda_/cpu_shares.py``), as
Lambda sizes CPU by memory. A handler that burns a fixed amount of CPU (a
Python loop of ``--n`` iterations, no I/O) then takes longer the smaller the
function, and so holds whatever connection it has open that much longer. For
each memory size: one cold start (Init apart), then ``--runs`` warm
invocations one at a time; the figures are their Duration (median, min, max).
Needs a writable cgroup with a CPU controller (root in a container with cgroup
v1 ``cpu``, or a delegated cgroup v2); without one the "on" column is absent.
Usage::

    .venv/bin/python benchmarks/cpu_shares.py --runs 5 --n 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connstorm.local_stack.lambda_.config import EmulatorConfig  # noqa: E402
from connstorm.local_stack.lambda_.emulator import Emulator  # noqa: E402
from connstorm.local_stack.lambda_.invocation import InvocationRequest  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig  # noqa: E402

FIXTURES = ROOT / "tests" / "local_stack" / "lambda_" / "fixture_handlers"
SIZES = (128, 256, 512, 1024, 1769, 3538)


async def durations(sizes: tuple[int, ...], shares: bool, runs: int, n: int,
                    run_dir: Path) -> tuple[dict[int, list[float]], bool]:
    """Warm Durations (ms) per memory size, and whether shares were really on."""
    functions = tuple(FunctionConfig(name=f"spin{m}", handler="spin_handler.lambda_handler",
                                     code_dir=str(FIXTURES), preload=(), memory_mb=m,
                                     database="none") for m in sizes)
    config = EmulatorConfig(account=LambdaConfig(cpu_shares=shares), functions=functions,
                            run_dir=str(run_dir))
    payload = f'{{"n": {n}}}'.encode()
    out: dict[int, list[float]] = {}
    async with Emulator(config) as emu:
        active = emu.cpu_shares is not None
        for m in sizes:
            await emu.invoke(InvocationRequest(f"spin{m}", payload))
            out[m] = []
            for _ in range(runs):
                result = await emu.invoke(InvocationRequest(f"spin{m}", payload))
                if result.outcome != "success" or result.duration_ms is None:
                    raise RuntimeError(f"spin{m}: {result}")
                out[m].append(result.duration_ms)
    return out, active


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=1_000_000, help="loop iterations per call")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        off, _ = uvloop.run(durations(SIZES, False, args.runs, args.n, Path(tmp) / "off"))
        on, active = uvloop.run(durations(SIZES, True, args.runs, args.n, Path(tmp) / "on"))
    print(f"load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}; "
          f"{args.runs} warm runs per size, n={args.n}; shares {'on' if active else 'unavailable'}")
    print("| memory (MB) | CPU share | Duration, shares off (ms, median [min-max]) "
          "| Duration, shares on (ms, median [min-max]) | on / off |")
    print("|---|---|---|---|---|")
    for m in SIZES:
        on_cell = _cell(on[m]) if active else "n/a"
        ratio = f"{statistics.median(on[m]) / statistics.median(off[m]):.1f}x" if active else "n/a"
        print(f"| {m} | {m / 1769:.3f} | {_cell(off[m])} | {on_cell} | {ratio} |")


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"

if __name__ == "__main__":
    main()
