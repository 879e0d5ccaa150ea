"""The live terminal view's figures and renderings, from a samples file."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from connstorm.loadtests.orchestrator.live_view import LiveView, figures, plain_line, render
from connstorm.samples import SampleWriter


def _samples(path: Path) -> None:
    with SampleWriter(path, started_at=0) as w:
        w.write("locust", {"ok": True, "users": 20, "rps": 150.5, "requests": 900,
                           "failures": 12, "errors_by_kind": {"http_error": 12}}, t=4.0)
        w.write("postgres", {"ok": True, "db_total": 17, "max_connections": 20}, t=4.0)
        w.write("pgbouncer", {"ok": False, "error": "connection refused"}, t=4.0)
        w.write("emulator", {"ok": True, "env_total": 25, "cold_starts": 30,
                             "errors_by_kind": {"too_many_connections": 12}}, t=5.0)


def test_live_view_figures_from_the_newest_rows(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    _samples(path)
    f = figures(path)
    assert (f["users"], f["db_total"], f["max_connections"]) == (20, 17, 20)
    assert f["pooler_waiting"] is None  # a gap shows as unknown, not as zero
    assert f["elapsed_s"] == 5.0
    line = plain_line(f)
    assert "db=17/20" in line
    assert "pooler_waiting=–" in line
    assert "invocation_errors=too_many_connections=12" in line


def test_live_view_renders_a_table_and_prints_plain_lines_off_terminal(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    _samples(path)
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    console.print(render(figures(path), "connstorm run test"))
    table = out.getvalue()
    assert "DB connections / max_connections" in table
    assert "17 / 20" in table
    out.truncate(0)
    with LiveView(path, "connstorm run test", console) as view:
        view.refresh()
    assert "users=20" in out.getvalue()


def test_live_view_shows_the_newest_timeline_event(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    _samples(path)
    assert figures(path)["timeline"] is None
    with SampleWriter(path, started_at=0) as w:
        w.write("timeline", {"ok": True, "event": "start", "action": "freeze_database"}, t=3.0)
    f = figures(path)
    assert f["timeline"] == "freeze_database fired at 3 s"
    assert plain_line(f).endswith(" timeline=freeze_database_fired_at_3_s")
    with SampleWriter(path, started_at=0) as w:
        w.write("timeline", {"ok": True, "event": "end", "action": "freeze_database",
                             "outcome": "done"}, t=6.0)
    assert figures(path)["timeline"] == "freeze_database done at 6 s"
