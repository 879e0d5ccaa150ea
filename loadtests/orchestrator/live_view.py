"""The live terminal view of ``connstorm run``: one table, refreshed from ``samples.jsonl``.

It reads the tail of the samples file (the collectors run inside Locust, a
separate process), so the view costs the run nothing and shows exactly what the
run folder will hold. On a terminal it redraws in place with ``rich.live``;
elsewhere (CI logs) it prints one plain line every few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from connstorm import metric_names as names
from connstorm.console import output_console
from connstorm.local_stack.resource import Resource
from connstorm.samples import latest_by_collector, tail_samples

#: Seconds between plain status lines when the output is not a terminal.
PLAIN_EVERY_S = 5.0


def figures(samples_path: Path) -> dict[str, Any]:
    """The figures the view shows, from the newest row of each collector."""
    latest = latest_by_collector(tail_samples(samples_path))
    lo = latest.get("locust", {})
    pg = latest.get("postgres", {})
    pb = latest.get("pgbouncer", {})
    em = latest.get("emulator", {})
    return {
        "elapsed_s": max((float(r.get("elapsed_s") or 0) for r in latest.values()), default=0.0),
        "users": lo.get("users"), "rps": lo.get("rps"), "requests": lo.get("requests"),
        "failures": lo.get("failures"), "errors_by_kind": lo.get("errors_by_kind") or {},
        "db_total": pg.get("db_total") if pg.get("ok") else None,
        "max_connections": pg.get("max_connections"),
        "db_gap": pg.get("error") if pg and not pg.get("ok") else None,
        "pooler_waiting": pb.get(names.CL_WAITING) if pb.get("ok") else None,
        "pooler_active": pb.get(names.CL_ACTIVE) if pb.get("ok") else None,
        "environments": em.get(names.ENV_TOTAL) if em.get("ok") else None,
        "cold_starts": em.get(names.COLD_STARTS) if em.get("ok") else None,
        "invocation_errors": em.get("errors_by_kind") or {},
        "timeline": _timeline_text(latest.get("timeline")),
    }


def _timeline_text(row: dict[str, Any] | None) -> str | None:
    """The newest ``[[timeline]]`` event: ``freeze_database fired at 28 s`` / ``... done``."""
    if not row:
        return None
    what = f"{row.get('action')} fired at {float(row.get('elapsed_s') or 0):.0f} s"
    if row.get("event") == "end":
        what = (f"{row.get('action')} {row.get('outcome', 'done')} at "
                f"{float(row.get('elapsed_s') or 0):.0f} s")
    return what


def _show(value: Any) -> str:
    return "–" if value is None else str(value)


def render(f: dict[str, Any], title: str) -> Table:
    """The view as a rich table."""
    table = Table(title=f"{title}  ({f['elapsed_s']:.0f} s)", show_header=False, box=None)
    table.add_column("figure", style="bold")
    table.add_column("value")
    table.add_row("users", _show(f["users"]))
    table.add_row("requests/s", _show(f["rps"]))
    table.add_row("requests / failures", f"{_show(f['requests'])} / {_show(f['failures'])}")
    db = f"{_show(f['db_total'])} / {_show(f['max_connections'])}"
    if f["db_gap"]:
        db += f"  (gap: {f['db_gap'][:60]})"
    table.add_row("DB connections / max_connections", db)
    table.add_row("pooler clients active / waiting",
                  f"{_show(f['pooler_active'])} / {_show(f['pooler_waiting'])}")
    table.add_row("Lambda environments (cold starts)",
                  f"{_show(f['environments'])} ({_show(f['cold_starts'])})")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(f["errors_by_kind"].items())) or "none"
    table.add_row("failures by kind", kinds)
    inv = ", ".join(f"{k} {v}" for k, v in sorted(f["invocation_errors"].items())) or "none"
    table.add_row("Lambda invocation errors", inv)
    if f.get("timeline"):
        table.add_row("timeline", str(f["timeline"]))
    return table


def plain_line(f: dict[str, Any]) -> str:
    """The view as one log line."""
    kinds = ",".join(f"{k}={v}" for k, v in sorted(f["errors_by_kind"].items())) or "none"
    inv = ",".join(f"{k}={v}" for k, v in sorted(f["invocation_errors"].items())) or "none"
    return (f"[{f['elapsed_s']:.0f}s] users={_show(f['users'])} rps={_show(f['rps'])} "
            f"failures={_show(f['failures'])} db={_show(f['db_total'])}/"
            f"{_show(f['max_connections'])} pooler_waiting={_show(f['pooler_waiting'])} "
            f"envs={_show(f['environments'])} errors={kinds} invocation_errors={inv}"
            + (f" timeline={f['timeline'].replace(' ', '_')}" if f.get("timeline") else ""))


class LiveView(Resource):
    """Shows the run's figures until :meth:`stop`; call :meth:`refresh` in the wait loop."""

    def __init__(self, samples_path: Path, title: str, console: Console | None = None) -> None:
        self.samples_path = samples_path
        self.title = title
        self.console = console or output_console()
        self._live: Live | None = None
        self._last_plain = 0.0

    def start(self) -> None:
        """Begin drawing (in place on a terminal)."""
        if self.console.is_terminal:
            self._live = Live(render(figures(self.samples_path), self.title),
                              console=self.console, refresh_per_second=2, transient=False)
            self._live.start()

    def refresh(self) -> None:
        """Redraw from the newest samples."""
        f = figures(self.samples_path)
        if self._live is not None:
            self._live.update(render(f, self.title))
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self.console.print(plain_line(f), highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Stop drawing, leaving the last frame on screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None

