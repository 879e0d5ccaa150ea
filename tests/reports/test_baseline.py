"""Reports of a run compared with a baseline: both series on every chart, the before/after
table, a JUnit case per comparison.

The run folders follow the contract (docs/run-folder.md); the comparison itself is
made by the orchestrator's own code, as at the end of a real run.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from connstorm.loadtests.orchestrator.baseline import compare_summary, load_baseline
from connstorm.reports import html as report_html
from connstorm.reports import markdown
from connstorm.reports.charts import CHARTS
from connstorm.reports.render import render_all
from connstorm.reports.run_folder import load_run
from connstorm.sections.thresholds import RegressionConfig
from tests.reports.chromium import Chromium
from tests.reports.run_folders import repro_run, samples, summary, write_run
from tests.reports.test_html import expected_points, needs_chromium, open_report


def compared_run(tmp_path: Path, *, baseline_peak: int = 20) -> tuple[Path, list[Any],
                                                                      list[Any]]:
    """A run folder compared with a baseline run whose database peaked at ``baseline_peak``."""
    base_rows = samples(max_connections=baseline_peak, gap_at=None)
    base_doc = summary()
    base_doc["schema_version"] = 1
    base_doc["variants"][0]["peak_db_connections"] = baseline_peak
    baseline_dir = write_run(tmp_path / "main", rows=base_rows, summary_doc=base_doc)
    rows = samples()
    doc = summary()
    doc["schema_version"] = 1
    run_dir = write_run(tmp_path / "run", rows=rows, summary_doc=doc)
    baseline = load_baseline(baseline_dir, scenario="direct-small", run_dir=run_dir)
    judged = compare_summary(doc, baseline, RegressionConfig(),
                             copied_to=baseline.copy_into(run_dir))
    (run_dir / "summary.json").write_text(json.dumps(judged))
    return run_dir, rows, base_rows


def test_every_chart_draws_the_baselines_series_beside_the_runs(tmp_path: Path) -> None:
    run_dir, rows, base_rows = compared_run(tmp_path, baseline_peak=14)
    run = load_run(run_dir)
    assert run.baseline is not None
    assert run.baseline.name == "direct-module_level (baseline)"
    fig = report_html.build_figure([run])
    traces = [(t.name, t.meta["source"], t) for t in fig.data if t.meta["source"]]
    mine = {source: t for _, source, t in traces if not source.startswith("baseline:")}
    theirs = {source.removeprefix("baseline:"): t for _, source, t in traces
              if source.startswith("baseline:")}
    # THEN every series of the run has the baseline's namesake, from the baseline's samples
    # (but the limits read from stack.json, which holds passwords and is not copied)
    assert set(theirs) == {source for source in mine if not source.startswith("stack.")}
    for source in ("postgres.db_total", "emulator.env_busy", "locust.p95_ms", "locust.rps"):
        xs, ys = expected_points(base_rows, source)
        assert list(theirs[source].x) == xs, source
        assert list(theirs[source].y) == ys, source
        assert list(mine[source].y) == expected_points(rows, source)[1], source
    # AND drawn apart: dotted, lighter, never stacked with the run's areas
    total = theirs["postgres.db_total"]
    assert total.name == "db total (baseline)"
    assert (total.line.dash, total.opacity) == ("dot", 0.5)
    assert theirs["postgres.db_by_state.active"].stackgroup is None
    # AND the rows are the run's charts: the baseline adds no row of its own here
    assert {c.title for c in CHARTS if c.build(run)} == {
        c.title for c in CHARTS if c.build(run) or c.build(run.baseline)}


def test_the_before_after_table_and_junit_say_what_regressed(tmp_path: Path) -> None:
    run_dir, _, _ = compared_run(tmp_path, baseline_peak=14)
    written = {p.name: p for p in render_all(run_dir)}
    md = written["summary.md"].read_text()
    assert "## Compared with the baseline" in md
    assert f"Compared with the baseline {tmp_path / 'main'} (scenario direct-small): " \
           "1 regression." in md
    assert ("| direct-module_level | peak_db_connections | 14 | 20 | +42.9 % | +10 % (≤ 16) "
            "| REGRESSION |") in md
    # the timings: shown beside the baseline's, not judged at the defaults
    assert "| direct-module_level | rps | 41.5 | 41.5 | +0 % | not set | not judged |" in md
    root = ET.fromstring(written["junit.xml"].read_text())
    suite = next(s for s in root.iter("testsuite")
                 if s.get("name") == "connstorm.direct-small.baseline")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"direct-module_level: peak_db_connections",
                          "direct-module_level: peak_environments",
                          "direct-module_level: p95_ms", "direct-module_level: p99_ms",
                          "direct-module_level: rps",
                          "direct-module_level: errors: too_many_connections"}
    failure = cases["direct-module_level: peak_db_connections"].find("failure")
    assert failure is not None
    assert failure.get("message") == ("direct-module_level: peak_db_connections 20, baseline 14: "
                                      "+42.9 % (allowed +10 %, ≤ 16) REGRESSION")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "1", "3")
    skipped = cases["direct-module_level: p95_ms"].find("skipped")
    assert skipped is not None
    assert str(skipped.get("message")).endswith("(not judged: [thresholds.regression] p95_pct "
                                                "unset)")
    page = written["report.html"].read_text()
    assert "<h2>Compared with the baseline</h2>" in page
    assert "dotted, lighter lines" in page


def test_a_baseline_of_itself_shows_no_regression(tmp_path: Path) -> None:
    run_dir, _, _ = compared_run(tmp_path, baseline_peak=20)
    md = markdown.render(json.loads((run_dir / "summary.json").read_text()))
    assert "(scenario direct-small): no regression." in md
    assert "REGRESSION" not in md


def test_a_damaged_baseline_copy_costs_only_its_series(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    run_dir, _, _ = compared_run(tmp_path)
    (run_dir / "baseline" / "samples.jsonl").write_text("{not json\n{}\n")
    run = load_run(run_dir)
    assert run.baseline is None
    assert "the baseline's series are left out" in caplog.text
    assert report_html.render(run)


def test_a_compared_repro_draws_each_variants_baseline_in_its_column(tmp_path: Path) -> None:
    out = tmp_path / "repro"
    repro_run(out)
    for variant in ("direct-module_level", "pgbouncer-transaction", "pgbouncer-session"):
        write_run(out / "variants" / variant / "baseline", rows=samples(max_connections=12))
    fig = report_html.build_figure(load_run(out).variants)
    columns = {t.xaxis for t in fig.data if t.meta["source"] == "baseline:postgres.db_total"}
    assert len(columns) == 3


@pytest.mark.slow
@needs_chromium
def test_the_browser_draws_both_series(tmp_path: Path, browser: Chromium) -> None:
    run_dir, rows, base_rows = compared_run(tmp_path, baseline_peak=14)
    report = render_all(run_dir)[0]
    traces, _, visit = open_report(browser, report, "report-baseline.png")
    assert visit.console_errors == []
    by_source = {t["source"]: t for t in traces if t["source"]}
    assert by_source["postgres.db_total"]["y"] == expected_points(rows, "postgres.db_total")[1]
    assert by_source["baseline:postgres.db_total"]["y"] == \
        expected_points(base_rows, "postgres.db_total")[1]
    assert by_source["baseline:postgres.db_total"]["name"] == "db total (baseline)"
