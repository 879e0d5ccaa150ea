"""The Connections tab's rows and the chart's series (pure logic over collector rows)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from connstorm.loadtests.locust_plugin.plugin_state import PluginState
from connstorm.loadtests.locust_plugin.web import MAX_APP_ROWS, chart_data, tab_rows
from connstorm.samples import SampleWriter


def _state(**latest: dict[str, Any]) -> PluginState:
    state = PluginState()
    state.collectors = [SimpleNamespace(name=k, latest=v) for k, v in latest.items()]  # type: ignore[misc]
    return state


def test_tab_rows_headline_first_and_app_names_cut() -> None:
    by_app = {f"api:{i:02d}": 1 for i in range(MAX_APP_ROWS + 5)}
    state = _state(
        postgres={"ok": True, "db_total": 16, "db_app": 15, "max_connections": 20,
                  "superuser_reserved_connections": 3, "db_by_state": {"idle": 15},
                  "db_by_app": by_app},
        locust={"ok": True, "users": 30, "rps": 12.5, "fail_per_s": 1.0,
                "errors_by_kind": {"http_error": 4}},
        pgbouncer={"ok": False, "error": "connection refused"})
    state.skipped = {"emulator": "no emulator stats URL"}
    rows = tab_rows(state)
    metrics = [(r["source"], r["metric"]) for r in rows]
    assert metrics[0] == ("pgbouncer", "status")
    assert rows[0]["value"] == "gap: connection refused"
    assert metrics[1] == ("locust", "users")
    assert ("postgres", "connections (all roles) / max_connections") in metrics[:5]
    app_rows = [r for r in rows if r["metric"].startswith("application_name")]
    assert len(app_rows) == MAX_APP_ROWS + 1
    assert app_rows[-1] == {"source": "postgres", "metric": "application_name: 5 more",
                            "value": 5}
    assert ("emulator", "skipped") in metrics
    assert rows[-1]["value"] == "/connstorm/chart"


def test_chart_data_series_from_ok_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path, started_at=0) as w:
        w.write("locust", {"ok": True, "users": 5, "rps": 10.0, "fail_per_s": 0.0}, t=1.0)
        w.write("pgbouncer", {"ok": True, "cl_active": 3, "cl_waiting": 4, "sv_active": 2,
                              "sv_idle": 1, "sv_used": 0, "sv_login": 0}, t=1.0)
        w.write("pgbouncer", {"ok": False, "error": "gone"}, t=2.0)
    series = chart_data(path)["series"]
    assert series["users"] == {"x": [1.0], "y": [5.0]}
    assert series["pooler_clients"] == {"x": [1.0], "y": [7.0]}
    assert series["pooler_servers"]["y"] == [3.0]
    assert series["db_total"] == {"x": [], "y": []}
