"""``connstorm drivers`` with the real drivers, servers and Lambda environments.

One run of seven configurations on every path (both PgBouncers, the stand-in)
serves the first tests; each names the statement or message that decided a
verdict, and the configuration whose one setting changes it:

* psycopg 3 prepares a statement (``_pg3_N``, at once for ``executemany``, after 5
  executions otherwise): PgBouncer 1.18 in transaction mode hands it to another
  client's server session (``prepared statement "_pg3_0" ... exist``), 1.21+ and
  the stand-in (RDS Proxy since November 2023) carry it; ``prepare_threshold=None``
  turns 1.18's ``fails`` into ``works`` (psycopg, "Prepared statements").
* asyncpg names every statement (``__asyncpg_stmt_N__``): the same on 1.18; it
  introspects an array parameter's type with ``set_config('jit', 'off', false)``
  and its pool's reset on release sends ``RESET ALL``: both pin behind RDS Proxy.
* SQLAlchemy's pool rolls back each read on return, and psycopg then sends
  ``DEALLOCATE ALL`` for what it prepared: pinned with ``QueuePool``; with
  ``NullPool`` nothing prepared outlives a request and nothing pins. On 1.18
  both fail: the order's ``_pg3_N`` outlives its ``COMMIT`` on the server
  connection (``prepared_statement_stranded``, read off PostgreSQL's log).
  That verdict is deterministic: the log shows every order's ``_pg3_N`` still
  prepared when its ``COMMIT`` ends the transaction, whatever the interleaving,
  and each cell's load is the same seeded sequence of requests, orders in it
  (before that check its requests alone decided, and met the broken statement by
  luck: 2 of 6 runs failed).

Then the bad inputs: a handler that fails to import, a PgBouncer that does not
start; each is one line and the rest of the matrix runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from connstorm.errors import ThresholdsFailedError
from connstorm.loadtests.orchestrator.drivers import STRANDED, DriversOptions, run_drivers
from connstorm.local_stack.pgbouncer_binaries import PgBouncerBinary, available
from connstorm.local_stack.scratch import processes_in
from tests.session_once import made_once

pytestmark = pytest.mark.slow

CONFIGS = ("psycopg_default", "psycopg_no_prepare", "asyncpg_connection", "asyncpg_pool_1",
           "sqlalchemy_nullpool", "sqlalchemy_queuepool_1", "sqlalchemy_queuepool_1_pre_ping")


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The matrix, run once per session: the first xdist worker runs it, the rest read it."""
    out = made_once(tmp_path_factory, "drivers", _run_matrix)
    return dict(json.loads((out / "summary.json").read_text()))


def _run_matrix(out: Path) -> None:
    pgbouncers = available()
    assert any(not b.tracks_prepared_statements for b in pgbouncers), "PgBouncer 1.18"
    assert any(b.tracks_prepared_statements for b in pgbouncers), "run scripts/bootstrap.sh"
    lines: list[str] = []
    done = run_drivers(DriversOptions(out=out, only=CONFIGS, pgbouncers=tuple(pgbouncers)),
                       say=lines.append)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(done))
    assert (out / "summary.md").is_file()
    assert "Driver matrix" in (out / "report.html").read_text()
    assert processes_in(out) == []  # every server stopped


def _cells(summary: Mapping[str, Any], name: str) -> dict[str, dict[str, Any]]:
    cells = {}
    for entry in summary["drivers"]:
        if entry["name"] == name:
            path = entry["path"]
            key = ("pgbouncer-old" if path.startswith("pgbouncer-1.1") else
                   "pgbouncer-new" if path.startswith("pgbouncer-") else path)
            cells[key] = entry
    assert set(cells) == {"direct", "pgbouncer-old", "pgbouncer-new", "rds_proxy"}
    return cells


def _first(entry: Mapping[str, Any], kind: str) -> str:
    return str(entry["errors"][kind]["first"])


def test_summary_has_every_cell_with_the_named_keys(summary: dict[str, Any]) -> None:
    assert len(summary["drivers"]) == len(CONFIGS) * len(summary["paths"])
    for entry in summary["drivers"]:
        assert {"driver", "config", "path", "verdict", "pin_reasons", "errors",
                "peak_db_connections", "p95_ms"} <= entry.keys()
        assert entry["verdict"] in ("works", "pins", "fails", "exhausts")
        assert entry["requests"] > 0
    assert summary["paths"][0] == "direct"
    assert summary["paths"][-1] == "rds_proxy"
    assert all(p.startswith("pgbouncer-") for p in summary["paths"][1:-1])
    assert summary["versions"]["asyncpg"]


def test_psycopg_prepared_statements_break_pgbouncer_1_18_only(summary: dict[str, Any]) -> None:
    cells = _cells(summary, "psycopg_default")
    assert cells["direct"]["verdict"] == "works", cells["direct"]["errors"]
    assert cells["pgbouncer-old"]["verdict"] == "fails", cells["pgbouncer-old"]["errors"]
    assert 'prepared statement "_pg3_' in _first(cells["pgbouncer-old"], "prepared_statement")
    assert cells["pgbouncer-new"]["verdict"] == "works", cells["pgbouncer-new"]["errors"]
    # named Parse is multiplexed by RDS Proxy since November 2023: no pin
    assert cells["rds_proxy"]["pin_reasons"] == []
    assert cells["rds_proxy"]["verdict"] == "works", cells["rds_proxy"]["errors"]


def test_prepare_threshold_none_is_the_setting_that_fixes_pgbouncer_1_18(
        summary: dict[str, Any]) -> None:
    cells = _cells(summary, "psycopg_no_prepare")
    assert {k: c["verdict"] for k, c in cells.items()} == dict.fromkeys(cells, "works"), \
        {k: c["errors"] for k, c in cells.items()}


def test_asyncpg_statement_cache_breaks_1_18_and_its_pool_reset_pins(
        summary: dict[str, Any]) -> None:
    single, pooled = _cells(summary, "asyncpg_connection"), _cells(summary, "asyncpg_pool_1")
    for cells in (single, pooled):
        assert cells["direct"]["verdict"] == "works", cells["direct"]["errors"]
        assert cells["pgbouncer-old"]["verdict"] == "fails", cells["pgbouncer-old"]["errors"]
        assert "__asyncpg_stmt_" in _first(cells["pgbouncer-old"], "prepared_statement")
        assert cells["pgbouncer-new"]["verdict"] == "works", cells["pgbouncer-new"]["errors"]
    # a bigint[] parameter (an order's ANY($1)) is introspected with JIT turned off
    # for the session around it: set_config(..., false) pins behind RDS Proxy
    assert single["rds_proxy"]["verdict"] == "pins", single["rds_proxy"]["errors"]
    assert "set_config('jit', 'off', false)" in single["rds_proxy"]["pin_reasons"][0]["sample"]
    # the pool's release sends its reset query: RESET ALL changes session settings
    assert pooled["rds_proxy"]["verdict"] == "pins", pooled["rds_proxy"]["errors"]
    samples = " ".join(p["sample"] for p in pooled["rds_proxy"]["pin_reasons"])
    assert "RESET ALL" in samples
    assert pooled["rds_proxy"]["peak_db_connections"] >= 2


def test_sqlalchemy_rollback_on_return_pins_with_queuepool_not_nullpool(
        summary: dict[str, Any]) -> None:
    queue, null = _cells(summary, "sqlalchemy_queuepool_1"), _cells(summary, "sqlalchemy_nullpool")
    assert queue["rds_proxy"]["verdict"] == "pins", queue["rds_proxy"]["errors"]
    assert [p["sample"] for p in queue["rds_proxy"]["pin_reasons"]] == ["DEALLOCATE ALL"]
    assert null["rds_proxy"]["pin_reasons"] == []
    assert null["rds_proxy"]["verdict"] == "works", null["rds_proxy"]["errors"]
    for cells in (queue, null):
        assert cells["direct"]["verdict"] == "works", cells["direct"]["errors"]
        assert cells["pgbouncer-new"]["verdict"] == "works", cells["pgbouncer-new"]["errors"]
        # every order's executemany() prepares _pg3_N and the COMMIT keeps it on
        # PgBouncer 1.18's server connection: stranded, whichever client meets it next
        old = cells["pgbouncer-old"]
        assert old["verdict"] == "fails", old["errors"]
        assert set(old["errors"]) <= {"prepared_statement", STRANDED}
        assert _first(old, STRANDED).startswith('prepared statement "_pg3_')


def _fake_pgbouncer(folder: Path) -> PgBouncerBinary:
    """A program that says it is PgBouncer and exits at once: a server that never starts."""
    program = folder / "pgbouncer"
    program.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'PgBouncer 9.9.9' && exit 0\n"
                       "echo 'FATAL cannot start' >&2; exit 1\n")
    program.chmod(0o755)
    return PgBouncerBinary(program, "9.9.9")


@pytest.mark.parametrize("config", ["sqlalchemy_queuepool_1", "sqlalchemy_queuepool_1_pre_ping"])
def test_queuepool_fails_on_pgbouncer_1_18_and_works_on_1_24(
        summary: dict[str, Any], config: str) -> None:
    cells = _cells(summary, config)
    old, new = cells["pgbouncer-old"], cells["pgbouncer-new"]
    # THEN on 1.18 the order's statement outlived its transaction: fails, with the
    # statement named, whether or not one of this run's requests met it
    assert old["verdict"] == "fails", old["errors"]
    assert old["errors"][STRANDED]["count"] >= 1
    assert old["errors"][STRANDED]["first"].startswith('prepared statement "_pg3_')
    assert "INSERT INTO order_items" in old["errors"][STRANDED]["first"]
    assert set(old["errors"]) <= {STRANDED, "prepared_statement"}
    # ... and 1.24 (max_prepared_statements) carries it: every request answered
    assert new["verdict"] == "works", new["errors"]
    assert new["failures"] == 0
    assert cells["direct"]["verdict"] == "works", cells["direct"]["errors"]


def test_a_broken_handler_and_a_down_path_are_one_line_each_and_the_rest_runs(
        tmp_path: Path) -> None:
    # GIVEN the user's handler that fails to import, and a PgBouncer that cannot start
    code = tmp_path / "code"
    code.mkdir()
    (code / "broken.py").write_text("import no_such_module_anywhere\n\n"
                                    "def handler(event, context):\n    return {}\n")
    expect = tmp_path / "expected.toml"
    expect.write_text('[handler]\ndirect = "works"\n')
    lines: list[str] = []
    out = tmp_path / "run"
    # WHEN the matrix runs with expectations it cannot meet
    with pytest.raises(ThresholdsFailedError) as caught:
        run_drivers(DriversOptions(out=out, handler="broken.handler", code_dir=code,
                                   expect=expect, pgbouncers=(_fake_pgbouncer(tmp_path),)),
                    say=lines.append)
    # THEN one line says the path is down, the summary still has every cell ...
    down = [line for line in lines if line.startswith("pgbouncer-9.9.9: ")]
    assert len(down) == 1
    assert "did not start" in down[0]
    summary = json.loads((out / "summary.json").read_text())
    cells = {e["path"]: e for e in summary["drivers"]}
    assert set(cells) == {"direct", "pgbouncer-9.9.9", "rds_proxy"}
    assert cells["pgbouncer-9.9.9"]["verdict"] == "fails", cells["pgbouncer-9.9.9"]["errors"]
    assert "path_unavailable" in cells["pgbouncer-9.9.9"]["errors"]
    # ... the other paths ran the handler, and its import error is named
    for path in ("direct", "rds_proxy"):
        assert cells[path]["verdict"] == "fails"
        assert cells[path]["requests"] > 0
        first = _first(cells[path], "lambda_init_error")
        assert "no_such_module_anywhere" in first
    # ... and the expectation failed in one line, exit 6's error
    assert "handler on direct: fails, expected works" in str(caught.value)
    assert summary["passed"] is False


def test_cli_refuses_an_unknown_configuration_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "connstorm", "drivers", "--only", "nope",
                           "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1
    assert "--only nope: no such configuration" in errors[0]


@pytest.mark.parametrize(("option", "line"), [
    (["--only", ""], "--only: no configuration named (give names like psycopg_default,asyncpg)"),
    (["--only", " , "], "--only: no configuration named (give names like psycopg_default,asyncpg)"),
    (["--expect", "missing.toml"], "--expect missing.toml: no such file"),
])
def test_cli_refuses_an_empty_only_or_a_missing_expect_file_before_anything_runs(
        tmp_path: Path, option: list[str], line: str) -> None:
    # An empty --only (a script's unset variable) must not run the whole two-minute matrix
    done = subprocess.run([sys.executable, "-m", "connstorm", "drivers", *option],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert errors == [f"connstorm: error: {line}"]
    assert "run folder" not in done.stdout
    assert not (tmp_path / "runs").exists()


def test_cli_prints_the_matrix_and_exits_6_only_when_expectations_fail(tmp_path: Path) -> None:
    # GIVEN psycopg2 (it works everywhere) and an expectation that says otherwise
    expect = tmp_path / "expected.toml"
    expect.write_text('[psycopg2_default]\ndirect = "works"\nrds_proxy = "exhausts"\n')
    # WHEN a user runs it as documented, from their own folder, with no --out: the run
    # folder is the relative runs/<time>-drivers (the stand-in, run from its own
    # folder, must still find the paths it is given)
    done = subprocess.run([sys.executable, "-m", "connstorm", "drivers", "--only",
                           "psycopg2_default", "--expect", expect.name],
                          capture_output=True, text=True, timeout=600, check=False,
                          cwd=tmp_path)
    [out] = (tmp_path / "runs").iterdir()
    # THEN the matrix is printed, the run folder written, and only the expectation fails
    assert done.returncode == 6, done.stderr
    assert "psycopg2: defaults" in done.stdout
    assert "rds_proxy" in done.stdout
    errors = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1
    assert "psycopg2_default on rds_proxy: works, expected exhausts" in errors[0]
    summary = json.loads((out / "summary.json").read_text())
    assert [t["passed"] for t in summary["thresholds"]] == [True, False]
    assert "<testcase" in (out / "junit.xml").read_text()
