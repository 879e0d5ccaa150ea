"""The web UI's "Connections" tab and the live chart page, added to Locust's Flask app.

Locust's stock UI has three hard-coded charts and no API for another, so:

* the tab is a table (``extended_tabs`` / ``extended_tables``) fed by an
  ``after_request`` hook that adds ``extended_stats`` to ``/stats/requests``,
  which the UI polls every 2 s while a test runs;
* the chart is an own page, ``/connstorm/chart``, drawing DB connections,
  pooler clients, environments and the RDS Proxy stand-in's connections
  against users over time from ``/connstorm/samples.json``, with plotly.js
  served by ``/connstorm/plotly.js`` from the installed ``plotly`` package: it
  works without network access.

Both show what the stack runs (:mod:`.live_series`): the proxy's series and pin
reasons when it runs, PgBouncer's only when it carries traffic, the vanished
environments' connections once there are any.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Response, request

from connstorm import metric_names as names
from connstorm.loadtests.locust_plugin.live_series import chart_series, proxy_tab_rows
from connstorm.run_folder import SAMPLES_FILE
from connstorm.samples import read_samples

if TYPE_CHECKING:
    from connstorm.loadtests.locust_plugin.plugin_state import PluginState

TAB_KEY = "connstorm"
CHART_HTML = Path(__file__).with_name("chart.html")
#: application_name rows the tab lists (the largest groups).
MAX_APP_ROWS = 10


def tab_rows(state: PluginState) -> list[dict[str, Any]]:
    """The tab's table: one row per figure, with the collector it comes from.

    Headline figures first (users, connections against the limit, pool, Lambda
    environments, failures by kind), breakdowns after; the per-application list
    is cut to the :data:`MAX_APP_ROWS` largest, since every Lambda environment
    has its own name.
    """
    rows: list[dict[str, Any]] = []

    def add(source: str, metric: str, value: Any) -> None:
        rows.append({"source": source, "metric": metric, "value": value})

    latest = state.latest()
    for name, row in latest.items():
        if not row.get("ok"):
            add(name, "status", f"gap: {row.get('error', '')}")
    lo = latest.get("locust") or {}
    pg = latest.get("postgres") or {}
    pb = latest.get("pgbouncer") or {}
    em = latest.get("emulator") or {}
    if lo.get("ok"):
        add("locust", "users", lo["users"])
        add("locust", "requests/s / failures/s", f"{lo['rps']} / {lo['fail_per_s']}")
    if pg.get("ok"):
        add("postgres", "connections (all roles) / max_connections",
            f"{pg['db_total']} / {pg['max_connections']}")
        add("postgres", "connections of the application role", pg["db_app"])
        add("postgres", "superuser_reserved_connections", pg["superuser_reserved_connections"])
    proxy = latest.get("rds_proxy") or {}
    if proxy.get("ok"):
        for metric, value in proxy_tab_rows(proxy):
            add("rds_proxy", metric, value)
    pooled = state.pooler_traffic.update(latest.get("pgbouncer"))
    if pb.get("ok") and not pooled:
        add("pgbouncer", "traffic", "none so far: no function goes through PgBouncer")
    if pb.get("ok") and pooled:
        add("pgbouncer", "clients active / waiting", f"{pb['cl_active']} / {pb['cl_waiting']}")
        add("pgbouncer", "servers active / idle / used",
            f"{pb['sv_active']} / {pb['sv_idle']} / {pb['sv_used']}")
        add("pgbouncer", "longest wait (s)", pb["maxwait_s"])
        add("pgbouncer", "pool mode", pb["pool_mode"])
    if em.get("ok"):
        add("emulator", "environments total / busy / frozen / initializing",
            f"{em['env_total']} / {em['env_busy']} / {em['env_frozen']} / "
            f"{em['env_initializing']}")
        add("emulator", "concurrency now / peak", f"{em['concurrency']} / {em['concurrency_peak']}")
        add("emulator", "cold starts / throttles / timeouts",
            f"{em['cold_starts']} / {em['throttles']} / {em['timeouts']}")
        if em.get(names.VANISHED_CONNECTIONS):
            add("emulator", "connections of vanished environments / environments",
                f"{em[names.VANISHED_CONNECTIONS]} / {em.get(names.VANISHED_ENVIRONMENTS, 0)}")
    if lo.get("ok"):
        for kind, count in sorted(lo.get("errors_by_kind", {}).items()):
            add("locust", f"failures: {kind}", count)
    if em.get("ok"):
        for kind, count in sorted(em.get("errors_by_kind", {}).items()):
            add("emulator", f"invocation errors: {kind}", count)
    if pg.get("ok"):
        for key, count in sorted(pg.get("db_by_state", {}).items()):
            add("postgres", f"state: {key}", count)
        by_app = sorted(pg.get("db_by_app", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        for key, count in by_app[:MAX_APP_ROWS]:
            add("postgres", f"application_name: {key}", count)
        if len(by_app) > MAX_APP_ROWS:
            rest = by_app[MAX_APP_ROWS:]
            add("postgres", f"application_name: {len(rest)} more",
                sum(count for _, count in rest))
    for name, reason in state.skipped.items():
        add(name, "skipped", reason)
    add("connstorm", "live chart", "/connstorm/chart")
    return rows


def chart_data(path: Path) -> dict[str, Any]:
    """The chart's data (:func:`.live_series.chart_series`) and how many rows it read."""
    rows = read_samples(path)
    out = chart_series(rows)
    out["rows"] = len(rows)
    return out


@cache
def plotly_js() -> str:
    """plotly.js from the installed plotly package (several MB, read once)."""
    from plotly.offline import get_plotlyjs
    return str(get_plotlyjs())


def register(web_ui: Any, state: PluginState) -> None:
    """Add the tab, the after_request hook and the chart routes to Locust's web UI."""
    app = web_ui.app
    web_ui.template_args["extended_tabs"] = [{"title": "Connections", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{
        "key": TAB_KEY,
        "structure": [{"key": "source", "title": "Collector"},
                      {"key": "metric", "title": "Figure"},
                      {"key": "value", "title": "Value"}],
    }]
    web_ui.template_args["extended_csv_files"] = [
        {"href": f"/connstorm/{SAMPLES_FILE}", "title": f"Connection samples ({SAMPLES_FILE})"}]

    def _add_tab_data(response: Response) -> Response:
        # endswith: the UI may live under --web-base-path.
        if not request.path.endswith("/stats/requests") or response.mimetype != "application/json":
            return response
        try:
            doc = json.loads(response.get_data())
        except ValueError:
            return response
        doc["extended_stats"] = [{"key": TAB_KEY, "data": tab_rows(state)}]
        response.set_data(json.dumps(doc))
        return response

    app.after_request(_add_tab_data)

    auth = web_ui.auth_required_if_enabled

    def _chart() -> Response:
        return Response(CHART_HTML.read_text(encoding="utf-8"), mimetype="text/html")

    def _plotly() -> Response:
        response = Response(plotly_js(), mimetype="application/javascript")
        response.headers["Cache-Control"] = "max-age=86400"
        return response

    def _samples() -> Response:
        assert state.run_dir is not None  # register() runs after start() set it
        doc = chart_data(state.run_dir / SAMPLES_FILE)
        doc["latest"] = state.latest()
        doc["skipped"] = state.skipped
        return Response(json.dumps(doc), mimetype="application/json")

    def _samples_file() -> Response:
        assert state.run_dir is not None
        path = state.run_dir / SAMPLES_FILE
        data = path.read_bytes() if path.exists() else b""
        response = Response(data, mimetype="application/x-ndjson")
        response.headers["Content-Disposition"] = f"attachment;filename={SAMPLES_FILE}"
        return response

    for url, view in (("/connstorm/chart", _chart), ("/connstorm/plotly.js", _plotly),
                      ("/connstorm/samples.json", _samples),
                      (f"/connstorm/{SAMPLES_FILE}", _samples_file)):
        app.add_url_rule(url, endpoint=f"connstorm{view.__name__}", view_func=auth(view))
