"""connstorm capacity's predictions against runs measured on the local stack.

The planner says "N concurrent environments with module_level need N
connections"; this run checks it. Its other predictions the stack can check
(refused at the usable limit when over it; a transaction pooler holds the
database to its pool) are checked on the runs of ``connstorm repro``, in
``tests/loadtests/test_repro.py``, to keep the suite to one run per fact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connstorm.capacity import CapacityRequest, plan_capacity

pytestmark = pytest.mark.slow


def measured(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "connstorm", "run", "direct-small", "--out", str(out),
         "--duration", "6s", "--set", "load.sample_interval_s=0.5", *args],
        capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode in (0, 6), done.stdout[-3000:] + done.stderr[-3000:]
    variant: dict[str, Any] = json.loads((out / "summary.json").read_text())["variants"][0]
    return variant


def test_capacity_module_level_within_the_limit_needs_one_per_environment(
        tmp_path: Path) -> None:
    # GIVEN room for everyone: 60 connections, 12 users
    variant = measured(tmp_path, "--users", "12", "--spawn-rate", "12",
                       "--set", "postgres.max_connections=60")
    plan = plan_capacity(CapacityRequest(concurrency=variant["peak_environments"],
                                         max_connections=60, pattern="module_level"))
    # THEN every environment holds exactly one connection, as predicted, and all fit
    assert variant["peak_environments"] >= 2
    assert variant["peak_db_app_connections"] == plan.peak_db_connections
    assert plan.fits
    assert variant["errors_by_kind"].get("too_many_connections", 0) == 0
