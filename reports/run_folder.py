"""Read a run folder (``docs/run-folder.md``) into plain data the renderers share.

Renderers never open files themselves: they get a :class:`RunData`, whose
scenario, stack and summary have had every password masked, so no rendering can
leak one by accident. A comparison (``connstorm repro``, or several folders
given to ``connstorm report``) is a :class:`RunData` whose ``variants`` hold one
:class:`RunData` per variant.

>>> run = load_run(Path("runs/2026-11-26T22-00-00Z-direct-small"))  # doctest: +SKIP
>>> [row["db_total"] for row in run.samples["postgres"] if row["ok"]]  # doctest: +SKIP
[1, 4, 17, 20]
"""

from __future__ import annotations

import json
import logging
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from connstorm.reports.errors import ReportError
from connstorm.run_folder import (
    BASELINE_DIR,
    LOCUST_LOG,
    PGBOUNCER_LOG,
    POSTGRES_LOG,
    SAMPLES_FILE,
    SCENARIO_FILE,
    STACK_FILE,
    SUMMARY_FILE,
    VARIANTS_DIR,
)

logger = logging.getLogger(__name__)

COLLECTORS = ("postgres", "pgbouncer", "emulator", "locust")
MASK = "********"

Row = Mapping[str, Any]

# user:password@ inside any URL-like string (DSNs, a scenario's postgres.url).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?P<at>@)")
# key=value password in a libpq keyword DSN.
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'[^']*'|\S+)", re.IGNORECASE)
_SECRET_KEY = re.compile(r"password|passwd|secret|token|credential", re.IGNORECASE)

# Lines the servers write at start-up, from which the versions of a run are read.
_VERSION_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("postgresql", POSTGRES_LOG, re.compile(r"starting PostgreSQL (\d[\w.]*)")),
    ("pgbouncer", PGBOUNCER_LOG, re.compile(r"PgBouncer (\d[\w.]*)")),
    ("locust", LOCUST_LOG, re.compile(r"Locust (\d[\w.]*)")),
)
VERSION_KEYS = ("connstorm", "postgresql", "pgbouncer", "python", "locust")


@dataclass(frozen=True)
class RunData:
    """One run folder, read and masked; or a comparison of several (``variants``)."""

    path: Path
    #: The variant's name (from summary.json) or the folder's name.
    name: str
    scenario: Mapping[str, Any] = field(default_factory=dict)
    stack: Mapping[str, Any] = field(default_factory=dict)
    #: samples.jsonl rows grouped by collector, in file order, gap rows included.
    samples: Mapping[str, tuple[Row, ...]] = field(default_factory=dict)
    #: summary.json, or None when the run did not finish writing it.
    summary: Mapping[str, Any] | None = None
    #: connstorm, postgresql, pgbouncer, python, locust -> version ("" when unknown).
    versions: Mapping[str, str] = field(default_factory=dict)
    variants: tuple[RunData, ...] = ()
    #: The run's baseline (``baseline/``), whose series the charts draw beside its own.
    baseline: RunData | None = None

    @property
    def is_comparison(self) -> bool:
        """True when this holds several variants to show side by side."""
        return bool(self.variants)

    @property
    def scenario_name(self) -> str:
        """The scenario's name, from whichever file knows it."""
        for name in ((self.summary or {}).get("scenario"), self.scenario.get("name"),
                     self.stack.get("scenario")):
            if isinstance(name, str) and name:
                return name
        return self.name

    def series(self, collector: str) -> tuple[Row, ...]:
        """The rows of one collector (empty when it never sampled)."""
        return self.samples.get(collector, ())


# ---------------------------------------------------------------- masking


def mask_text(text: str) -> str:
    """``text`` with the password of any DSN in it replaced by a mask."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def mask(value: Any) -> Any:
    """A deep copy of ``value`` with every password masked.

    Masks values under keys that name a secret and passwords inside DSN strings.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if _SECRET_KEY.search(str(key)) and isinstance(item, str | bytes) and item:
                out[str(key)] = MASK
            else:
                out[str(key)] = mask(item)
        return out
    if isinstance(value, list | tuple):
        return [mask(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


# ---------------------------------------------------------------- reading


def _read_json(path: Path, *, required: bool) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ReportError(f"{path}: missing") from None
        return None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def read_samples(path: Path) -> dict[str, tuple[Row, ...]]:
    """samples.jsonl grouped by collector; a missing file is an empty series.

    A damaged line in the middle is an error naming its line number. An
    unterminated last line is what a run killed mid-write leaves: skipped.
    """
    grouped: dict[str, list[Row]] = {}
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        lines = handle.read().split("\n")
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if number - 1 == last:
                logger.warning("%s: skipping the unfinished last line", path)
                continue
            raise ReportError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("collector"), str):
            raise ReportError(f"{path}:{number}: expected an object with a \"collector\" key")
        if not isinstance(row.get("elapsed_s"), int | float):
            raise ReportError(f"{path}:{number}: \"elapsed_s\" missing or not a number")
        grouped.setdefault(row["collector"], []).append(row)
    return {name: tuple(rows) for name, rows in grouped.items()}


def read_versions(run_dir: Path, summary: Mapping[str, Any] | None) -> dict[str, str]:
    """Versions of the run's parts: summary.json's ``versions`` if written, else the logs.

    Server versions come from the start-up lines of their logs; connstorm's and
    Python's fall back to the renderer's own when the run did not record them.
    """
    versions = dict.fromkeys(VERSION_KEYS, "")
    recorded = (summary or {}).get("versions")
    if isinstance(recorded, Mapping):
        versions.update({k: str(v) for k, v in recorded.items() if v})
    for key, log_name, pattern in _VERSION_PATTERNS:
        if versions.get(key):
            continue
        log = run_dir / log_name
        try:
            with log.open("r", encoding="utf-8", errors="replace") as handle:
                head = handle.read(256 * 1024)
        except OSError:
            continue
        found = pattern.search(head)
        if found:
            versions[key] = found.group(1).rstrip(".,")
    if not versions["connstorm"]:
        versions["connstorm"] = _installed("connstorm")
    if not versions["python"]:
        versions["python"] = platform.python_version()
    if not versions["locust"] and "locust" in (summary or {}).get("collectors", ["locust"]):
        versions["locust"] = _installed("locust")
    return versions


def _installed(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


#: What makes a folder a run folder: any one of these in it.
_RUN_FOLDER_FILES = (SAMPLES_FILE, SUMMARY_FILE, SCENARIO_FILE, STACK_FILE, VARIANTS_DIR)


def _is_run_folder(path: Path) -> bool:
    return any((path / name).exists() for name in _RUN_FOLDER_FILES)


def _measured(path: Path) -> bool:
    """Whether a run folder holds anything measured (what :func:`load_single` needs)."""
    samples = path / SAMPLES_FILE
    return (path / SUMMARY_FILE).exists() or (samples.exists() and samples.stat().st_size > 0)


def _require_folder(run_dir: Path) -> None:
    if not run_dir.exists():
        raise ReportError(f"{run_dir}: no such run folder")
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder (give the run folder, not a file in it)")
    if not _is_run_folder(run_dir):
        raise ReportError(f"{run_dir}: not a run folder (none of "
                          f"{', '.join(_RUN_FOLDER_FILES)} in it)")


def load_single(run_dir: Path, name: str | None = None, *,
                with_baseline: bool = True) -> RunData:
    """One run folder (no variants below it), with its baseline's copy if it has one."""
    _require_folder(run_dir)
    summary = _read_json(run_dir / SUMMARY_FILE, required=False)
    scenario = _read_json(run_dir / SCENARIO_FILE, required=False) or {}
    stack = _read_json(run_dir / STACK_FILE, required=False) or {}
    samples = read_samples(run_dir / SAMPLES_FILE)
    if summary is None and not samples:
        raise ReportError(f"{run_dir}: nothing to report (no {SUMMARY_FILE} and no "
                          f"{SAMPLES_FILE}: did the run start?)")
    if name is None and run_dir.parent.name == VARIANTS_DIR:
        name = run_dir.name  # a repro's variant: its folder is its name, as in load_run
    if name is None:
        variants = (summary or {}).get("variants")
        first = variants[0] if isinstance(variants, list) and len(variants) == 1 else None
        name = str(first.get("name")) if isinstance(first, Mapping) and first.get("name") \
            else run_dir.name
    return RunData(path=run_dir, name=name, scenario=mask(scenario), stack=mask(stack),
                   samples=samples,
                   summary=_with_function_errors(mask(summary), samples)
                   if summary is not None else None,
                   versions=read_versions(run_dir, summary),
                   baseline=_baseline(run_dir, name) if with_baseline else None)


def _baseline(run_dir: Path, name: str) -> RunData | None:
    """The copy of the run's baseline, or None; a damaged copy costs only its series."""
    folder = run_dir / BASELINE_DIR
    if not folder.is_dir():
        return None
    try:
        return load_single(folder, name=f"{name} (baseline)", with_baseline=False)
    except ReportError as exc:
        logger.warning("%s: the baseline's series are left out: %s", folder, exc)
        return None


def _with_function_errors(summary: dict[str, Any],
                          samples: Mapping[str, tuple[Row, ...]]) -> dict[str, Any]:
    """Add the functions' own error kinds to a one-variant summary that lacks them.

    The client sees a function refused at init as a bare HTTP 502; the emulator's
    last sample knows it was PostgreSQL's "too many clients". Derived, so only
    added when summary.json does not say.
    """
    entries = summary.get("variants")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return summary
    if "function_errors_by_kind" in entries[0]:
        return summary
    last = [r for r in samples.get("emulator", ()) if r.get("ok", True)
            and isinstance(r.get("errors_by_kind"), Mapping)]
    if last:
        kinds = {str(k): v for k, v in last[-1]["errors_by_kind"].items() if v}
        entries[0] = {**entries[0], "function_errors_by_kind": kinds}
    return summary


def load_run(run_dir: Path) -> RunData:
    """A run folder; a comparison when it has ``variants/<name>/`` folders below it.

    Raises :class:`~connstorm.reports.errors.ReportError` (one line) when the folder is
    missing, is not a run folder, or holds a damaged file.
    """
    run_dir = Path(run_dir)
    _require_folder(run_dir)
    variants_dir = run_dir / VARIANTS_DIR
    if not variants_dir.is_dir():
        return load_single(run_dir)
    summary = _read_json(run_dir / SUMMARY_FILE, required=False)
    order = [str(v.get("name")) for v in (summary or {}).get("variants", [])
             if isinstance(v, Mapping) and v.get("name")]
    # A variant stopped before its load began (Ctrl-C, SIGTERM) leaves a folder with
    # its scenario and logs in it but no samples and no summary: nothing was measured,
    # so there is nothing to show.
    folders = {p.name: p for p in variants_dir.iterdir() if p.is_dir() and _measured(p)}
    names = [n for n in order if n in folders] + sorted(set(folders) - set(order))
    if not names:
        raise ReportError(f"{variants_dir}: no variant folders in it")
    variants = tuple(load_single(folders[n], name=n) for n in names)
    scenario = _read_json(run_dir / SCENARIO_FILE, required=False) or {}
    return RunData(path=run_dir, name=run_dir.name, scenario=mask(scenario),
                   summary=mask(summary) if summary is not None else None,
                   versions=read_versions(variants[0].path, summary),
                   variants=variants)


def combine(runs: Sequence[RunData], path: Path) -> RunData:
    """Several separately made runs as one comparison (``connstorm report A B``).

    Their summaries are merged: one variant entry per run, each keeping its own
    thresholds, so the side-by-side view and the verdict table cover all of them.
    """
    entries: list[dict[str, Any]] = []
    flat: list[RunData] = []
    for run in runs:
        members = run.variants or (run,)
        for member in members:
            flat.append(member)
            entries.append(_variant_entry(member))
    names = [r.name for r in flat]
    unique = [f"{n} ({i + 1})" if names.count(n) > 1 else n for i, n in enumerate(names)]
    flat = [RunData(path=r.path, name=u, scenario=r.scenario, stack=r.stack, samples=r.samples,
                    summary=r.summary, versions=r.versions, baseline=r.baseline)
            for r, u in zip(flat, unique, strict=True)]
    for entry, new_name in zip(entries, unique, strict=True):
        entry["name"] = new_name
    passed = [e.get("passed") for e in entries]
    summary = {"scenario": ", ".join(dict.fromkeys(r.scenario_name for r in flat)),
               "passed": None if None in passed else all(passed),
               "thresholds": [], "variants": entries}
    return RunData(path=path, name=path.name, summary=summary, versions=flat[0].versions,
                   variants=tuple(flat))


def _variant_entry(run: RunData) -> dict[str, Any]:
    """The summary entry of one run, carrying the run's own thresholds and verdict."""
    summary = run.summary or {}
    raw = summary.get("variants")
    entries = [dict(v) for v in raw if isinstance(v, Mapping)] if isinstance(raw, list) else []
    mine = [e for e in entries if e.get("name") == run.name] or entries[:1] or [{}]
    entry = mine[0]
    entry["name"] = run.name
    entry.setdefault("thresholds", summary.get("thresholds", []))
    entry.setdefault("passed", summary.get("passed"))
    return entry
