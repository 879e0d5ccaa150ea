"""Regenerate the README's picture of a report (``docs/report.png``) from a real run.

    make report-image                       # runs connstorm repro --quick, then the picture
    .venv/bin/python scripts/report_image.py runs/my-repro   # a run folder you already have

The picture must be of what connstorm really produces, so there is no drawing
here: it runs ``connstorm repro --quick`` (about 16 s) into
``runs/report-image`` unless given a run folder, and has headless Chromium
(/usr/bin/chromium, as the report tests use) load that folder's ``report.html``
from disk and save a screenshot. The report works offline, so nothing is fetched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from connstorm.errors import ExitCode
from connstorm.run_folder import REPORT_FILE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "report.png"
RUN_DIR = ROOT / "runs" / "report-image"
#: Wide enough for the verdict table, tall enough for the first charts.
WINDOW = (1400, 2300)
TIMEOUT_S = 180


def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("report_image: chromium is not installed (apt-get install -y chromium)")
    return binary


def _run(argv: list[str], timeout_s: float, ok: tuple[int, ...] = (0,)) -> None:
    """Run ``argv`` in its own process group, killed whole if it outlives ``timeout_s``."""
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise SystemExit(f"report_image: {argv[0]} took over {timeout_s:.0f} s") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode not in ok:
        raise SystemExit(f"report_image: {Path(argv[0]).name} failed ({proc.returncode}):\n"
                         + err[-2000:])


def screenshot(report: Path, out: Path) -> Path:
    """Save what ``report`` looks like in a browser window of :data:`WINDOW`."""
    with tempfile.TemporaryDirectory(prefix="connstorm-report-image-") as profile:
        argv = [_chromium(), "--headless", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                # The report fetches nothing; any attempt would go nowhere.
                "--proxy-server=127.0.0.1:9",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                # Let plotly draw the charts before the picture is taken.
                "--virtual-time-budget=20000", f"--screenshot={out}",
                report.resolve().as_uri()]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        _run(argv, TIMEOUT_S)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run a quick repro (unless given a run folder), then picture its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path,
                        help=f"a run folder with a report.html (default: a fresh "
                             f"connstorm repro --quick in {RUN_DIR.relative_to(ROOT)})")
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir or RUN_DIR
    if args.run_dir is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        connstorm = Path(sys.executable).with_name("connstorm")
        # Exit code 6 (an expectation not shown, on a very busy machine) still
        # leaves a report of what happened: picture it all the same.
        _run([str(connstorm), "repro", "--quick", "--out", str(run_dir)], 600,
             ok=(0, int(ExitCode.THRESHOLDS)))
    report = run_dir / REPORT_FILE
    if not report.is_file():
        raise SystemExit(f"report_image: {report}: no such report")
    sys.stdout.write(f"{screenshot(report, args.out)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
