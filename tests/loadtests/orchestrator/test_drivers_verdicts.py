"""``connstorm drivers``' pure parts: the verdict rule, expectations, the tables, the README.

The README's table is rendered from the summary of a real run kept in
``docs/drivers-matrix.json``: the test fails when the README's block and the code
that renders it disagree, never because a driver behaves differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connstorm import error_kinds
from connstorm.loadtests.orchestrator import drivers as d
from connstorm.reports import drivers as report

ROOT = Path(__file__).resolve().parents[3]


def test_verdict_fails_before_exhausts_before_pins_before_works() -> None:
    pin = [{"reason": "SQL changed session settings", "count": 2, "sample": "RESET ALL"}]
    assert d.verdict({}, []) == "works"
    assert d.verdict({}, pin) == "pins"
    assert d.verdict({"proxy_borrow_timeout": {"count": 3}}, pin) == "exhausts"
    assert d.verdict({error_kinds.TOO_MANY_CONNECTIONS: 1}, []) == "exhausts"
    assert d.verdict({"prepared_statement": {"count": 1},
                      "too_many_connections": {"count": 9}}, pin) == "fails"
    assert d.verdict({"prepared_statement": {"count": 0}}, []) == "works"
    # the load's own ceiling (reserved concurrency) is reported but decides nothing
    assert d.verdict({error_kinds.LAMBDA_THROTTLED: {"count": 2}}, pin) == "pins"


def _entries() -> list[dict[str, Any]]:
    return [{"name": "psycopg_default", "driver": "psycopg 3", "config": "defaults",
             "path": path, "verdict": verdict, "errors": errors, "pin_reasons": [],
             "peak_db_connections": 2, "p95_ms": 12.5}
            for path, verdict, errors in (
                ("direct", "works", {}),
                ("pgbouncer-1.18.0", "fails",
                 {"prepared_statement": {"count": 4,
                                         "first": 'prepared statement "_pg3_0" does not exist'}}),
                ("pgbouncer-1.24.1", "works", {}), ("rds_proxy", "works", {}))]


def test_expectations_match_paths_by_prefix_and_name_what_differs(tmp_path: Path) -> None:
    expect = tmp_path / "expected.toml"
    expect.write_text('[psycopg_default]\n"pgbouncer-1.18" = "fails"\n'
                      'pgbouncer = ["works", "fails"]\nrds_proxy = "pins"\n')
    checks = d.check_expectations(d.load_expectations(expect), _entries(), expect)
    assert [(c["name"], c["passed"]) for c in checks] == [
        ("psycopg_default on pgbouncer-1.18.0", True),
        ("psycopg_default on pgbouncer-1.18.0", True),
        ("psycopg_default on pgbouncer-1.24.1", True),
        ("psycopg_default on rds_proxy", False)]


@pytest.mark.parametrize(("text", "says"), [
    ("[psycopg_default]\ndirect = \"great\"\n", "expected one of works, pins, fails"),
    ("[psycopg_default\n", "Expected ']'"),
    ("psycopg_default = 1\n", "must be a table"),
])
def test_a_bad_expectations_file_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    expect = tmp_path / "expected.toml"
    expect.write_text(text)
    with pytest.raises(d.DriversUsageError) as caught:
        d.load_expectations(expect)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_expectation_for_a_cell_that_did_not_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(d.DriversUsageError, match=r"asyncpg_connection\.direct: no such cell"):
        d.check_expectations({"asyncpg_connection": {"direct": ["works"]}}, _entries(),
                             tmp_path / "e.toml")


def test_a_missing_driver_is_one_line_and_the_others_still_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN asyncpg is not installed (only the lookup is faked: which modules exist)
    real = d.importlib.util.find_spec
    monkeypatch.setattr(d.importlib.util, "find_spec",
                        lambda name, *a: None if name == "asyncpg" else real(name, *a))
    lines: list[str] = []
    subjects = d.subjects_for(d.DriversOptions(out=tmp_path), lines.append)
    # THEN one line names what is left out and how to install it; the rest stays
    assert len(lines) == 1
    assert "asyncpg_connection, asyncpg_pool_1: driver not installed" in lines[0]
    assert d.INSTALL_DRIVERS in lines[0]
    names = [s.name for s in subjects]
    assert "asyncpg_connection" not in names
    assert "psycopg_default" in names
    assert "sqlalchemy_queuepool_1" in names


def test_only_names_configurations_or_drivers(tmp_path: Path) -> None:
    pick = d.subjects_for(d.DriversOptions(out=tmp_path, only=("asyncpg", "psycopg2_default")),
                          print)
    assert [s.name for s in pick] == ["psycopg2_default", "asyncpg_connection", "asyncpg_pool_1"]
    with pytest.raises(d.DriversUsageError, match="--only nope: no such configuration"):
        d.subjects_for(d.DriversOptions(out=tmp_path, only=("nope",)), print)


def test_matrix_rows_and_cells_read_the_summary() -> None:
    summary = {"paths": ["direct", "pgbouncer-1.18.0", "pgbouncer-1.24.1", "rds_proxy"],
               "drivers": _entries()}
    [(label, cells)] = report.matrix(summary)
    assert label == "psycopg 3: defaults"
    assert report.cell_text(cells[1]) == "fails (prepared_statement); 2 conn, p95 12.5 ms"
    assert report.detail_rows(summary) == [[
        "psycopg 3: defaults", "pgbouncer-1.18.0", "fails", "prepared_statement x4",
        'prepared statement "_pg3_0" does not exist']]


def test_the_readme_table_is_the_rendering_of_the_kept_run() -> None:
    kept = json.loads((ROOT / report.KEPT_SUMMARY).read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(report.START) == 1
    block = report.START + readme.split(report.START, 1)[1].split(report.END, 1)[0] + report.END
    assert block == report.readme_table(kept)
    # the kept run is a real one: every configuration on every path, with versions
    assert {e["verdict"] for e in kept["drivers"]} <= set(d.VERDICTS)
    assert len(kept["drivers"]) == len(kept["paths"]) * len({e["name"] for e in kept["drivers"]})
    for key in ("postgresql", "pgbouncer", "psycopg", "asyncpg", "pg8000", "SQLAlchemy"):
        assert kept["versions"].get(key), key
