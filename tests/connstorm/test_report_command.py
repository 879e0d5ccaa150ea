"""connstorm report, through the real CLI: one run, a comparison, and bad folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.reports.run_folders import PASSWORD, summary, write_run


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connstorm", "report", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def test_report_command_rerenders_one_run(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    done = run_cli(run_dir)
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.splitlines()]
    assert [p.name for p in written] == ["report.html", "summary.md", "junit.xml"]
    assert all(p.parent == run_dir and p.stat().st_size > 0 for p in written)
    assert PASSWORD not in (run_dir / "report.html").read_text()


def test_report_command_compares_several_runs(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", summary_doc=summary("pgbouncer-transaction", failures=0,
                                                      passed=True))
    done = run_cli(a, b, "--out", tmp_path / "cmp.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "cmp.html").read_text()
    assert "comparison of 2 variants" in page
    assert "pgbouncer-transaction" in page
    assert not (a / "report.html").exists()


@pytest.mark.parametrize(("make", "needle"), [
    ("missing", "no such run folder"),
    ("empty", "not a run folder"),
    ("damaged", "summary.json: invalid JSON"),
])
def test_report_command_bad_folder_is_one_line_and_exit_2(tmp_path: Path, make: str,
                                                          needle: str) -> None:
    target = tmp_path / "run"
    if make == "empty":
        target.mkdir()
    elif make == "damaged":
        write_run(target)
        (target / "summary.json").write_text("{")
    done = run_cli(write_run(tmp_path / "good"), target)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("connstorm: error: ")
    assert needle in lines[0]
    assert str(target) in lines[0]
    assert not (tmp_path / "comparison.html").exists()
