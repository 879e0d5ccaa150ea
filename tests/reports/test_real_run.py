"""The report of a real run: `connstorm run` on the local stack, rendered, opened in Chromium.

One short run (direct, module_level, more users than PostgreSQL has slots) is
shared by the tests of this module; it is the expensive part.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connstorm.reports.render import render_all
from tests.reports.chromium import Chromium
from tests.reports.test_html import expected_points, needs_chromium, open_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder: 30 users against 17 application slots, for 8 s."""
    out = tmp_path_factory.mktemp("real-run") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "connstorm", "run", "direct-small", "--out", str(out),
         "--users", "30", "--spawn-rate", "30", "--duration", "8s",
         "--set", "load.sample_interval_s=0.5"],
        capture_output=True, text=True, timeout=240, check=False)
    # 6: the run finished and broke its thresholds, which is the point of direct-small.
    assert done.returncode in (0, 6), done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "summary.json").is_file()
    return out


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@needs_chromium
def test_real_run_report_opens_offline_and_charts_hold_its_samples(real_run: Path,
                                                                   browser: Chromium) -> None:
    # GIVEN a real run's folder; WHEN its reports are rendered and opened
    written = render_all(real_run)
    assert [p.name for p in written] == ["report.html", "summary.md", "junit.xml"]
    traces, axes, visit = open_report(browser, written[0], "report-real-run.png")
    # THEN the page fetched nothing and logged no error
    assert visit.console_errors == []
    assert [u for u in visit.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    assert len(set(axes)) == 1
    # AND the charts hold the very samples the collectors wrote
    rows = read_rows(real_run)
    by_source = {t["source"]: t for t in traces if t["source"]}
    checked = 0
    kinds = [f"{r['collector']}.errors_by_kind.{k}" for r in rows
             if isinstance(r.get("errors_by_kind"), dict) for k in r["errors_by_kind"]]
    # The functions were refused by PostgreSQL itself, classified from its message.
    assert "emulator.errors_by_kind.too_many_connections" in kinds
    for source in ("postgres.db_total", "postgres.max_connections", "emulator.env_busy",
                   "emulator.env_frozen", "locust.users", "locust.rps", "locust.p95_ms",
                   *dict.fromkeys(kinds)):
        xs, ys = expected_points(rows, source)
        if not xs:
            continue
        assert source in by_source, f"no chart shows {source}"
        assert by_source[source]["x"] == xs, source
        assert by_source[source]["y"] == ys, source
        checked += 1
    assert checked >= 8
    page = written[0].read_text()
    stack = json.loads((real_run / "stack.json").read_text())
    password = stack["postgres_dsn"].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in page
    assert "postgresql 15." in page


def test_real_run_report_command_rerenders_it(real_run: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "connstorm", "report", str(real_run),
                           "--out", str(tmp_path / "again.html")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again.html").stat().st_size > 1_000_000  # plotly.js is inside
