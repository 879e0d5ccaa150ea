"""report.html: self-contained, offline, no console errors, and its charts hold the samples."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from connstorm.reports import html as report_html
from connstorm.reports.render import render_all, render_comparison
from connstorm.reports.run_folder import load_run
from tests.reports.chromium import Chromium, chromium_binary
from tests.reports.run_folders import PASSWORD, repro_run, samples, summary, write_run

OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "reports"

needs_chromium = pytest.mark.skipif(chromium_binary() is None,
                                    reason="chromium not installed (scripts/bootstrap.sh "
                                           "--with-test-tools installs it)")

# The traces as the browser holds them, after plotly.js has drawn them.
AXES_JS = f"""JSON.stringify((() => {{
  const gd = document.getElementById({report_html.CHARTS_DIV!r});
  return Object.keys(gd.layout).filter(k => k.startsWith('xaxis'))
    .map(k => gd.layout[k].matches || k.replace('axis', '')); }})())"""
TRACES_JS = f"""JSON.stringify(document.getElementById({report_html.CHARTS_DIV!r}).data.map(t => ({{
  name: t.name, source: t.meta && t.meta.source, xaxis: t.xaxis || 'x',
  x: Array.from(t.x), y: Array.from(t.y)}})))"""
READY_JS = (f"document.readyState === 'complete' && document.getElementById("
            f"{report_html.CHARTS_DIV!r}) && document.getElementById("
            f"{report_html.CHARTS_DIV!r})._fullLayout !== undefined")


def expected_points(rows: list[dict[str, Any]], source: str) -> tuple[list[float], list[Any]]:
    """What a trace with ``source`` must hold, read straight from samples.jsonl rows."""
    collector, _, key = source.partition(".")
    mine = [r for r in rows if r["collector"] == collector]
    xs = [float(r["elapsed_s"]) for r in mine]
    ys: list[Any] = []
    for row in mine:
        if not row.get("ok", True):
            ys.append(None)
            continue
        value: Any = row
        for part in key.split("."):
            value = value.get(part, 0) if isinstance(value, dict) else None
        ys.append(None if value is None else float(value))
    return xs, ys


def open_report(browser: Chromium, path: Path, screenshot: str
                ) -> tuple[list[dict[str, Any]], list[str], Any]:
    """The page's traces and x axes (each named by the axis it follows), and the visit."""
    visit = browser.open(path.as_uri(), ready_js=READY_JS)
    traces = json.loads(browser.evaluate(TRACES_JS))
    axes = json.loads(browser.evaluate(AXES_JS))
    browser.screenshot(OUTPUT_DIR / screenshot)
    return traces, axes, visit


@pytest.mark.slow
@needs_chromium
def test_html_report_opens_offline_and_charts_hold_the_samples(tmp_path: Path,
                                                               browser: Chromium) -> None:
    # GIVEN a run folder with every collector, a gap and a password in stack.json
    rows = samples()
    run_dir = write_run(tmp_path / "run", rows=rows)
    # WHEN its report is rendered and opened in headless Chromium
    report = render_all(run_dir)[0]
    traces, axes, visit = open_report(browser, report, "report-single.png")
    # THEN nothing was fetched but the file itself, and the console stayed clean
    assert visit.console_errors == []
    assert [u for u in visit.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    assert (OUTPUT_DIR / "report-single.png").stat().st_size > 10_000
    # AND every plotted series equals the samples it claims to show
    by_source = {t["source"]: t for t in traces if t["source"]}
    for source in ("postgres.db_total", "postgres.db_by_state.active", "postgres.db_by_state.idle",
                   "postgres.max_connections", "pgbouncer.cl_active", "pgbouncer.cl_waiting",
                   "pgbouncer.sv_active", "emulator.env_busy", "emulator.env_frozen",
                   "locust.users", "locust.rps", "locust.p50_ms", "locust.p95_ms",
                   "locust.p99_ms", "locust.errors_by_kind.too_many_connections",
                   "emulator.errors_by_kind.too_many_connections"):
        assert source in by_source, f"no chart shows {source}"
        xs, ys = expected_points(rows, source)
        assert by_source[source]["x"] == xs, source
        assert by_source[source]["y"] == ys, source
    # AND the gap (a failed postgres sample) is a break in the line, not a zero
    assert by_source["postgres.db_total"]["y"][5] is None
    # AND all six charts share one time axis
    assert len(axes) == 6
    assert len(set(axes)) == 1
    assert PASSWORD not in report.read_text()


@pytest.mark.slow
@needs_chromium
def test_html_comparison_puts_variants_side_by_side(tmp_path: Path, browser: Chromium) -> None:
    # GIVEN two runs, one failing directly, one through the pooler without failures
    direct = write_run(tmp_path / "direct", rows=samples(max_connections=20))
    pooled_rows = samples(max_connections=30)
    pooled = write_run(tmp_path / "pooled", rows=pooled_rows,
                       summary_doc=summary("pgbouncer-transaction", failures=0, passed=True))
    # WHEN they are compared
    out = render_comparison([direct, pooled], tmp_path / "comparison.html")
    traces, axes, visit = open_report(browser, out, "report-comparison.png")
    # THEN the page is clean and each variant has its own column of the same charts
    assert visit.console_errors == []
    db_total = [t for t in traces if t["source"] == "postgres.db_total"]
    assert len(db_total) == 2
    assert db_total[0]["xaxis"] != db_total[1]["xaxis"]
    assert len(axes) == 12
    assert len(set(axes)) == 1
    assert db_total[1]["y"] == expected_points(pooled_rows, "postgres.db_total")[1]
    page = out.read_text()
    assert "pgbouncer-transaction" in page
    assert "direct-module_level" in page


def test_html_render_masks_every_password(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    page = report_html.render(load_run(run_dir))
    assert PASSWORD not in page
    assert "postgresql://app:********@127.0.0.1:5555/app" in page


def test_html_render_escapes_text_from_the_run(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    page = report_html.render(load_run(run_dir))
    assert "&lt;straight&gt;" in page
    assert "<straight>" not in page


def test_html_render_without_summary_still_charts_the_samples(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", with_summary=False)
    written = render_all(run_dir)
    assert [p.name for p in written] == ["report.html"]
    assert "did not finish" in written[0].read_text()


def test_html_render_embeds_plotly_and_loads_nothing(tmp_path: Path) -> None:
    page = report_html.render(load_run(write_run(tmp_path / "run")))
    assert "Content-Security-Policy" in page
    assert "<script src=" not in page
    assert "plotly.js v" in page or "Plotly" in page


def test_html_repro_separates_the_deciding_checks_from_expected_failures(
        tmp_path: Path) -> None:
    # GIVEN a repro that showed what it should (its direct variant broke its own thresholds)
    out = tmp_path / "repro"
    repro_run(out)
    page = report_html.render(load_run(out))
    # THEN the checks deciding the verdict come first, the variants' own apart
    deciding = page.index("<h2>Checks that decide the verdict</h2>")
    own = page.index("own thresholds (they do not decide the verdict)</h2>")
    assert deciding < own
    assert "FAIL" not in page[deciding:own]
    assert "yes, as intended" in page[own:]


# Where the browser drew each chart title (column titles are plotly annotations).
TITLES_JS = f"""JSON.stringify([...document.querySelectorAll(
  '#{report_html.CHARTS_DIV} g.annotation')].map(a => {{
    const r = a.getBoundingClientRect();
    return {{text: a.textContent, left: r.left, right: r.right}}; }}))"""


@pytest.mark.slow
@needs_chromium
def test_html_comparison_of_the_six_repro_variants_keeps_their_titles_apart(
        tmp_path: Path, browser: Chromium) -> None:
    # GIVEN the six variants make demo compares, in a laptop-wide window (1400 px)
    from connstorm.loadtests.orchestrator.repro import variants_for

    names = [v.name for v in variants_for(quick=False)]
    runs = [write_run(tmp_path / name, rows=samples(), summary_doc=summary(name))
            for name in names]
    out = render_comparison(runs, tmp_path / "comparison.html")
    browser.open(out.as_uri(), ready_js=READY_JS)
    # THEN each column's title is drawn whole and none runs into its neighbour's
    # ("direct-module_levelpgbouncer-transactionpgbouncer-session" before)
    drawn = [t for t in json.loads(browser.evaluate(TITLES_JS)) if t["text"] in names]
    assert sorted(t["text"] for t in drawn) == sorted(names)
    drawn.sort(key=lambda t: t["left"])
    for left, right in itertools.pairwise(drawn):
        assert left["right"] + 4 <= right["left"], (left, right)  # a visible gap
