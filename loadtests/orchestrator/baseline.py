"""``--baseline PATH``: the earlier run a run is compared with, read and checked up front.

The usual way (``.github/workflows/connstorm-smoke.yml``): the main branch's run
folder is kept as an artifact, and a pull request's run is compared with it, so CI
answers "did this change make our connection behaviour worse?" rather than only
"did it break a fixed limit?".

A baseline is a run folder or its ``summary.json``. Everything that can be wrong
with it is found before the run starts (no stack is started for a run that could
not be judged) and said in one line with exit code 2: a path that is not there,
a file that is not a connstorm summary, a summary of another scenario or another
``schema_version`` (its keys might not mean the same), or one without a variant
the run will have.

Its files (``summary.json``, ``samples.jsonl``, ``scenario.json``) are copied into
the run folder's ``baseline/`` so the run folder stays all the reports need: the
report draws the baseline's series beside the run's from there, also when the
artifact it came from is long gone. A ``connstorm repro`` baseline gives each
variant folder its own ``baseline/``, from the baseline's ``variants/<name>/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connstorm.errors import ConnstormError, ExitCode
from connstorm.loadtests.orchestrator.regression import baseline_section, compare_variant
from connstorm.loadtests.orchestrator.summary import SCHEMA_VERSION
from connstorm.run_folder import (
    BASELINE_DIR,
    SAMPLES_FILE,
    SCENARIO_FILE,
    SUMMARY_FILE,
    VARIANTS_DIR,
)
from connstorm.sections.thresholds import RegressionConfig

#: What is copied: the figures, the series the report draws, and what the scenario was.
COPIED_FILES = (SUMMARY_FILE, SAMPLES_FILE, SCENARIO_FILE)


class BaselineError(ConnstormError):
    """``--baseline`` names something a run cannot be compared with: one line, exit code 2."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Baseline:
    """A checked baseline: its ``summary.json`` and the folder it came from."""

    #: The path as given (summary.json's ``baseline.path``).
    given: str
    #: The run folder holding the summary (its samples, its variants' folders).
    folder: Path
    summary: Mapping[str, Any]

    @property
    def variant_names(self) -> list[str]:
        """Names of the baseline's variants, in its order."""
        return [str(v.get("name")) for v in self.summary.get("variants") or []
                if isinstance(v, Mapping)]

    def variant(self, name: str) -> Mapping[str, Any]:
        """The baseline's variant entry called ``name`` (checked to exist up front)."""
        for entry in self.summary.get("variants") or []:
            if isinstance(entry, Mapping) and entry.get("name") == name:
                return entry
        raise BaselineError(self._missing(name))

    def _missing(self, name: str) -> str:
        return (f"--baseline {self.given}: has no variant {name!r} (it has: "
                f"{', '.join(self.variant_names) or 'none'}); compare runs of the same variants")

    def require_variants(self, names: Sequence[str]) -> None:
        """Raise :class:`BaselineError` naming the first of ``names`` the baseline lacks."""
        have = set(self.variant_names)
        for name in names:
            if name not in have:
                raise BaselineError(self._missing(name))

    def require_repro_load(self, *, quick: bool, users: Mapping[bool, int]) -> None:
        """A repro baseline must have put the same load: ``--quick`` steps up to fewer
        users (``users[True]``) in shorter steps, so a full repro's peaks, latencies
        and error shares are no measure of a quick one, nor the other way round.
        """
        made = self.summary.get("repro")
        was = made.get("quick") if isinstance(made, Mapping) else None
        if not isinstance(was, bool) or was == quick:
            return

        def name(fast: bool) -> str:
            return f"connstorm repro{' --quick' if fast else ''} ({users[fast]} users)"

        raise BaselineError(f"--baseline {self.given}: made by {name(was)}, this run is "
                            f"{name(quick)}; compare repros made the same way")

    def copy_into(self, run_dir: Path, variant: str | None = None) -> str:
        """Copy the baseline's files (a repro variant's, given ``variant``) into
        ``run_dir/baseline/``; returns that folder's name. Missing files are skipped:
        a baseline given as a lone ``summary.json`` has no series to draw.
        """
        source = self.folder
        if variant is not None and (self.folder / VARIANTS_DIR / variant).is_dir():
            source = self.folder / VARIANTS_DIR / variant
        target = run_dir / BASELINE_DIR
        target.mkdir(parents=True, exist_ok=True)
        for name in COPIED_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
        return BASELINE_DIR


def _summary_path(path: Path, given: str) -> Path:
    if path.is_dir():
        found = path / SUMMARY_FILE
        if not found.is_file():
            raise BaselineError(f"--baseline {given}: no {SUMMARY_FILE} in it (give a finished "
                                f"run's folder or its {SUMMARY_FILE})")
        return found
    if path.is_file():
        return path
    raise BaselineError(f"--baseline {given}: no such file or folder")


def _read(path: Path, given: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"--baseline {given}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"--baseline {given}: not a connstorm {SUMMARY_FILE} "
                            "(not text)") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"--baseline {given}: not a connstorm {SUMMARY_FILE} (invalid "
                            f"JSON at line {exc.lineno}: {exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scenario"), str) \
            or not isinstance(doc.get("variants"), list):
        raise BaselineError(f"--baseline {given}: not a connstorm {SUMMARY_FILE} (no "
                            "\"scenario\" and \"variants\")")
    return doc


def load_baseline(path: Path, *, scenario: str, run_dir: Path | None = None) -> Baseline:
    """Read and check a baseline for a run of ``scenario`` (into ``run_dir``).

    Raises :class:`BaselineError` (one line, exit code 2) for anything a run
    cannot be compared with; the variants are checked apart
    (:meth:`Baseline.require_variants`), once the run knows its own.
    """
    given = str(path)
    summary_path = _summary_path(Path(path), given)
    doc = _read(summary_path, given)
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        made = (f"its summary has schema_version {version!r}" if version is not None else
                "its summary has no schema_version (an older connstorm made it)")
        raise BaselineError(f"--baseline {given}: {made}, this connstorm writes "
                            f"{SCHEMA_VERSION}; make the baseline again with this version")
    if doc["scenario"] != scenario:
        raise BaselineError(f"--baseline {given}: a run of scenario {doc['scenario']!r}, not "
                            f"{scenario!r}; compare runs of the same scenario")
    folder = summary_path.parent
    if run_dir is not None and run_dir.resolve() == folder.resolve():
        raise BaselineError(f"--baseline {given}: is the run folder itself (--out); give "
                            "another --out")
    return Baseline(given=given, folder=folder, summary=doc)


def compare_summary(summary: dict[str, Any], baseline: Baseline, config: RegressionConfig, *,
                    copied_to: str | None) -> dict[str, Any]:
    """``summary`` with its ``baseline`` section, and ``passed`` false on a regression."""
    compared = [(str(v.get("name")), compare_variant(v, baseline.variant(str(v.get("name"))),
                                                     config))
                for v in summary.get("variants") or []]
    section = baseline_section(baseline.given, baseline.summary, compared, copied_to=copied_to)
    summary["baseline"] = section
    summary["passed"] = bool(summary.get("passed")) and section["passed"]
    return summary
