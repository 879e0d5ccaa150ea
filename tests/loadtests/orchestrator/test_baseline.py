"""``--baseline``: what can be compared with, and one line and exit 2 for anything else.

The command-line tests run the real ``connstorm`` and check that a broken baseline
stops it before the run starts: no run folder is made, nothing is started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connstorm.loadtests.orchestrator.baseline import (
    BaselineError,
    compare_summary,
    load_baseline,
)
from connstorm.sections.thresholds import RegressionConfig
from tests.loadtests.conftest import connstorm


def summary_doc(scenario: str = "direct-small", names: tuple[str, ...] = ("direct-module_level",),
                **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema_version": 1, "scenario": scenario, "passed": True,
                           "thresholds": [],
                           "variants": [{"name": n, "requests": 100, "failures": 0,
                                         "errors_by_kind": {}, "peak_db_connections": 7,
                                         "peak_environments": 20, "p95_ms": 40.0,
                                         "p99_ms": 90.0, "rps": 50.0} for n in names]}
    doc.update(top)
    return doc


def baseline_folder(tmp_path: Path, doc: dict[str, Any] | None = None, *,
                    name: str = "main-run") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(doc or summary_doc()))
    (folder / "samples.jsonl").write_text(json.dumps(
        {"t": 1.0, "elapsed_s": 0.0, "collector": "postgres", "ok": True, "db_total": 7}) + "\n")
    (folder / "scenario.json").write_text(json.dumps({"name": "direct-small"}))
    return folder


def test_a_baseline_is_a_run_folder_or_its_summary(tmp_path: Path) -> None:
    folder = baseline_folder(tmp_path)
    for given in (folder, folder / "summary.json"):
        baseline = load_baseline(given, scenario="direct-small")
        assert baseline.folder == folder
        assert baseline.given == str(given)
        assert baseline.variant_names == ["direct-module_level"]
        baseline.require_variants(["direct-module_level"])


def test_a_baseline_is_copied_into_the_run_folder(tmp_path: Path) -> None:
    baseline = load_baseline(baseline_folder(tmp_path), scenario="direct-small")
    run = tmp_path / "run"
    assert baseline.copy_into(run) == "baseline"
    assert sorted(p.name for p in (run / "baseline").iterdir()) == [
        "samples.jsonl", "scenario.json", "summary.json"]
    # a repro baseline gives each variant folder its namesake's files
    repro = baseline_folder(tmp_path, summary_doc("repro", ("direct-module_level",)),
                            name="repro")
    baseline_folder(repro / "variants", name="direct-module_level")
    load_baseline(repro, scenario="repro").copy_into(run / "variant", variant="direct-module_level")
    assert (run / "variant" / "baseline" / "samples.jsonl").read_text().startswith('{"t": 1.0')


def test_compare_summary_fails_the_summary_on_a_regression(tmp_path: Path) -> None:
    baseline = load_baseline(baseline_folder(tmp_path), scenario="direct-small")
    same = compare_summary(summary_doc(), baseline, RegressionConfig(), copied_to="baseline")
    assert same["passed"] is True
    assert same["baseline"]["passed"] is True
    assert same["baseline"]["copied_to"] == "baseline"
    worse = summary_doc()
    worse["variants"][0]["peak_db_connections"] = 10
    judged = compare_summary(worse, baseline, RegressionConfig(), copied_to=None)
    assert (judged["passed"], judged["baseline"]["regressions"]) == (False, 1)


def _broken(tmp_path: Path, what: str) -> Path:
    if what == "missing":
        return tmp_path / "nowhere"
    if what == "no summary":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    bad = tmp_path / "summary.json"
    docs = {"not json": "{\"scenario\": ", "not a summary": "[1, 2]",
            "other scenario": json.dumps(summary_doc("ci-smoke")),
            "other schema": json.dumps(summary_doc(schema_version=2)),
            "no schema": json.dumps({k: v for k, v in summary_doc().items()
                                     if k != "schema_version"})}
    bad.write_text(docs[what])
    return bad


BROKEN = [
    ("missing", "no such file or folder"),
    ("no summary", "no summary.json in it (give a finished run's folder or its summary.json)"),
    ("not json", "not a connstorm summary.json (invalid JSON at line 1: Expecting value)"),
    ("not a summary", "not a connstorm summary.json (no \"scenario\" and \"variants\")"),
    ("other scenario", "a run of scenario 'ci-smoke', not 'direct-small'; compare runs of the "
                       "same scenario"),
    ("other schema", "its summary has schema_version 2, this connstorm writes 1; make the "
                     "baseline again with this version"),
    ("no schema", "its summary has no schema_version (an older connstorm made it), this "
                  "connstorm writes 1; make the baseline again with this version"),
]


@pytest.mark.parametrize(("what", "message"), BROKEN, ids=[w for w, _ in BROKEN])
def test_a_broken_baseline_is_one_line(tmp_path: Path, what: str, message: str) -> None:
    path = _broken(tmp_path, what)
    with pytest.raises(BaselineError) as raised:
        load_baseline(path, scenario="direct-small")
    assert str(raised.value) == f"--baseline {path}: {message}"
    assert raised.value.exit_code == 2


def test_a_baseline_without_a_variant_of_the_run_is_one_line(tmp_path: Path) -> None:
    baseline = load_baseline(baseline_folder(tmp_path), scenario="direct-small")
    with pytest.raises(BaselineError, match=r"has no variant 'direct-leaky' \(it has: "
                                            r"direct-module_level\); compare runs of the "
                                            r"same variants$"):
        baseline.require_variants(["direct-module_level", "direct-leaky"])
    folder = tmp_path / "main-run"
    with pytest.raises(BaselineError, match="is the run folder itself"):
        load_baseline(folder, scenario="direct-small", run_dir=folder)


def _one_line_exit_2(args: list[str], out: Path) -> str:
    result = connstorm(*args, timeout_s=120)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    # checked before the run: no run folder, so nothing was started
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize(("what", "message"), BROKEN, ids=[w for w, _ in BROKEN])
def test_run_with_a_broken_baseline_exits_2_before_it_starts(tmp_path: Path, what: str,
                                                             message: str) -> None:
    path, out = _broken(tmp_path, what), tmp_path / "run"
    line = _one_line_exit_2(["run", "direct-small", "--baseline", str(path), "--out", str(out)],
                            out)
    assert line == f"connstorm: error: --baseline {path}: {message}"


def test_run_with_a_baseline_missing_its_variant_exits_2_before_it_starts(
        tmp_path: Path) -> None:
    folder = baseline_folder(tmp_path, summary_doc(names=("pgbouncer-transaction",)))
    out = tmp_path / "run"
    line = _one_line_exit_2(["run", "direct-small", "--baseline", str(folder), "--out",
                             str(out)], out)
    assert line == (f"connstorm: error: --baseline {folder}: has no variant "
                    "'direct-module_level' (it has: pgbouncer-transaction); compare runs of "
                    "the same variants")


def test_repro_with_a_baseline_of_fewer_variants_exits_2_before_it_starts(
        tmp_path: Path) -> None:
    # a --quick comparison as the baseline of the full one: direct-leaky is not in it
    quick = ("direct-module_level", "pgbouncer-transaction", "pgbouncer-session")
    folder = baseline_folder(tmp_path, summary_doc("repro", quick))
    out = tmp_path / "repro"
    line = _one_line_exit_2(["repro", "--baseline", str(folder), "--out", str(out)], out)
    assert line.startswith(f"connstorm: error: --baseline {folder}: has no variant "
                           "'direct-leaky' (it has: direct-module_level, ")
    # and another preset's comparison is another scenario
    line = _one_line_exit_2(["repro", "--preset", "vpc", "--baseline", str(folder), "--out",
                             str(out)], out)
    assert line.endswith("a run of scenario 'repro', not 'repro-vpc'; compare runs of the "
                         "same scenario")


@pytest.mark.parametrize("quick", [False, True])
def test_repro_against_a_baseline_made_with_the_other_load_exits_2_before_it_starts(
        tmp_path: Path, quick: bool) -> None:
    # --quick steps up to 45 users in shorter steps, the full repro to 60: a full
    # baseline has every variant --quick runs, but peaks, latencies and error shares
    # of another load are no comparison (it read as six "regressions")
    from connstorm.loadtests.orchestrator.repro import variants_for

    names = tuple(v.name for v in variants_for(quick=False))
    folder = baseline_folder(tmp_path, summary_doc(
        "repro", names, repro={"quick": not quick, "elapsed_s": 60.0, "complete": True}))
    out = tmp_path / "repro"
    line = _one_line_exit_2(["repro", *(["--quick"] if quick else []), "--baseline",
                             str(folder), "--out", str(out)], out)
    full, fast = "connstorm repro (60 users)", "connstorm repro --quick (45 users)"
    made, this = (full, fast) if quick else (fast, full)
    assert line == (f"connstorm: error: --baseline {folder}: made by {made}, this run is "
                    f"{this}; compare repros made the same way")


def test_live_and_ui_check_the_baseline_before_anything_too(tmp_path: Path) -> None:
    path = _broken(tmp_path, "other scenario")
    out = tmp_path / "live"
    # (no AWS is asked: the baseline is refused first)
    line = _one_line_exit_2(["live", "direct-small", "--baseline", str(path), "--out", str(out),
                             "--api-url", "http://127.0.0.1:9", "--region", "eu-west-1"], out)
    assert line.endswith("a run of scenario 'ci-smoke', not 'direct-small'; compare runs of "
                         "the same scenario")
    line = _one_line_exit_2(["ui", "direct-small", "--baseline", str(path), "--out", str(out)],
                            out)
    assert "a run of scenario 'ci-smoke'" in line


def test_repro_compares_each_variant_with_its_namesake(tmp_path: Path) -> None:
    from connstorm.loadtests.orchestrator import repro

    chosen = repro.variants_for(quick=True)
    entries = {v.name: summary_doc("repro", (v.name,))["variants"][0] for v in chosen}
    baseline = load_baseline(baseline_folder(tmp_path, summary_doc(
        "repro", tuple(entries))), scenario="repro")
    results = [(v, repro.variant_scenario(v, repro.QUICK), dict(entries[v.name]))
               for v in chosen]
    results[1][2]["peak_db_connections"] = 12  # the transaction pooler's peak, up from 7
    doc = repro.build_summary(results, quick=True, elapsed_s=1.0, complete=True,
                              baseline=baseline)
    section = doc["baseline"]
    assert [(v["name"], v["passed"]) for v in section["variants"]] == [
        ("direct-module_level", True), ("pgbouncer-transaction", False),
        ("pgbouncer-session", True)]
    assert section["copied_to"] == "baseline"
    assert doc["passed"] is False  # a regression fails the comparison, whatever else


def test_the_minimal_ci_files_carry_the_comparisons_too(tmp_path: Path) -> None:
    # (written when the reports package cannot render: CI keeps its verdict)
    import xml.etree.ElementTree as ET

    from connstorm.loadtests.orchestrator.report_files import junit_xml, markdown

    baseline = load_baseline(baseline_folder(tmp_path), scenario="direct-small")
    worse = summary_doc()
    worse["variants"][0]["peak_db_connections"] = 10
    judged = compare_summary(worse, baseline, RegressionConfig(), copied_to=None)
    cases = {c.get("name"): c for c in ET.fromstring(junit_xml(judged)).iter("testcase")}
    failure = cases["direct-module_level: peak_db_connections"].find("failure")
    assert failure is not None
    assert failure.get("message") == ("direct-module_level: peak_db_connections 10, baseline 7: "
                                      "+42.9 % (allowed +10 %, ≤ 8) REGRESSION")
    assert "| direct-module_level: peak_db_connections 10, baseline 7" in markdown(judged)


def test_repro_sets_what_counts_as_a_regression_and_nothing_else(tmp_path: Path) -> None:
    from connstorm.loadtests.orchestrator import repro

    # GIVEN a quick repro's variants, p95 up 3x against the baseline (a busy machine)
    chosen = repro.variants_for(quick=True)
    entries = {v.name: summary_doc("repro", (v.name,))["variants"][0] for v in chosen}
    baseline = load_baseline(baseline_folder(tmp_path, summary_doc(
        "repro", tuple(entries))), scenario="repro")

    def judged(overrides: tuple[str, ...]) -> dict[str, Any]:
        results = [(v, repro.variant_scenario(v, repro.QUICK, overrides),
                    {**entries[v.name], "p95_ms": 120.0}) for v in chosen]
        return repro.build_summary(results, quick=True, elapsed_s=1.0, complete=True,
                                   baseline=baseline)

    # THEN at the defaults the timing is shown, not judged
    assert judged(())["baseline"]["passed"] is True
    # AND --set thresholds.regression.p95_pct judges it, on every variant
    doc = judged(repro.check_overrides(["thresholds.regression.p95_pct=100"]))
    assert doc["baseline"]["regressions"] == len(chosen)
    # AND anything else repro refuses in one line, before anything starts
    out = tmp_path / "repro"
    line = _one_line_exit_2(["repro", "--quick", "--set", "load.users=3", "--out", str(out)],
                            out)
    assert line == ("connstorm: error: --set load.users=3: connstorm repro sets only "
                    "thresholds.regression.KEY=VALUE (what counts as a regression against "
                    "--baseline); its variants' stacks and load are fixed")
    bad = connstorm("repro", "--quick", "--set", "thresholds.regression.p95_pct=lots",
                    "--out", str(out), timeout_s=120)
    assert bad.returncode == 3, bad.stderr
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "p95_pct: expected a number" in bad.stderr
    assert not out.exists()
