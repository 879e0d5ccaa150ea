"""How long ``connstorm repro`` takes, where the time goes, and what rendering costs.

This runs the command ``--rounds`` times (``--jobs N`` passed on) and splits each
variant's time, from the files the run leaves behind, into: when it went (its
``scenario.json``, seconds after the command started), stack start (to
``stack.json``), Locust start (to Locust's first log line), load and stop (to
``summary.json``) and its own report (to ``report.html``). Variants overlap
(``--jobs``), so the phases of different variants add up to more than the wall
time. It then times ``connstorm.reports.render.render_all`` on the comparison and
reports the HTML's size.

    .venv/bin/python benchmarks/repro_time.py --quick --rounds 2
    .venv/bin/python benchmarks/repro_time.py --rounds 1 --jobs 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from connstorm.reports.render import render_all
from connstorm.run_folder import (
    LOCUST_LOG,
    REPORT_FILE,
    SCENARIO_FILE,
    STACK_FILE,
    SUMMARY_FILE,
    variant_dir,
)

_LOCUST_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")


def _locust_start(log: Path) -> float | None:
    try:
        first = log.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    found = _LOCUST_TIME.match(first)
    if not found:
        return None
    # Locust logs local time; the machines run in UTC.
    stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")
    return stamp.timestamp() + int(found.group(2)) / 1000


def one_round(quick: bool, jobs: int | None) -> dict[str, object]:
    """Run the command once; the wall time and each variant's phases, seconds."""
    with tempfile.TemporaryDirectory(prefix="connstorm-bench-repro-") as tmp:
        out = Path(tmp) / "repro"
        started = time.time()
        done = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--out", str(out),
                               *(["--quick"] if quick else []),
                               *(["--jobs", str(jobs)] if jobs else [])],
                              capture_output=True, text=True, check=False)
        wall = time.time() - started
        if done.returncode not in (0, 6):
            raise SystemExit(f"repro failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads((out / SUMMARY_FILE).read_text())
        phases: list[dict[str, float]] = []
        for entry in summary["variants"]:
            folder = variant_dir(out, entry["name"])
            went = (folder / SCENARIO_FILE).stat().st_mtime
            stack_ready = (folder / STACK_FILE).stat().st_mtime
            ended = (folder / SUMMARY_FILE).stat().st_mtime
            reported = (folder / REPORT_FILE).stat().st_mtime
            locust = _locust_start(folder / LOCUST_LOG) or stack_ready
            phases.append({"went": went - started, "stack": stack_ready - went,
                           "locust": locust - stack_ready, "load_and_stop": ended - locust,
                           "report": reported - ended})
        render_started = time.perf_counter()
        render_all(out)
        render_s = time.perf_counter() - render_started
        size_mb = (out / REPORT_FILE).stat().st_size / 1e6
    return {"wall": wall, "phases": phases, "render": render_s, "size_mb": size_mb,
            "passed": summary["passed"]}


def main() -> None:
    """Parse options, run the rounds, print a markdown table for BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    results = [one_round(args.quick, args.jobs) for _ in range(args.rounds)]
    load = os.getloadavg()[0]
    walls = [float(str(r["wall"])) for r in results]
    jobs = f" --jobs {args.jobs}" if args.jobs else ""
    print(f"connstorm repro{' --quick' if args.quick else ''}{jobs}: {args.rounds} round(s), "
          f"load average {load:.1f}")
    print("| round | wall | per variant: went at / stack / Locust start / load+stop / report "
          "| render | HTML |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(results, start=1):
        phases = r["phases"]
        assert isinstance(phases, list)
        parts = ", ".join(f"{p['went']:.1f} / {p['stack']:.1f} / {p['locust']:.1f} / "
                          f"{p['load_and_stop']:.1f} / {p['report']:.1f}" for p in phases)
        print(f"| {i} | {r['wall']:.1f} s | {parts} | {r['render']:.2f} s | "
              f"{r['size_mb']:.1f} MB |")
    print(f"median wall time {statistics.median(walls):.1f} s; "
          f"all passed: {all(r['passed'] for r in results)}")


if __name__ == "__main__":
    main()
