"""``connstorm run --baseline`` end to end: real stack, real Locust, a real earlier run.

The figure these tests hold runs to is the one a run cannot vary: 20 users on
module_level handlers against 7 ordinary slots take every slot, so the peak of
database connections is the same in every run. Timings vary from run to run;
``[thresholds.regression]`` shows them but judges them only when asked to, so
these runs use its defaults for them.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from connstorm.loadtests.orchestrator.baseline import compare_summary, load_baseline
from connstorm.loadtests.orchestrator.report_files import write_reports
from connstorm.loadtests.orchestrator.summary import build_summary
from connstorm.reports import html as report_html
from connstorm.reports.run_folder import load_run
from connstorm.run_folder import write_json
from connstorm.scenario import load_scenario
from tests.loadtests.conftest import connstorm, rows
from tests.session_once import made_once

pytestmark = pytest.mark.slow

# 10 connections, 3 reserved: 20 users need 20, the application gets 7 (with the collector).
SMALL_DB = ["--set", "postgres.max_connections=10", "--set", "pgbouncer.default_pool_size=4"]
LOAD = ["-u", "20", "-r", "20", "-t", "8s"]
SCENARIO = ["direct-small", *SMALL_DB]
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "summary.schema.json")
                    .read_text())


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main branch's run: the baseline of the others (run once per session, read-only)."""
    return made_once(tmp_path_factory, "baseline-main", _run_main) / "main"


def _run_main(folder: Path) -> None:
    result = connstorm("run", *SCENARIO, *LOAD, "--out", str(folder / "main"))
    # 6: direct-small's own thresholds fail, which is what it is for
    assert result.returncode == 6, result.stdout[-3000:] + result.stderr


def _summary(run_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return doc


def _comparisons(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (variant,) = summary["baseline"]["variants"]
    return {c["name"]: c for c in variant["comparisons"]}


def test_a_run_compared_with_a_baseline_of_itself_passes(main_run: Path,
                                                         tmp_path: Path) -> None:
    # GIVEN the run folder, and the same run as its baseline
    run_dir = tmp_path / "again"
    shutil.copytree(main_run, run_dir)
    baseline = load_baseline(main_run, scenario="direct-small", run_dir=run_dir)
    # WHEN its summary is made again as the run makes it, and compared
    scenario = load_scenario("direct-small", overrides=[
        "postgres.max_connections=10", "pgbouncer.default_pool_size=4"])
    summary = build_summary(run_dir, scenario, users=20)
    summary = compare_summary(summary, baseline, scenario.thresholds.regression,
                              copied_to=baseline.copy_into(run_dir))
    write_json(run_dir / "summary.json", summary)
    written = write_reports(run_dir, summary, step_summary=False)
    # THEN every comparison passes, and only the run's own thresholds decide
    section = summary["baseline"]
    assert (section["passed"], section["regressions"]) == (True, 0)
    compared = _comparisons(summary)
    assert {"peak_db_connections", "peak_environments", "p95_ms", "p99_ms", "rps",
            "errors: too_many_connections"} <= set(compared)
    assert all(c["change_pct"] in (0, None) for c in compared.values())
    root = ET.parse(written["junit.xml"]).getroot()
    suite = next(s for s in root.iter("testsuite")
                 if s.get("name") == "connstorm.direct-small.baseline")
    assert suite.get("failures") == "0"
    assert len(list(suite.iter("testcase"))) == len(compared)
    assert "no regression." in written["summary.md"].read_text()
    # AND the report draws the baseline's series on top of the run's: the same points
    fig = report_html.build_figure([load_run(run_dir)])
    sources = {t.meta["source"]: t for t in fig.data}
    for source in ("postgres.db_total", "emulator.env_busy", "locust.users"):
        assert list(sources[f"baseline:{source}"].y) == list(sources[source].y), source


def test_a_baseline_30_percent_lower_fails_the_run_with_the_right_line(
        main_run: Path, tmp_path: Path) -> None:
    # GIVEN the main run's folder, its peak of database connections made 30 % lower
    baseline_dir = tmp_path / "main-lower"
    shutil.copytree(main_run, baseline_dir)
    doc = _summary(baseline_dir)
    peak = doc["variants"][0]["peak_db_connections"]
    assert peak == 7  # every ordinary slot: 6 of the application and the collector's
    lower = round(peak * 0.7)
    doc["variants"][0]["peak_db_connections"] = lower
    (baseline_dir / "summary.json").write_text(json.dumps(doc))
    # WHEN the same load runs against it, in CI (GITHUB_STEP_SUMMARY set)
    out, step = tmp_path / "pr", tmp_path / "step-summary.md"
    result = connstorm("run", *SCENARIO, *LOAD, "--baseline", str(baseline_dir), "--out",
                       str(out), env={"GITHUB_STEP_SUMMARY": str(step)})
    # THEN it fails with exit 6, the regression a line of its own everywhere
    assert result.returncode == 6, result.stdout[-3000:] + result.stderr
    summary = _summary(out)
    regression = _comparisons(summary)["peak_db_connections"]
    allowed = -(-lower * 11 // 10)  # 10 % more, rounded up
    line = (f"direct-module_level: peak_db_connections 7, baseline {lower}: "
            f"+{round((7 - lower) / lower * 100, 1):g} % (allowed +10 %, ≤ {allowed}) "
            f"REGRESSION")
    assert regression["line"] == line
    assert (summary["passed"], summary["baseline"]["passed"]) == (False, False)
    assert summary["baseline"]["path"] == str(baseline_dir)
    jsonschema.validate(summary, SCHEMA)  # the contract, docs/summary.schema.json
    # the terminal: a line each, and the error naming it
    assert f"FAIL baseline {line}" in result.stdout
    assert "regression(s) against the baseline" in result.stderr
    assert line in result.stderr
    assert "Traceback" not in result.stderr
    # summary.md: the before/after table; the GitHub step summary got it
    row = (f"| direct-module_level | peak_db_connections | {lower} | 7 | "
           f"+{regression['change_pct']:g} % | +10 % (≤ {allowed}) | REGRESSION |")
    assert row in (out / "summary.md").read_text()
    assert row in step.read_text()
    # junit.xml: a test case per comparison, this one failed with the line
    suite = next(s for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")
                 if s.get("name") == "connstorm.direct-small.baseline")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == len(_comparisons(summary))
    failure = cases["direct-module_level: peak_db_connections"].find("failure")
    assert failure is not None
    assert failure.get("message") == line
    # AND the report of the compared run has both series, the baseline's from its samples
    assert (out / "baseline" / "samples.jsonl").read_bytes() == \
        (main_run / "samples.jsonl").read_bytes()
    fig = report_html.build_figure([load_run(out)])
    sources = {t.meta["source"]: t for t in fig.data}
    assert list(sources["postgres.db_total"].y) == [r["db_total"] for r in rows(out, "postgres")]
    assert list(sources["baseline:postgres.db_total"].y) == \
        [r["db_total"] for r in rows(main_run, "postgres")]
    assert "<h2>Compared with the baseline</h2>" in (out / "report.html").read_text()


def test_a_run_within_its_tolerances_passes_with_exit_0(main_run: Path, tmp_path: Path) -> None:
    # GIVEN thresholds the refused run meets. The timings get no room of their own: at
    # the defaults they are shown, not judged (they moved up to 3x between identical
    # runs, docs/baselines.md). This load saturates the database on purpose, so which
    # requests meet a full database, and how many environments the refusals leave
    # busy, is a race: the error shares, kinds and environments get room here.
    loose = ["--set", "thresholds.max_fail_ratio=1.0",
             "--set", "thresholds.too_many_connections=1000000",
             *(item for key in ("errors_pct", "peak_environments_pct")
               for item in ("--set", f"thresholds.regression.{key}=100000")),
             "--set", "thresholds.regression.new_error_kinds=false"]
    out = tmp_path / "pr"
    # WHEN it runs against the main run, the peak of connections held to +10 %
    result = connstorm("run", *SCENARIO, *LOAD, *loose, "--baseline", str(main_run), "--out",
                       str(out))
    # THEN it passes
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = _summary(out)
    assert (summary["passed"], summary["baseline"]["passed"]) == (True, True)
    compared = _comparisons(summary)
    assert compared["peak_db_connections"]["line"] == (
        "direct-module_level: peak_db_connections 7, baseline 7: +0 % (allowed +10 %, ≤ 8) ok")
    assert "PASS baseline direct-module_level: peak_db_connections 7" in result.stdout
    # AND the timings are there, beside the baseline's, marked as not judged
    for name, key in (("p95_ms", "p95_pct"), ("p99_ms", "p99_pct"), ("rps", "rps_pct")):
        assert compared[name]["judged"] is False
        assert compared[name]["line"].endswith(
            f"(not judged: [thresholds.regression] {key} unset)")
        assert f"INFO baseline {compared[name]['line']}" in result.stdout
    suite = next(s for s in ET.parse(out / "junit.xml").getroot().iter("testsuite")
                 if s.get("name") == "connstorm.direct-small.baseline")
    assert (suite.get("failures"), suite.get("skipped")) == ("0", "3")
    assert "| direct-module_level | p95_ms |" in (out / "summary.md").read_text()
    assert "not judged" in (out / "summary.md").read_text()
