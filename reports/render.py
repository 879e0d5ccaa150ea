"""Turning a run folder into ``report.html``, ``summary.md`` and ``junit.xml``.

The load tests call :func:`render_all` once a run has written its
``summary.json``; ``connstorm report`` calls it again later, or
:func:`render_comparison` for several runs side by side.

>>> paths = render_all(Path("runs/2026-11-26T22-00-00Z-direct-small"))  # doctest: +SKIP
>>> [p.name for p in paths]  # doctest: +SKIP
['report.html', 'summary.md', 'junit.xml']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from connstorm.reports import html, junit, markdown
from connstorm.reports.errors import ReportError
from connstorm.reports.run_folder import combine, load_run
from connstorm.run_folder import JUNIT_FILE, MARKDOWN_FILE, REPORT_FILE, SUMMARY_FILE, write_atomic

logger = logging.getLogger(__name__)


def _write(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, text)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror}") from None


def render_all(run_dir: Path, *, html_path: Path | None = None) -> list[Path]:
    """Write report.html, summary.md and junit.xml for one run folder (or a comparison).

    summary.md and junit.xml need summary.json; without it (a run that did not
    finish) only the HTML report, made from the samples, is written. Returns the
    paths written. Raises :class:`ReportError` for a missing or damaged folder.
    """
    run = load_run(Path(run_dir))
    written = [_write(html_path or run.path / REPORT_FILE, html.render(run))]
    if run.summary is not None:
        written.append(_write(run.path / MARKDOWN_FILE, markdown.render(run.summary)))
        written.append(_write(run.path / JUNIT_FILE, junit.render(run.summary)))
    else:
        logger.warning("%s: no %s; wrote the HTML report only", run.path, SUMMARY_FILE)
    return written


def render_comparison(run_dirs: Sequence[Path], out: Path) -> Path:
    """One report.html comparing several run folders, each shown as a variant."""
    runs = [load_run(Path(d)) for d in run_dirs]
    return _write(out, html.render(combine(runs, out.parent)))
