"""The run folder: the name of every file in it, where it goes, and how it is written.

Every ``connstorm up``, ``run``, ``ui``, ``live`` and ``repro`` writes one
folder, and later tools (``connstorm report``, CI jobs, people's scripts) read
it, so its layout is a contract (``docs/run-folder.md``). This module owns that
contract: each file's name is a constant here and nowhere else (a test greps
the code for stray literals), and the few ways of writing and reading the files
are here too, so that every writer gets the same guarantees:

* **atomic**: a reader (the live view, the Locust tab, a CI step) never sees
  half a file: everything is written to a temporary file in the same folder,
  then renamed over the target (:func:`write_atomic`, the one such helper);
* **private from the start**: files holding passwords (``stack.json``,
  ``emulator-config.json``) are created owner-only (0600), never chmod'ed after
  the secret is already on disk (:func:`write_private_json`);
* **forgiving readers**: :func:`load_json` treats a missing file as empty (a run
  killed half way leaves some out), :func:`log_tail` the same for logs.

Names below are relative to the run folder: ``run_dir / POSTGRES_LOG``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connstorm.errors import EnvironmentProblemError

#: Where runs go when ``--out`` is not given (relative to the current folder).
RUNS_ROOT = Path("runs")

# ------------------------------------------------------------------ the files

#: The scenario as resolved (overrides applied), as JSON.
SCENARIO_FILE = "scenario.json"
#: Where everything of the stack is, with passwords (0600).
STACK_FILE = "stack.json"
#: The collectors' time series, one JSON object per line.
SAMPLES_FILE = "samples.jsonl"
#: Which collectors ran and which were skipped, and why (the Locust plugin).
COLLECTORS_FILE = "collectors.json"
#: One JSON object per invocation (the Lambda emulator).
INVOCATIONS_FILE = "invocations.jsonl"
#: The emulator's resolved configuration, database passwords included (0600).
EMULATOR_CONFIG_FILE = "emulator-config.json"
#: The emulator process's port and pid, once it listens.
EMULATOR_READY_FILE = "emulator-ready.json"
#: Locust's ``--csv`` prefix: ``locust_stats.csv``, ``locust_failures.csv``, ...
LOCUST_CSV_PREFIX = "locust"
LOCUST_STATS_CSV = f"{LOCUST_CSV_PREFIX}_stats.csv"
LOCUST_FAILURES_CSV = f"{LOCUST_CSV_PREFIX}_failures.csv"
#: The run's figures and verdicts, written at the end.
SUMMARY_FILE = "summary.json"
#: The verdicts in markdown, for CI job summaries and pull requests.
MARKDOWN_FILE = "summary.md"
#: The thresholds as JUnit XML, for CI test reports.
JUNIT_FILE = "junit.xml"
#: The HTML report.
REPORT_FILE = "report.html"
#: ``connstorm report A B ...``'s default output, in the current folder.
COMPARISON_FILE = "comparison.html"
#: A comparison (``connstorm repro``) keeps one run folder per variant in here.
VARIANTS_DIR = "variants"
#: The copy of the run's ``--baseline`` (``loadtests/orchestrator/baseline.py``).
BASELINE_DIR = "baseline"
#: The stack's private scratch folder for server data (or a file naming it).
SCRATCH_LINK = ".stack"
#: The same, of a PostgreSQL or PgBouncer started on its own (tests, benchmarks).
POSTGRES_SCRATCH_LINK = f"{SCRATCH_LINK}-postgres"
PGBOUNCER_SCRATCH_LINK = f"{SCRATCH_LINK}-pgbouncer"

# ------------------------------------------------------------------- the logs

LOGS_DIR = "logs"
POSTGRES_LOG = f"{LOGS_DIR}/postgres.log"
PGBOUNCER_LOG = f"{LOGS_DIR}/pgbouncer.log"
EMULATOR_LOG = f"{LOGS_DIR}/emulator.log"
RDS_PROXY_LOG = f"{LOGS_DIR}/rds_proxy.log"
#: Locust's whole output, its summary tables included.
LOCUST_LOG = f"{LOGS_DIR}/locust.log"
LOCUST_WORKER_LOG = f"{LOGS_DIR}/locust-worker.log"
#: One folder per function, one log per execution environment (its log stream).
LAMBDA_LOGS_DIR = f"{LOGS_DIR}/lambda"


def function_logs(run_dir: Path, function: str) -> Path:
    """``logs/lambda/<function>/``: the logs of a function's execution environments."""
    return run_dir / LAMBDA_LOGS_DIR / function


def variant_dir(run_dir: Path, variant: str) -> Path:
    """``variants/<variant>/``: one variant's own run folder inside a comparison."""
    return run_dir / VARIANTS_DIR / variant


# ------------------------------------------------------------ making a folder

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
        (path / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblemError(
            f"{path}: cannot create the run folder: {exc.strerror or exc}") from None
    return path


# ---------------------------------------------------------------- writing

def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, whole.

    The bytes go to a temporary file in the same folder (created 0600 by
    ``mkstemp``, set to ``mode`` before anything is written), then
    ``os.replace`` renames it over ``path``, which POSIX makes atomic within one
    file system. Two writers never share a temporary name. Returns ``path``.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def json_text(doc: Mapping[str, Any]) -> str:
    """``doc`` as the run folder writes JSON: indented, keys in order, one newline."""
    return json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"


def write_json(path: Path, doc: Mapping[str, Any], *, mode: int = 0o644) -> Path:
    """Write ``doc`` as indented JSON, atomically, with file mode ``mode``."""
    return write_atomic(path, json_text(doc), mode=mode)


def write_private_json(path: Path, doc: Mapping[str, Any]) -> Path:
    """Write JSON readable by its owner only (it holds passwords), atomically."""
    return write_json(path, doc, mode=0o600)


# ---------------------------------------------------------------- reading

def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; empty when the file is missing or not an object.

    A damaged file (half a JSON document) still raises: it is a finding, not an absence.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return doc if isinstance(doc, dict) else {}


#: How far back from the end :func:`log_tail` reads: enough for any last lines.
_TAIL_BYTES = 64 * 1024


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, or "" when it does not exist (yet).

    Only the end of the file is read, so a log of gigabytes costs no more than
    one of a page; bytes that are not UTF-8 are replaced, never fatal.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])
