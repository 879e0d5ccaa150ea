"""Vanished environments in the reports: their own series in the charts, and the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connstorm.reports import charts
from connstorm.reports.run_folder import load_run
from connstorm.reports.verdict_line import verdict
from tests.reports.run_folders import samples, summary, write_run


def _with_vanished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The emulator rows hold 3 connections of 2 reaped environments from the 8th second."""
    for row in rows:
        if row["collector"] == "emulator":
            held = 3 if row["elapsed_s"] >= 8 else 0
            row.update(vanished_connections=held, vanished_environments=2 if held else 0)
    return rows


def test_connection_chart_draws_the_vanished_connections_apart(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", rows=_with_vanished(samples())))
    series = {s.name: s for s in charts.db_connections(run)}
    held = series["vanished envs' conns (no process)"]
    assert held.source == "emulator.vanished_connections"
    assert max(y or 0 for y in held.y) == 3
    assert {"max_connections", "db total"} <= set(series)
    envs = {s.name: s for s in charts.environments(run)}
    assert max(y or 0 for y in envs["envs vanished, conns held"].y) == 2


def test_connection_chart_without_vanished_environments_has_no_such_line(
        tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", rows=samples()))
    assert all("vanished" not in s.name for s in charts.db_connections(run))


def test_verdict_names_the_connections_reaped_environments_left_and_the_refusals() -> None:
    variant = dict(summary()["variants"][0])
    assert "reaped" not in verdict(variant)
    variant["peak_vanished_connections"] = 6
    variant["lambda_lifecycle"] = {"refused_while_vanished": 12}
    line = verdict(variant)
    assert ("up to 6 connections of reaped environments stayed open at the server with no "
            "process behind them") in line
    assert "12 invocations were refused (too_many_connections) while they held" in line
