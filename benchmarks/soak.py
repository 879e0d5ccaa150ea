"""Soak: minutes at 80 % of the maximum throughput; nothing lost, nothing grows, nothing left.

connstorm must stay standing and keep recording for as long as a user's test
runs. This runs ``connstorm run`` twice, each on a fresh local stack of the
``--scenario`` (default ``pgbouncer-transaction``: the healthy path, so every
failure would be connstorm's own):

1. **calibration**: ``--users`` users with no think time for
   ``--calibrate-s`` seconds; its requests/s in the second half is the
   maximum throughput;
2. **soak**: the same users for ``--minutes`` (default 10), each pausing a
   fixed think time chosen so the total is 80 % of that maximum
   (a first guess, ``think = users / max_rps * (1 / 0.8 - 1)``, corrected once
   by a probe run of ``--calibrate-s``; the achieved share is printed).

During the soak every second it reads, from ``/proc``, the RSS and the number
of open file descriptors of each connstorm process: ``connstorm run`` itself,
the Locust process (where the collectors run) and the emulator server (not its
environments, which Lambda recycles). Verdicts, each printed PASS or FAIL:

* **none lost**: every failed request had an HTTP status (Locust's failures
  all read ``HTTP <status> ...``; a connection error or timeout without a
  status is a lost request), and the requests answered add up;
* **RSS flat**: after the warm-up (the first ``--warmup-s``, default 60 s), the
  median RSS of the last minute is within 5 % of the first minute's, per process;
* **no fd growth**: the median fd count of the last minute is not above the
  largest of the first minute after warm-up, per process (a leak moves the
  typical count; a connection open for a moment does not); per-minute medians
  are printed (the emulator's count also follows how many environments live);
* **nothing left**: once ``connstorm run`` has exited, no process mentions the
  run folder, and none of the pids watched is alive.

    .venv/bin/python -m benchmarks soak --minutes 10
    .venv/bin/python -m benchmarks soak --minutes 3 --warmup-s 30   # the short version
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connstorm.run_folder import SAMPLES_FILE, SUMMARY_FILE

ROOT = Path(__file__).resolve().parent.parent
TARGET_SHARE = 0.8


def _proc_cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            out.extend(int(x) for x in text.split())
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children(current))
    return found


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def watched(run_pid: int) -> dict[str, int]:
    """The connstorm processes of a run: itself, Locust, the emulator server."""
    out = {"connstorm run": run_pid}
    for pid in _tree(run_pid)[1:]:
        cmd = _proc_cmdline(pid)
        if " -m locust" in cmd and "locust" not in out:
            out["locust (collectors)"] = pid
        elif "connstorm.local_stack.lambda_" in cmd and "--config" in cmd:
            out["emulator"] = pid
    return out


def run_connstorm(out: Path, scenario: str, users: int, seconds: float, think_ms: float,
                  sample: bool
                  ) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]], dict[str, int]]:
    """Start ``connstorm run`` and, when ``sample``, read /proc every second until it ends."""
    argv = [sys.executable, "-m", "connstorm", "run", scenario, "--out", str(out),
            "-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s",
            "--set", f"load.think_time_min_ms={think_ms:.3f}",
            "--set", f"load.think_time_max_ms={think_ms:.3f}",
            "--set", "thresholds.max_fail_ratio=1.0"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=(out.parent / f"{out.name}.stderr").open("wb"))
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    pids: dict[str, int] = {}
    while proc.poll() is None:
        time.sleep(1.0)
        if not sample:
            continue
        if len(pids) < 3:
            pids.update(watched(proc.pid))
        row: dict[str, Any] = {"t": time.monotonic() - started}
        for name, pid in pids.items():
            row[name] = (_rss_mb(pid), _fds(pid))
        samples.append(row)
    return proc, samples, pids


def locust_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for line in (run_dir / SAMPLES_FILE).read_text().splitlines():
        row = json.loads(line)
        if row.get("collector") == "locust" and row.get("ok"):
            rows.append(row)
    return rows


def second_half_rps(run_dir: Path) -> float:
    """Requests/s over the second half of a run's Locust samples."""
    rows = locust_rows(run_dir)
    half = rows[len(rows) // 2:]
    dt = half[-1]["elapsed_s"] - half[0]["elapsed_s"]
    return (half[-1]["requests"] - half[0]["requests"]) / dt if dt > 0 else 0.0


def lost_requests(run_dir: Path) -> tuple[int, list[str]]:
    """Failed requests that never got an HTTP status, and their texts."""
    lost, texts = 0, []
    with (run_dir / "locust_failures.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            error = str(row.get("Error") or "")
            if not error.startswith("HTTP "):
                lost += int(float(row.get("Occurrences") or 0))
                texts.append(error[:120])
    return lost, texts


def window(samples: list[dict[str, Any]], name: str, start: float, end: float,
           index: int) -> list[float]:
    return [float(s[name][index]) for s in samples
            if start <= s["t"] < end and name in s and s[name][index] is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--calibrate-s", type=float, default=30.0)
    parser.add_argument("--scenario", default="pgbouncer-transaction")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="connstorm-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()}; cores {os.cpu_count()}; folders in {root}")

    calibration = root / "calibration"
    proc, _, _ = run_connstorm(calibration, args.scenario, args.users, args.calibrate_s, 0.0,
                            sample=False)
    max_rps = second_half_rps(calibration)
    think_ms = 1000.0 * args.users / max_rps * (1 / TARGET_SHARE - 1)
    print(f"calibration: {args.users} users, no think time: max {max_rps:.0f} req/s "
          f"(exit {proc.returncode}); first guess of the think time {think_ms:.1f} ms")
    # One correction: each user's cycle (response + think) must be users / (0.8 * max).
    probe = root / "probe"
    run_connstorm(probe, args.scenario, args.users, args.calibrate_s, think_ms, sample=False)
    probe_rps = second_half_rps(probe)
    if probe_rps > 0:
        cycle_ms, wanted_ms = (1000.0 * args.users / r for r in (probe_rps, TARGET_SHARE * max_rps))
        think_ms = max(0.0, think_ms + wanted_ms - cycle_ms)
    print(f"probe: {probe_rps:.0f} req/s ({probe_rps / max_rps:.0%}); soak think time "
          f"{think_ms:.1f} ms")

    soak = root / "soak"
    seconds = args.minutes * 60
    proc, samples, pids = run_connstorm(soak, args.scenario, args.users, seconds, think_ms,
                                  sample=True)
    load_after = os.getloadavg()
    with (root / "proc-samples.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in samples)
    envs = [r.get("env_total") for r in (json.loads(line) for line in
            (soak / SAMPLES_FILE).read_text().splitlines())
            if r.get("collector") == "emulator" and r.get("ok")]
    print(f"environments alive: {envs[len(envs) // 10] if envs else '-'} after warm-up, "
          f"{envs[-1] if envs else '-'} at the end, at most {max(envs, default=0)}")
    names = sorted({k for s in samples for k in s if k != "t"})
    achieved = second_half_rps(soak)
    summary = json.loads((soak / SUMMARY_FILE).read_text())
    (variant,) = summary["variants"]
    lost, texts = lost_requests(soak)
    verdicts: list[tuple[str, bool, str]] = []
    verdicts.append(("none lost", lost == 0,
                     f"{variant['requests']} requests, {variant['failures']} failed, "
                     f"{lost} without a status {texts[:3]}"))
    end = max(s["t"] for s in samples)
    first = (args.warmup_s, args.warmup_s + 60)
    last = (end - 60, end + 1)
    for name in names:
        rss_first, rss_last = (statistics.median(window(samples, name, *w, 0) or [0.0])
                               for w in (first, last))
        growth = (rss_last - rss_first) / rss_first if rss_first else 0.0
        verdicts.append((f"RSS flat: {name}", growth < 0.05,
                         f"{rss_first:.1f} MB -> {rss_last:.1f} MB ({growth:+.1%})"))
        # A leak moves the typical count; one connection opened for a moment does not.
        fd_first = max(window(samples, name, *first, 1) or [0.0])
        fd_last = statistics.median(window(samples, name, *last, 1) or [0.0])
        per_minute = [statistics.median(window(samples, name, m, m + 60, 1) or [0.0])
                      for m in range(int(args.warmup_s), int(end), 60)]
        verdicts.append((f"no fd growth: {name}", fd_last <= fd_first,
                         f"{fd_first:.0f} (first minute's max) -> {fd_last:.0f} (last minute's "
                         f"median); per-minute medians {[round(x) for x in per_minute]}"))
    time.sleep(3)
    leftovers = [line for line in (_proc_cmdline(int(p.name)) for p in Path("/proc").iterdir()
                                   if p.name.isdigit() and int(p.name) != os.getpid())
                 if str(soak) in line]
    alive = [n for n, pid in pids.items() if Path(f"/proc/{pid}").exists()]
    verdicts.append(("nothing left", not leftovers and not alive,
                     f"{len(leftovers)} processes mention the run folder"))
    print(f"soak: {args.minutes:g} min, {args.users} users: {achieved:.0f} req/s in the second "
          f"half = {achieved / max_rps:.0%} of the maximum (exit {proc.returncode}); "
          f"load average after: {load_after}")
    for what, ok, detail in verdicts:
        print(f"{'PASS' if ok else 'FAIL'} {what}: {detail}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
