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


SET_REASON = ("SQL changed session settings that the proxy doesn't track. Consider moving "
              "session configuration to the proxy's initialization query.")


def _proxy_row(clients: int, database: int, pinned: int, timeouts: int,
               reasons: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ok": True, "ClientConnections": clients, "DatabaseConnections": database,
            "DatabaseConnectionsCurrentlyBorrowed": pinned,
            "DatabaseConnectionsCurrentlySessionPinned": pinned,
            "MaxDatabaseConnectionsAllowed": 8, "BorrowTimeouts": timeouts,
            "pin_reasons": reasons or {}}


def test_tab_shows_the_proxy_its_pin_reasons_and_hides_an_idle_pgbouncer() -> None:
    reasons = {SET_REASON: {"count": 8, "sample": "SET search_path TO app, public"}}
    state = _state(rds_proxy=_proxy_row(40, 8, 8, 12, reasons),
                   pgbouncer={"ok": True, "cl_active": 0, "cl_waiting": 0, "sv_active": 0,
                              "sv_idle": 0, "sv_used": 0, "maxwait_s": 0.0,
                              "pool_mode": "transaction", "total_xact_count": 3},
                   emulator={"ok": True, "env_total": 40, "env_busy": 30, "env_frozen": 10,
                             "env_initializing": 0, "concurrency": 30, "concurrency_peak": 40,
                             "cold_starts": 40, "throttles": 0, "timeouts": 0,
                             "vanished_connections": 3, "vanished_environments": 2})
    figures = {(r["source"], r["metric"]): r["value"] for r in tab_rows(state)}
    assert figures[("rds_proxy", "client connections / database connections (pool bound)")] \
        == "40 / 8 (8)"
    assert figures[("rds_proxy", "multiplexing: client connections per database connection")] \
        == "5"
    assert figures[("rds_proxy", "database connections borrowed / pinned")] == "8 / 8"
    assert figures[("rds_proxy", "borrow timeouts so far")] == 12
    assert figures[("rds_proxy", f"pinned: {SET_REASON}")] == (
        "8 sessions, e.g. SET search_path TO app, public")
    # PgBouncer runs but no function goes through it: one line, none of its figures
    assert figures[("pgbouncer", "traffic")].startswith("none so far")
    assert ("pgbouncer", "clients active / waiting") not in figures
    assert figures[("emulator", "connections of vanished environments / environments")] \
        == "3 / 2"
    # ... until it carries traffic (its transaction count moves)
    state.collectors[1].latest = {**state.collectors[1].latest, "total_xact_count": 5}  # type: ignore[misc]
    figures = {(r["source"], r["metric"]): r["value"] for r in tab_rows(state)}
    assert ("pgbouncer", "clients active / waiting") in figures
    assert ("pgbouncer", "traffic") not in figures


def test_chart_data_draws_the_proxy_and_only_a_pooler_with_traffic(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    reasons = {SET_REASON: {"count": 3, "sample": "SET search_path TO app"}}
    with SampleWriter(path, started_at=0) as w:
        for t, (clients, database, timeouts) in enumerate(((0, 0, 0), (20, 4, 0), (40, 8, 6))):
            w.write("rds_proxy", _proxy_row(clients, database, database, timeouts,
                                            reasons if t else None), t=float(t))
            w.write("pgbouncer", {"ok": True, "cl_active": 0, "cl_waiting": 0, "sv_active": 0,
                                  "sv_idle": 1, "sv_used": 0, "sv_login": 0,
                                  "total_xact_count": 9}, t=float(t))
            w.write("emulator", {"ok": True, "env_total": clients, "vanished_connections": 0},
                    t=float(t))
    doc = chart_data(path)
    series = doc["series"]
    assert series["proxy_clients"]["y"] == [0.0, 20.0, 40.0]
    assert series["proxy_pinned"]["y"] == [0.0, 4.0, 8.0]
    assert series["proxy_max"]["y"] == [8.0, 8.0, 8.0]
    assert series["proxy_ratio"]["y"] == [None, 5.0, 5.0]  # no database connection: no ratio
    assert series["borrow_timeouts_per_s"]["y"] == [0.0, 0.0, 6.0]
    assert doc["pin_reasons"] == [{"reason": SET_REASON, "count": 3,
                                   "sample": "SET search_path TO app"}]
    # PgBouncer ran (an idle server connection) but served nobody: no series
    assert doc["runs"] == {"rds_proxy": True, "pgbouncer": True, "pgbouncer_traffic": False,
                           "vanished": False}
    assert series["pooler_servers"] == {"x": [], "y": []}
    assert series["vanished_connections"] == {"x": [], "y": []}  # none yet


def test_chart_data_draws_vanished_connections_once_there_are_any(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path, started_at=0) as w:
        for t, vanished in enumerate((0, 0, 3, 1)):
            w.write("emulator", {"ok": True, "env_total": 5, "vanished_connections": vanished,
                                 "vanished_environments": min(vanished, 2)}, t=float(t))
    doc = chart_data(path)
    assert doc["series"]["vanished_connections"] == {"x": [0.0, 1.0, 2.0, 3.0],
                                                     "y": [0.0, 0.0, 3.0, 1.0]}
    assert doc["runs"]["vanished"] is True
    assert doc["runs"]["rds_proxy"] is False
