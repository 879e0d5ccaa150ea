"""Timeline actions in the reports: marks on the time axis, the recovery table, the verdict."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from connstorm.reports import html, markdown
from connstorm.reports import timeline as tl
from connstorm.reports.run_folder import load_run
from connstorm.reports.verdict_line import verdict
from tests.reports.run_folders import samples, summary, write_run

RECOVERED = {"at_s": 4.0, "action": "terminate_backends", "target": None,
             "errors_during": {"connection_lost": 3}, "recovery_s": 1.5, "outcome": "done",
             "connections_leaked": 0}
NEVER = {"at_s": 6.0, "action": "kill_environments", "target": "api", "count": 2,
         "errors_during": {"connection_lost": 40}, "recovery_s": None, "outcome": "done",
         "connections_leaked": 1}


def run_with_timeline(tmp_path: Path) -> Path:
    doc: dict[str, Any] = copy.deepcopy(summary())
    doc["variants"][0]["timeline"] = [RECOVERED, NEVER]
    rows = samples()
    rows += [{"t": 1_800_000_004.0, "elapsed_s": 4.0, "collector": "timeline", "ok": True,
              "event": "start", "index": 0, "action": "terminate_backends", "at_s": 4.0},
             {"t": 1_800_000_006.0, "elapsed_s": 6.0, "collector": "timeline", "ok": True,
              "event": "start", "index": 1, "action": "kill_environments", "at_s": 6.0,
              "target": "api", "count": 2}]
    return write_run(tmp_path / "run", rows=rows, summary_doc=doc)


def test_verdict_says_which_action_the_pattern_recovered_from() -> None:
    line = verdict({"name": "x", "requests": 10, "timeline": [RECOVERED, NEVER]})
    assert "terminate_backends at 4 s: recovered in 1.5 s (connection_lost 3)" in line
    assert "kill_environments at 6 s: NOT RECOVERED (connection_lost 40)" in line


def test_markdown_has_the_recovery_table(tmp_path: Path) -> None:
    doc = copy.deepcopy(summary())
    doc["variants"][0]["timeline"] = [RECOVERED, NEVER]
    text = markdown.render(doc)
    assert "## Faults: which patterns recovered" in text
    assert "| direct-module_level | 6 | kill_environments api ×2 | NOT RECOVERED |" in text


def test_html_marks_each_action_on_every_chart(tmp_path: Path) -> None:
    run = load_run(run_with_timeline(tmp_path))
    fig = html.build_figure([run])
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    n_charts = len({s.yref for s in lines})
    assert sorted({s.x0 for s in lines}) == [4.0, 6.0]
    assert len(lines) == 2 * n_charts
    labels = [a.text for a in fig.layout.annotations]
    assert "terminate_backends" in labels
    assert "kill_environments api ×2" in labels
    page = html.render(run)
    assert "Faults: which patterns recovered" in page
    assert "NOT RECOVERED" in page


def test_a_run_without_timeline_has_no_marks_and_no_table(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "plain"))
    assert tl.marks(run.series("timeline")) == []
    assert not [s for s in html.build_figure([run]).layout.shapes if s.type == "line"]
    assert "which patterns recovered" not in html.render(run)
