"""Scenario load time: the pydantic model against the hand-written parser it replaced.

Users pay for loading a scenario on every command, and the test suite loads
hundreds. Two figures, each for the old and the new model side by side in one
run on the same machine:

* **cold**: a fresh interpreter that imports the model and loads one scenario
  (what ``connstorm up`` pays before it does anything else), median of
  ``--rounds`` runs, minus a fresh interpreter that only imports ``connstorm.errors``;
* **warm**: one more load in a running process (overrides applied, every
  built-in scenario), median per load.

The old model is read from git (commit ``ebd5e8a``, the last one before the
rewrite) into a temporary folder, so the baseline is the code that shipped,
not a copy kept here. Target: a load under 50 ms.

    .venv/bin/python benchmarks/scenario_load.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "ebd5e8a"
SCENARIOS = ("direct-small", "pgbouncer-transaction", "pgbouncer-session", "ci-smoke")

_COLD = """
import time
t = time.perf_counter()
import {module} as m
m.load_scenario({path!r}, overrides=["postgres.max_connections=30"])
print(time.perf_counter() - t)
"""
_WARM = """
import statistics, time
import {module} as m
paths = {paths!r}
samples = []
for _ in range({loads}):
    for p in paths:
        t = time.perf_counter()
        m.load_scenario(p, overrides=["postgres.max_connections=30"])
        samples.append(time.perf_counter() - t)
print(statistics.median(samples))
"""


def _baseline(folder: Path) -> str:
    """Write the old scenario module as ``scenario_before.py`` in ``folder``."""
    text = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:connstorm/scenario.py"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    # Its built-in folder is relative to its own file: point it at the checkout's.
    text = text.replace('Path(__file__).resolve().parent.parent / "loadtests" / "scenarios"',
                        repr(str(ROOT / "loadtests" / "scenarios")) + " and Path(" +
                        repr(str(ROOT / "loadtests" / "scenarios")) + ")")
    (folder / "scenario_before.py").write_text(text, encoding="utf-8")
    return "scenario_before"


def _python(code: str, path_extra: Path) -> float:
    env_path = f"{path_extra}:{ROOT}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONPATH": env_path,
                                                    "PATH": "/usr/bin:/bin"})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--loads", type=int, default=50, help="warm loads per scenario")
    args = parser.parse_args()
    paths = [str(ROOT / "loadtests" / "scenarios" / f"{n}.toml") for n in SCENARIOS]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = _baseline(folder)
        rows = []
        for label, module in (("old (hand-written, ebd5e8a)", old),
                              ("new (pydantic)", "connstorm.scenario")):
            base = statistics.median(
                _python("import time; t = time.perf_counter(); import connstorm.errors; "
                        "print(time.perf_counter() - t)", folder) for _ in range(args.rounds))
            cold = statistics.median(
                _python(_COLD.format(module=module, path=paths[0]), folder)
                for _ in range(args.rounds))
            warm = _python(_WARM.format(module=module, paths=paths, loads=args.loads), folder)
            rows.append((label, (cold - base) * 1000, warm * 1000))
    print(f"{'model':30} {'cold import+load ms':>20} {'warm load ms':>14}")
    for label, cold_ms, warm_ms in rows:
        print(f"{label:30} {cold_ms:20.1f} {warm_ms:14.3f}")
    (_, old_cold, old_warm), (_, new_cold, new_warm) = rows
    print(f"ratio new/old: cold {new_cold / old_cold:.2f}x, warm {new_warm / old_warm:.2f}x")


if __name__ == "__main__":
    main()
