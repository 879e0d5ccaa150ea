"""Run folder naming and JSON files with their modes."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connstorm.errors import EnvironmentProblemError
from connstorm.run_folder import create_run_dir, default_run_dir, write_json, write_private_json


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
