"""The run folder: its default name, its creation, and JSON files written into it.

Layout and keys are documented in ``docs/run-folder.md`` (a contract). Files
holding passwords (``stack.json``) are written owner-only (0600) from the start:
created with that mode, never chmod'ed after the secret is already on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connstorm.errors import EnvironmentProblemError

#: Where runs go when ``--out`` is not given (relative to the current folder).
RUNS_ROOT = Path("runs")

#: The HTML report (``connstorm.reports``).
REPORT_FILE = "report.html"
#: The verdicts in markdown, for CI job summaries.
MARKDOWN_FILE = "summary.md"
#: The thresholds as JUnit XML, for CI test reports.
JUNIT_FILE = "junit.xml"


def default_run_dir(scenario_name: str, now: datetime | None = None,
                    root: Path = RUNS_ROOT) -> Path:
    """``runs/<UTC yyyymmdd-HHMMSS>-<scenario name>``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{scenario_name}"


def create_run_dir(path: Path) -> Path:
    """Make the run folder and its ``logs/``; returns the absolute path.

    A path that cannot be a folder (a file is in the way, no permission) is an
    EnvironmentProblemError naming it.
    """
    path = path.resolve()
    try:
        (path / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblemError(
            f"{path}: cannot create the run folder: {exc.strerror or exc}") from None
    return path


def write_json(path: Path, doc: Mapping[str, Any], *, mode: int = 0o644) -> None:
    """Write ``doc`` as indented JSON, atomically, with file mode ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_private_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write JSON readable by its owner only (it holds passwords)."""
    write_json(path, doc, mode=0o600)
