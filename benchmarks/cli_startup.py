"""Start-up of ``connstorm --version`` and ``connstorm schema``, beside a bare interpreter.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--rounds 20] [--before DIR]``

Each command is a fresh process, timed from outside (wall clock around the
whole process, and its user + system CPU from ``getrusage(RUSAGE_CHILDREN)``),
in turn within each round so that a drift of the machine's speed hits all of
them alike. The floor is ``python -c pass`` of the same virtualenv: the
interpreter and ``site`` (the editable install's finder included), which no
change to connstorm can remove. ``--before DIR`` also times another checkout's
``DIR/.venv/bin/connstorm`` in the same rounds (the pre-change code in a git
worktree, for a before/after pair measured together). ``PYTHONDONTWRITEBYTECODE``
is dropped and one unmeasured run of each command writes the bytecode caches, as
a user's first run would. Where the time goes: ``python -X importtime -m
connstorm schema``. Target (issue 24): at most 0.25 s each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv`` (its output thrown away)."""
    cpu = _children_cpu_s()
    started = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env, check=True, timeout=60)
    return time.perf_counter() - started, _children_cpu_s() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="another checkout whose .venv/bin/connstorm is timed alongside")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    venv_bin = Path(sys.executable).parent
    commands: dict[str, list[str]] = {"python -c pass (floor)": [sys.executable, "-c", "pass"]}
    checkouts = [("", venv_bin / "connstorm")]
    if args.before is not None:
        checkouts.insert(0, ("before: ", args.before / ".venv" / "bin" / "connstorm"))
    for label, exe in checkouts:
        commands[f"{label}connstorm --version"] = [str(exe), "--version"]
        commands[f"{label}connstorm schema"] = [str(exe), "schema"]
    for argv in commands.values():
        timed(argv, env)  # writes __pycache__, warms the page cache
    load_before = os.getloadavg()
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():
            w, c = timed(argv, env)
            wall[name].append(w)
            cpu[name].append(c)
    print(f"{args.rounds} rounds; load average before {load_before[0]:.2f}, after "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| command | wall s, median | wall s, min | CPU s, median |")
    print("|---|---|---|---|")
    for name in commands:
        print(f"| {name} | {statistics.median(wall[name]):.3f} | {min(wall[name]):.3f} | "
              f"{statistics.median(cpu[name]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
