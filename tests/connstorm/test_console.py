"""Output not sent to a terminal keeps whole lines: logs and CI read what a terminal shows.

Commands run as real subprocesses whose stdout is a pipe (as under CI or
``> file``); rich used to cut such output at 80 columns.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("connstorm", "local_stack", "handlers", "loadtests", "reports")


def _piped_env() -> dict[str, str]:
    # COLUMNS is what rich falls back to off a terminal; a CI runner may not set it
    return {k: v for k, v in os.environ.items()
            if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}


@pytest.mark.slow
def test_up_piped_keeps_whole_lines(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connstorm", "up", "pgbouncer-transaction", "--check",
         "--out", str(tmp_path / "run")], capture_output=True,
        text=True, timeout=180, cwd=tmp_path, env=_piped_env(), check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    postgres = next(line for line in lines if line.startswith("PostgreSQL"))
    assert "superuser_reserved_connections 3)" in postgres
    pgbouncer = next(line for line in lines if line.startswith("PgBouncer"))
    assert "pool_mode transaction, default_pool_size" in pgbouncer
    direct = next(line for line in lines if line.startswith("direct to PostgreSQL"))
    assert direct.rstrip().endswith(")")
    assert "pg_stat_activity (client backends)" in result.stdout


def test_repro_table_piped_keeps_its_columns(tmp_path: Path) -> None:
    code = ("import sys, json; from pathlib import Path; "
            "from tests.reports.run_folders import repro_run; "
            "from connstorm.cli.commands.repro import show_results; "
            "from connstorm.console import output_console; "
            "show_results(output_console(), repro_run(Path(sys.argv[1])), Path(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "repro")],
                            capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=_piped_env(), check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "direct-module_level" in line)
    # every variant's name whole, on the header line
    for name in ("direct-module_level", "pgbouncer-transaction", "pgbouncer-session"):
        assert name in header
    errors = next(line for line in lines if "errors by kind" in line)
    assert "too_many_connections 40" in errors
    verdict = next(line for line in lines if line.startswith("direct-module_level: "))
    assert verdict.endswith("(40 too_many_connections); peak 20 of max_connections 20")


def test_every_console_is_made_by_output_console() -> None:
    # A Console built elsewhere would cut piped output at 80 columns again.
    offenders = []
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "connstorm" / "console.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if name == "Console":
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "use connstorm.console.output_console(): " + ", ".join(offenders)
