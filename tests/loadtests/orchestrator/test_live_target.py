"""Loading an API by URL: ``connstorm run --target-url`` and plain ``locust -f``.

The "live" API here is a local stack started by the test (traffic stays on
127.0.0.1); connstorm is given only its URL and, for one test, the PostgreSQL
admin DSN, as it would be for a deployed API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connstorm.scenario import load_scenario
from tests.loadtests.conftest import REPO, connstorm, rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from connstorm.local_stack.stack import Stack

    scenario = load_scenario("ci-smoke")
    run_dir = tmp_path_factory.mktemp("live")
    with Stack(scenario, run_dir):
        yield json.loads((run_dir / "stack.json").read_text())


def test_run_target_url_samples_what_it_is_given_and_says_what_it_skipped(
        live: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "target"
    result = connstorm("run", "ci-smoke", "--target-url", live["api_url"],
                       "--postgres-admin-dsn", live["postgres_admin_dsn"],
                       "-u", "4", "-r", "4", "-t", "5s", "--out", str(run_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["collectors_skipped"]) == {"pgbouncer", "emulator"}
    assert "collector emulator skipped" in result.stdout
    assert summary["variants"][0]["requests"] > 0
    assert rows(run_dir, "postgres")  # sampled through the DSN it was given
    assert rows(run_dir, "pgbouncer") == []
    stack = json.loads((run_dir / "stack.json").read_text())
    assert stack["api_url"] == live["api_url"]
    assert (run_dir / "stack.json").stat().st_mode & 0o077 == 0  # it holds a password


def test_plain_locust_runs_the_locustfile_without_connstorm(live: dict[str, Any],
                                                            tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtests/locust_plugin/locustfile.py",
         "--headless",
         "-u", "3", "-r", "3", "-t", "4s", "--host", live["api_url"], "--only-summary",
         "--products", "200",  # ci-smoke seeds 200 products
         "--csv", str(tmp_path / "locust"), "--connstorm-out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "postgres collector skipped" in result.stderr
    stats = (tmp_path / "locust_stats.csv").read_text()
    for name in ("/items/{id}", "/items?limit&category", "/orders", "/health"):
        assert f",{name}," in stats
    assert rows(tmp_path, "locust")[-1]["requests"] > 0
