"""The driver matrix of a ``connstorm drivers`` run: terminal, ``summary.md``, HTML and README.

Made from ``summary.json`` alone (key ``drivers``: one entry per configuration
and path). The README's table is rendered here too, from the summary of a real
run kept in ``docs/drivers-matrix.json``, and written between the markers
:data:`START` and :data:`END`; a test renders it again and compares, so the
table and the code that renders it cannot drift apart::

    python -m connstorm.reports.drivers runs/<run>/summary.json --readme README.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connstorm.error_kinds import PREPARED_STATEMENT_STRANDED

START = "<!-- drivers-table:start -->"
END = "<!-- drivers-table:end -->"
#: The README's copy of the run its table shows.
KEPT_SUMMARY = Path("docs") / "drivers-matrix.json"
DETAIL_HEADINGS = ("configuration", "path", "verdict", "why", "sample / first message")

Entry = Mapping[str, Any]


def entries(summary: Mapping[str, Any] | None) -> list[Entry]:
    """The ``drivers`` entries of a summary (none for any other run)."""
    found = (summary or {}).get("drivers")
    return [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []


def matrix(summary: Mapping[str, Any]) -> list[tuple[str, list[Entry | None]]]:
    """One row per configuration, in run order: its label and its entry per path."""
    paths = [str(p) for p in summary.get("paths") or []]
    rows: dict[str, dict[str, Entry]] = {}
    labels: dict[str, str] = {}
    for entry in entries(summary):
        name = str(entry.get("name"))
        labels.setdefault(name, f"{entry.get('driver')}: {entry.get('config')}")
        rows.setdefault(name, {})[str(entry.get("path"))] = entry
    return [(labels[n], [cells.get(p) for p in paths]) for n, cells in rows.items()]


def _decisive(errors: Mapping[str, Any]) -> str:
    """The error kind to show: the requests' most frequent, else a stranded statement.

    A request's own error says more than the statement it came from, which
    ``connstorm drivers`` also reads off the server's log.
    """
    return str(max(errors, key=lambda k: (k != PREPARED_STATEMENT_STRANDED,
                                          (errors[k] or {}).get("count", 0))))


def _why(entry: Entry) -> str:
    """The first error kind, else the first pin reason (shortened), else ""."""
    errors = entry.get("errors") or {}
    if errors:
        return _decisive(errors)
    pins = entry.get("pin_reasons") or []
    if pins:
        return str(pins[0].get("reason", "")).split(".")[0]
    return ""


def cell_text(entry: Entry | None) -> str:
    """``fails (prepared_statement)`` / ``works``, then peak connections and p95."""
    if entry is None:
        return "-"
    why = _why(entry)
    head = f"{entry.get('verdict')}" + (f" ({why})" if why and entry.get("verdict") != "pins"
                                        else "")
    p95 = entry.get("p95_ms")
    figures = f"{entry.get('peak_db_connections', 0)} conn" + (
        f", p95 {p95:g} ms" if isinstance(p95, int | float) else "")
    return f"{head}; {figures}"


def detail_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Every cell that did not simply work: what decided its verdict, with the evidence."""
    rows = []
    for entry in entries(summary):
        label = f"{entry.get('driver')}: {entry.get('config')}"
        for kind, info in (entry.get("errors") or {}).items():
            info = info if isinstance(info, Mapping) else {}
            rows.append([label, str(entry.get("path")), str(entry.get("verdict")),
                         f"{kind} x{info.get('count', 0)}", str(info.get("first", ""))])
        for pin in entry.get("pin_reasons") or []:
            rows.append([label, str(entry.get("path")), str(entry.get("verdict")),
                         f"pinned x{pin.get('count', 0)}: {pin.get('reason', '')}",
                         str(pin.get("sample", ""))])
    return rows


def detail_lines(summary: Mapping[str, Any]) -> list[str]:
    """:func:`detail_rows` as terminal lines, plus the paths left out."""
    lines = [f"{label} on {path}: {verdict}: {why}: {sample}"
             for label, path, verdict, why, sample in detail_rows(summary)]
    for path, why in (summary.get("unavailable") or {}).items():
        lines.append(f"{path}: not run: {why}")
    return lines


def versions_line(summary: Mapping[str, Any]) -> str:
    """``PostgreSQL 15.18, PgBouncer 1.18.0, 1.24.1, asyncpg 0.32.0, ...``."""
    versions = dict(summary.get("versions") or {})
    head = [f"PostgreSQL {versions.pop('postgresql', '?')}",
            f"PgBouncer {versions.pop('pgbouncer', '?')}"]
    for key in ("connstorm", "python"):
        versions.pop(key, None)
    return ", ".join(head + [f"{k} {v}" for k, v in sorted(versions.items())])


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(esc(h) for h in headings) + " |",
             "|" + "|".join("---" for _ in headings) + "|"]
            + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows])


def markdown(summary: Mapping[str, Any]) -> list[str]:
    """The ``summary.md`` section: the matrix, then what decided each verdict."""
    if not entries(summary):
        return []
    load = summary.get("load") or {}
    lines = ["## Driver matrix", "",
             f"{versions_line(summary)}; {load.get('users')} environments x "
             f"{load.get('requests_per_user')} requests per cell; {summary.get('elapsed_s')} s "
             f"on {summary.get('date')}.", ""]
    lines += _table(["driver: configuration", *(str(p) for p in summary.get("paths") or [])],
                    [[label, *(cell_text(c) for c in cells)] for label, cells in matrix(summary)])
    details = detail_rows(summary)
    if details:
        lines += ["", "### What decided each verdict", "", *_table(DETAIL_HEADINGS, details)]
    for path, why in (summary.get("unavailable") or {}).items():
        lines += ["", f"{path}: not run: {why}"]
    return [*lines, ""]


def html_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headings and rows of the HTML matrix (the caller escapes and lays them out)."""
    headings = ["driver: configuration", *(str(p) for p in summary.get("paths") or [])]
    return headings, [[label, *(cell_text(c) for c in cells)] for label, cells in matrix(summary)]


def readme_table(summary: Mapping[str, Any]) -> str:
    """The README's block: what ran, the verdicts, the reason of each that is not ``works``."""
    load = summary.get("load") or {}
    paths = [str(p) for p in summary.get("paths") or []]
    lines = [START,
             f"Measured {summary.get('date')} with {versions_line(summary)} "
             f"(connstorm {(summary.get('versions') or {}).get('connstorm', '?')}): "
             f"{load.get('users')} Lambda environments x {load.get('requests_per_user')} "
             f"requests per cell, all {len(entries(summary))} cells in "
             f"{summary.get('elapsed_s')} s on a 2-core machine.", ""]
    rows = [[label, *(_readme_cell(c) for c in cells)] for label, cells in matrix(summary)]
    lines += _table(["driver: configuration", *paths], rows)
    return "\n".join([*lines, END])


def evidence(entry: Entry, width: int = 72) -> str:
    """What decided a verdict other than ``works``: the pinning statement or the first error."""
    errors = entry.get("errors") or {}
    if errors:
        kind = _decisive(errors)
        text = str((errors[kind] or {}).get("first") or kind)
    else:
        pins = entry.get("pin_reasons") or []
        text = str(pins[0].get("sample", "")) if pins else ""
    text = " ".join(text.split()).replace("`", "'")
    return text if len(text) <= width else text[:width - 1] + "…"


def _readme_cell(entry: Entry | None) -> str:
    if entry is None:
        return "-"
    why = evidence(entry)
    return f"**{entry.get('verdict')}**" + (f": `{why}`" if why else "")


def write_readme(readme: Path, summary: Mapping[str, Any]) -> None:
    """Replace the README's block (between the markers) with :func:`readme_table`."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + readme_table(summary) + tail, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Keep a run's summary as the README's source and render the README's table from it."""
    parser = argparse.ArgumentParser(prog="python -m connstorm.reports.drivers")
    parser.add_argument("summary", type=Path)
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    summary = json.loads(args.summary.read_text(encoding="utf-8"))
    if not entries(summary):
        sys.stderr.write(f"{args.summary}: not a connstorm drivers summary\n")
        return 2
    kept = args.readme.parent / KEPT_SUMMARY
    kept.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_readme(args.readme, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
