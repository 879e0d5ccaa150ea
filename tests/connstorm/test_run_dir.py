"""The run folder's owner: its names, its atomic private writes, its readers."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connstorm import run_folder
from connstorm.errors import EnvironmentProblemError
from connstorm.run_folder import (
    create_run_dir,
    default_run_dir,
    load_json,
    log_tail,
    write_atomic,
    write_json,
    write_private_json,
)

PACKAGE = Path(run_folder.__file__).resolve().parent


def test_default_run_dir_is_utc_timestamp_then_scenario() -> None:
    when = datetime(2026, 11, 26, 22, 5, 9, tzinfo=UTC)
    assert default_run_dir("direct-small", when) == Path("runs/20261126-220509-direct-small")


def test_create_run_dir_makes_logs_and_returns_absolute(tmp_path: Path) -> None:
    made = create_run_dir(tmp_path / "a" / "run")
    assert made.is_absolute()
    assert (made / "logs").is_dir()


def test_write_private_json_is_owner_only_even_over_a_public_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_private_json(path, {"postgres_dsn": "postgresql://app:secret@127.0.0.1:1/app"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["postgres_dsn"].endswith("/app")
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_json_is_readable_by_others(tmp_path: Path) -> None:
    write_json(tmp_path / "scenario.json", {"name": "x"})
    assert stat.S_IMODE((tmp_path / "scenario.json").stat().st_mode) == 0o644


def test_create_run_dir_where_a_file_is_in_the_way_names_it(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(EnvironmentProblemError) as err:
        create_run_dir(tmp_path / "taken")
    assert str(err.value) == f"{tmp_path / 'taken'}: cannot create the run folder: Not a directory"


def test_write_atomic_keeps_the_old_file_whole_when_the_new_one_cannot_be_written(
        tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json(path, {"passed": True})
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half a summary \udc80")  # fails after the temporary file exists
    assert json.loads(path.read_text()) == {"passed": True}
    assert os.listdir(tmp_path) == ["summary.json"]


def test_write_atomic_sets_the_mode_before_any_byte_is_written(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "emulator-config.json", b"{}", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"{}"


def test_load_json_treats_a_missing_file_as_empty_and_a_damaged_one_as_an_error(
        tmp_path: Path) -> None:
    assert load_json(tmp_path / "stack.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert load_json(tmp_path / "list.json") == {}
    (tmp_path / "half.json").write_text('{"api_url": ')
    with pytest.raises(json.JSONDecodeError):
        load_json(tmp_path / "half.json")


def test_log_tail_reads_only_the_end_of_a_long_log(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(200_000)) + b"bad \xff end\n")
    assert log_tail(log, 2) == "line 199999\nbad \ufffd end"
    assert log_tail(tmp_path / "missing.log") == ""


def _file_names() -> set[str]:
    """Every file name of the run folder, as its constants spell them (and their basenames)."""
    values = {v for k, v in vars(run_folder).items()
              if k.isupper() and isinstance(v, str) and ("." in v or "/" in v)}
    return values | {v.rsplit("/", 1)[1] for v in values if "/" in v and "." in v.rsplit("/", 1)[1]}


def test_no_module_but_run_folder_spells_a_run_folder_file_name() -> None:
    # One owner per format: a file name written twice drifts (issue 21 found
    # "stack.json" eleven times). Docstrings may name files; code uses the constants.
    names = _file_names()
    assert {"stack.json", "scenario.json", "samples.jsonl", "logs/postgres.log",
            "emulator-config.json", "summary.md"} <= names
    spelled = re.compile(r"(?<![\w.-])(" + "|".join(
        re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")(?![\w-])")
    found = []
    for folder, _, files in os.walk(PACKAGE, followlinks=True):
        for file in (Path(folder) / f for f in files if f.endswith(".py")):
            if file == PACKAGE / "run_folder.py":
                continue
            tree = ast.parse(file.read_text(encoding="utf-8"))
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                        | ast.AsyncFunctionDef)
                          and node.body and isinstance(node.body[0], ast.Expr)}
            found += [f"{file.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}"
                      for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and id(node) not in docstrings and spelled.search(node.value)]
    assert not found, "use the constants of connstorm/run_folder.py: " + "; ".join(found)
