"""The live view of a pinning run, in a real browser: the proxy's series and its pin reasons.

A function of one's own (``examples/own-function``) sets session state through
the RDS Proxy stand-in; ``connstorm ui`` runs it, a swarm starts through the web
UI, and headless Chromium opens the live chart and the Connections tab as a
person would. PgBouncer runs too, carrying nothing: its series stay hidden.
Screenshots land in ``test-output/loadtests/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.loadtests.conftest import REPO, processes_mentioning
from tests.loadtests.ui_session import UiRun
from tests.reports.chromium import Chromium, chromium_binary

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")]

EXAMPLE = REPO / "examples" / "own-function" / "scenario.toml"
OUTPUT = REPO / "test-output" / "loadtests"
#: PgBouncer started beside the proxy, with no function going through it.
IDLE_PGBOUNCER = ("--set", "pgbouncer.enabled=true", "--set", "pgbouncer.default_pool_size=4")

TRACES = """[...document.querySelectorAll('.chart')].reduce((out, div) => {
  out[div.id] = (div.data || []).map(t => [t.name,
      Math.max(0, ...t.y.filter(v => v !== null))]);
  return out; }, {})"""
# Pairs of (chart, legend box, axis title box) that overlap: what a person would see
# as the legend running into an axis title.
OVERLAPS = """[...document.querySelectorAll('.chart')].flatMap(div => {
  const rects = sel => [...div.querySelectorAll(sel)].map(e => e.getBoundingClientRect())
      .filter(r => r.width > 0 && r.height > 0);
  const legends = rects('g.legend'), titles = rects('g.g-xtitle, g.g-ytitle, g.g-y2title');
  return legends.flatMap(l => titles.filter(t => l.left < t.right && t.left < l.right &&
      l.top < t.bottom && t.top < l.bottom).map(t => [div.id, l.toJSON(), t.toJSON()])); })"""
PROXY_DRAWN = ("document.getElementById('proxy') && document.getElementById('proxy').data "
               "&& document.getElementById('proxy').data.length > 0 "
               "&& document.querySelectorAll('#pins tbody tr').length > 0")


def _pinned(doc: dict[str, Any]) -> bool:
    series = doc["series"]
    return (bool(doc.get("pin_reasons")) and max(series["proxy_pinned"]["y"], default=0) > 0
            and max(series["users"]["y"], default=0) > 0)


def test_live_chart_draws_the_proxy_and_the_tab_lists_a_pin_reason(tmp_path: Path) -> None:
    run_dir = tmp_path / "ui"
    with UiRun(EXAMPLE, run_dir, [*IDLE_PGBOUNCER, "-t", "300s"]) as ui:
        # GIVEN a swarm on a function that pins every connection it opens
        ui.swarm(users=40, spawn_rate=20)
        doc = ui.wait_for(_pinned, timeout_s=180)
        reason = doc["pin_reasons"][0]
        assert "session settings" in reason["reason"]
        assert reason["sample"].startswith("SET search_path")
        assert doc["runs"] == {"rds_proxy": True, "pgbouncer": True,
                               "pgbouncer_traffic": False, "vanished": False}
        with Chromium() as browser:
            # WHEN a person opens the live chart
            visit = browser.open(f"{ui.base}/connstorm/chart", ready_js=PROXY_DRAWN)
            assert visit.console_errors == []
            traces = browser.evaluate(TRACES)
            # THEN the proxy's chart draws its series, pinned connections above zero
            proxy = dict(traces["proxy"])
            assert {"client connections", "database connections", "pinned connections",
                    "database connections borrowed", "clients per database connection",
                    "pool bound (MaxDatabaseConnectionsAllowed)"} <= set(proxy)
            assert proxy["pinned connections"] > 0
            assert proxy["client connections"] >= proxy["database connections"] > 0
            assert "RDS Proxy borrow timeouts/s" in dict(traces["traffic"])
            # ... PgBouncer, which carries nothing, draws nothing
            assert not [name for name, _ in traces["connections"] if "PgBouncer" in name]
            assert "PgBouncer (no traffic" in browser.evaluate(
                "document.getElementById('runs').textContent")
            # ... the pin reason is listed with its sample statement
            pins = browser.evaluate("[...document.querySelectorAll('#pins tbody tr')]"
                                    ".map(tr => [...tr.cells].map(td => td.textContent))")
            assert [reason["reason"], str(reason["count"]), reason["sample"]] in [
                [a, b, c] for a, b, c in pins] or pins[0][0] == reason["reason"]
            # ... and no legend runs into an axis title
            assert browser.evaluate(OVERLAPS) == []
            browser.screenshot(OUTPUT / "live-chart-pinning.png")
            # WHEN the Connections tab of Locust's UI is open
            browser.open(f"{ui.base}/?tab=connstorm",
                         ready_js="document.body && document.body.innerText.includes('pinned: ')")
            text = browser.evaluate("document.body.innerText")
            # THEN it lists the pin reason and the proxy's figures
            assert f"pinned: {reason['reason']}" in text
            assert "multiplexing: client connections per database connection" in text
            assert "none so far: no function goes through PgBouncer" in text
            browser.screenshot(OUTPUT / "ui-connections-tab-pinning.png")
    assert ui.returncode == 143, ui.stderr
    assert processes_mentioning(str(run_dir)) == []
