"""``report.html``: one self-contained page per run, or per comparison of variants.

Charts are plotly's, with plotly.js embedded in the file (``include_plotlyjs=True``)
so the page works offline and fetches nothing; a Content-Security-Policy in the
page makes that a guarantee rather than a hope. All charts share one time axis
(seconds since the run started); a comparison puts each variant in its own
column with the same axes, so the eye can go across.

Every string on the page comes from masked data (:mod:`connstorm.reports.run_folder`) and
is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from connstorm.reports import baseline, cloudwatch, drivers, pinning, timeline
from connstorm.reports import verdicts as v
from connstorm.reports.charts import CHARTS, Chart, Series
from connstorm.reports.run_folder import RunData
from connstorm.reports.verdict_line import verdict
from connstorm.run_folder import SUMMARY_FILE

#: The id of the charts' div; tests read ``document.getElementById(CHARTS_DIV).data``.
CHARTS_DIV = "connstorm-charts"
#: A baseline's series: its name's suffix, and its ``meta.source``'s prefix.
BASELINE_SUFFIX = " (baseline)"
BASELINE_SOURCE = "baseline:"
ROW_HEIGHT_PX = 250

# Plotly sets styles and builds images inline; nothing else is allowed, nothing fetched.
_CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:")

# One colour per series name, the same in every column of a comparison.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a")
_FIXED_COLOURS = {"max_connections": "#d62728", "pool size": "#d62728", "db total": "#111111",
                  "requests: too_many_connections": "#d62728",
                  "functions: too_many_connections": "#8b0000"}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em;margin:0 0 .3em} h2{font-size:1.15em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.3em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} .PASS{color:#1a7f37;font-weight:bold} .FAIL{color:#cf222e;font-weight:bold}
.muted{color:#666} pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}
"""


def _colour(name: str, assigned: dict[str, str]) -> str:
    if name in _FIXED_COLOURS:
        return _FIXED_COLOURS[name]
    if name not in assigned:
        assigned[name] = _PALETTE[len(assigned) % len(_PALETTE)]
    return assigned[name]


def _trace(series: Series, colour: str, legend: str, show: bool, stack: str, *,
           baseline: bool = False) -> Any:
    """One plotly trace; a baseline's is dotted and lighter, named "... (baseline)", its
    ``meta.source`` prefixed ``baseline:``, and never stacked with the run's areas."""
    name = f"{series.name}{BASELINE_SUFFIX}" if baseline else series.name
    common: dict[str, Any] = {"name": name, "x": series.x, "y": series.y,
                              "legend": legend, "legendgroup": f"{legend}:{name}",
                              "showlegend": show,
                              "meta": {"source": f"{BASELINE_SOURCE}{series.source}"
                                       if baseline else series.source}}
    if series.style == "bar":
        return go.Bar(marker={"color": colour}, opacity=0.25 if baseline else 0.6, **common)
    line: dict[str, Any] = {"color": colour, "width": 2 if series.style == "limit" else 1.5}
    if series.style == "limit":
        line["dash"] = "dash"
    if baseline:
        line["dash"] = "dot"
        mode = "lines+markers" if series.style == "points" else "lines"
        return go.Scatter(mode=mode, line=line, opacity=0.5, connectgaps=False, **common)
    extra: dict[str, Any] = {}
    if series.style == "area":
        # A gap in one state would make the stack fall to zero; the total line
        # (not stacked) shows the gap instead.
        extra = {"stackgroup": stack, "fillcolor": colour, "stackgaps": "interpolate"}
        line["width"] = 0.5
    # Sparse series (CloudWatch's one point a minute) get markers: a lone point
    # between two gaps would otherwise draw nothing.
    mode = "lines+markers" if series.style == "points" else "lines"
    return go.Scatter(mode=mode, line=line, connectgaps=False, **extra, **common)


def _mark_empty(fig: go.Figure, chart: Chart, row: int, col: int) -> None:
    """Say so in a cell with nothing to show (a direct run has no pooler).

    Plotly hides the axes of a subplot no trace uses, which would take the shared
    row's tick labels and the time axis's title with it: an invisible point keeps
    them.
    """
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"opacity": 0},
                             showlegend=False, hoverinfo="skip", meta={"source": ""}),
                  row=row, col=col)
    fig.add_annotation(text=chart.empty, xref="x domain", yref="y domain",
                       x=0.5, y=0.5, showarrow=False, font={"color": "#888"}, row=row, col=col)


def _mark_timeline(fig: go.Figure, runs: Sequence[RunData], n_rows: int) -> None:
    """A dotted vertical line in every chart of a run where a timeline action fired,
    named at the top chart (the samples' ``timeline`` rows)."""
    for col, run in enumerate(runs, start=1):
        for x, label in timeline.marks(run.series("timeline")):
            for row in range(1, n_rows + 1):
                extra: dict[str, Any] = ({"annotation_text": label,
                                          "annotation_position": "top left",
                                          "annotation_font": {"size": 10, "color": "#b00"}}
                                         if row == 1 else {})
                fig.add_vline(x=x, line={"color": "#b00", "width": 1, "dash": "dot"},
                              row=row, col=col, **extra)


#: Up to this many columns a variant's name fits on one line above its column.
WIDE_COLUMNS = 3


def _column_title(name: str, columns: int) -> str:
    """A variant's name over its column; with more than :data:`WIDE_COLUMNS` columns,
    broken after its first ``-`` (``direct-`` / ``module_level``): the six variants of
    ``connstorm repro`` on one line each ran into each other on a laptop's screen."""
    return name.replace("-", "-<br>", 1) if columns > WIDE_COLUMNS else name


def build_figure(runs: Sequence[RunData]) -> go.Figure:
    """The charts of ``runs`` (one column each), rows sharing their y axes, all one x axis.

    A run compared with a baseline has the baseline's series in the same chart,
    dotted and lighter, on the same time axis (seconds since each run started).
    """
    built = [[chart.build(run) for run in runs] for chart in CHARTS]
    bases = [[chart.build(run.baseline) if run.baseline is not None else [] for run in runs]
             for chart in CHARTS]
    rows: list[tuple[Chart, list[list[Series]], list[list[Series]]]] = [
        (chart, per_run, per_base)
        for chart, per_run, per_base in zip(CHARTS, built, bases, strict=True)
        if any(per_run) or any(per_base)]
    if not rows:
        rows = [(CHARTS[0], [[] for _ in runs], [[] for _ in runs])]
    fig = make_subplots(rows=len(rows), cols=len(runs), shared_xaxes="all",
                        shared_yaxes="rows", vertical_spacing=0.045, horizontal_spacing=0.02,
                        column_titles=([_column_title(r.name, len(runs)) for r in runs]
                                       if len(runs) > 1 else None))
    for row_index, (chart, per_run, per_base) in enumerate(rows, start=1):
        colours: dict[str, str] = {}
        legend = "legend" if row_index == 1 else f"legend{row_index}"
        shown: set[str] = set()
        for col_index, (series_list, base_list) in enumerate(zip(per_run, per_base, strict=True),
                                                             start=1):
            if not series_list and not base_list:
                _mark_empty(fig, chart, row_index, col_index)
            for series in series_list:
                fig.add_trace(_trace(series, _colour(series.name, colours), legend,
                                     series.name not in shown, f"{chart.key}{col_index}"),
                              row=row_index, col=col_index)
                shown.add(series.name)
            for series in base_list:
                key = f"{series.name}{BASELINE_SUFFIX}"
                fig.add_trace(_trace(series, _colour(series.name, colours), legend,
                                     key not in shown, f"{chart.key}{col_index}", baseline=True),
                              row=row_index, col=col_index)
                shown.add(key)
        fig.update_yaxes(title_text=chart.title, row=row_index, col=1, rangemode="tozero")
        axis_name = "yaxis" if row_index == 1 else f"yaxis{(row_index - 1) * len(runs) + 1}"
        top = fig.layout[axis_name].domain[1]
        fig.update_layout({legend: {"x": 1.01, "xanchor": "left", "y": top, "yanchor": "top",
                                    "font": {"size": 11}, "tracegroupgap": 2}})
    _mark_timeline(fig, runs, len(rows))
    fig.update_xaxes(title_text="seconds since start", row=len(rows))
    fig.update_layout(height=max(350, ROW_HEIGHT_PX * len(rows)), template="plotly_white",
                      margin={"l": 70, "r": 190, "t": (20 if len(runs) == 1 else
                                                        50 if len(runs) <= WIDE_COLUMNS else 70),
                              "b": 50},
                      hovermode="x unified", barmode="overlay")
    return fig


# ---------------------------------------------------------------- page parts


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _escaped(table: tuple[list[str], list[list[str]]]) -> tuple[list[str], list[list[str]]]:
    headings, rows = table
    return headings, [[_e(c) for c in row] for row in rows]


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _badge(passed: Any) -> str:
    text = v.passed_text(passed)
    return f'<span class="{_e(text)}">{_e(text)}</span>'


def _versions(versions: Mapping[str, str]) -> str:
    items = [f"{_e(k)} {_e(val or 'unknown')}" for k, val in versions.items()]
    return '<p class="muted">' + " · ".join(items) + "</p>"


def _variant_table(summary: Mapping[str, Any] | None) -> str:
    entries = v.variants(summary)
    if not entries:
        return (f'<p class="muted">No {SUMMARY_FILE}: the run did not finish; '
                'charts only.</p>')
    headings = ["variant", "verdict", *(h for _, h in v.VARIANT_COLUMNS)]
    rows = [[_e(e.get("name", "")) + (f'<br><span class="muted">{_e(e["shows"])}</span>'
                                      if e.get("shows") else ""), _e(verdict(e)),
             *(_e(v.cell(e, key)) for key, _ in v.VARIANT_COLUMNS)] for e in entries]
    return _table(headings, rows)


def _thresholds_parts(summary: Mapping[str, Any] | None) -> list[str]:
    """The thresholds; a repro's expectations apart from its variants' own (as summary.md)."""
    if not v.decides_alone(summary):
        return ["<h2>Thresholds</h2>", _thresholds_table(summary)]
    deciding = [[_e(t.get("name", "?")), _e(v.fmt(t.get("limit"), 3)),
                 _e(v.fmt(t.get("actual"), 3)), _badge(t.get("passed"))]
                for t in v.thresholds(summary)]
    parts = ["<h2>Checks that decide the verdict</h2>",
             _table(["check", "limit", "actual", "result"], deciding)]
    own = [[_e(e.get("name", "")), _e(t.get("name", "?")), _e(v.fmt(t.get("limit"), 3)),
            _e(v.fmt(t.get("actual"), 3)), _badge(t.get("passed")),
            _e(v.expected_failure_text(e, t))]
           for e in v.variants(summary) for t in v.thresholds(e)]
    if own:
        parts += ["<h2>Each variant's own thresholds (they do not decide the verdict)</h2>",
                  '<p class="muted">A variant meant to fail shows the failure the others '
                  "fix; its FAIL rows are expected.</p>",
                  _table(["variant", "threshold", "limit", "actual", "result",
                          "expected failure"], own)]
    return parts


def _thresholds_table(summary: Mapping[str, Any] | None) -> str:
    results = v.all_thresholds(summary)
    if not results:
        return '<p class="muted">The scenario sets no thresholds.</p>'
    several = any(name for name, _ in results)
    headings = (["variant"] if several else []) + ["threshold", "limit", "actual", "result"]
    rows = [([_e(name or "whole run")] if several else []) +
            [_e(t.get("name", "?")), _e(v.fmt(t.get("limit"), 3)), _e(v.fmt(t.get("actual"), 3)),
             _badge(t.get("passed"))] for name, t in results]
    return _table(headings, rows)


def _details(title: str, doc: Mapping[str, Any]) -> str:
    if not doc:
        return ""
    text = json.dumps(doc, indent=2, sort_keys=True, default=str)
    return f"<details><summary>{_e(title)}</summary><pre>{_e(text)}</pre></details>"


def render(run: RunData) -> str:
    """The whole page for a run or a comparison, as one HTML string."""
    runs = list(run.variants) if run.is_comparison else [run]
    fig = build_figure(runs)
    charts = fig.to_html(full_html=False, include_plotlyjs=True, div_id=CHARTS_DIV,
                         config={"displaylogo": False, "responsive": True})
    title = f"connstorm: {run.scenario_name}"
    description = run.scenario.get("description") or ""
    kind = (f"comparison of {len(runs)} variants" if run.is_comparison else "run")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}: {_badge(v.overall_passed(run.summary))}</h1>",
        f"<p>{_e(description)}</p>" if description else "",
        f'<p class="muted">{_e(kind)} · folder {_e(run.path.name)}</p>',
        _versions(run.versions),
        *(["<h2>Driver matrix</h2>", _table(*_escaped(drivers.html_rows(run.summary or {}))),
           _table(drivers.DETAIL_HEADINGS, [[_e(c) for c in r]
                                            for r in drivers.detail_rows(run.summary or {})])]
          if drivers.entries(run.summary) else ["<h2>Verdicts</h2>",
                                                _variant_table(run.summary)]),
        *_thresholds_parts(run.summary),
        *(["<h2>Faults: which patterns recovered</h2>",
           _table(timeline.HEADINGS, [[_e(c) for c in r] for r in timeline.rows(run.summary)])]
          if timeline.rows(run.summary) else []),
        *(["<h2>RDS Proxy pinning audit</h2>",
           _table(pinning.HEADINGS, [[_e(c) for c in r] for r in pinning.rows(run.summary)])]
          if pinning.rows(run.summary) else []),
        *(["<h2>Compared with the baseline</h2>",
           f'<p class="muted">{_e(baseline.caption(run.summary))} In the charts, its series '
           "are the dotted, lighter lines.</p>",
           _table(baseline.HEADINGS, [[_e(c) for c in r] for r in baseline.rows(run.summary)])]
          if baseline.section(run.summary) else []),
        *(["<h2>CloudWatch</h2>", f'<p class="muted">{_e(cloudwatch.caption(run.summary))}</p>',
           _table(cloudwatch.HEADINGS,
                  [[_e(c) for c in r] for r in cloudwatch.rows(run.summary)])]
          if cloudwatch.rows(run.summary) else []),
        "<h2>Over time</h2>", charts,
        "<h2>Configuration</h2>",
        *(_details(f"scenario {r.name}", r.scenario) for r in runs),
        *(_details(f"stack {r.name} (passwords masked)", r.stack) for r in runs),
        "</body></html>", ""]
    return "\n".join(p for p in parts if p)
