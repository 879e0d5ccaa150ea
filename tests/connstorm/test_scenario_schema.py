"""The scenario's JSON Schema and reference: generated from the model, valid, current."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

from connstorm import scenario_schema
from connstorm.cli.commands import schema as schema_command
from connstorm.scenario import BUILTIN_DIR, builtin_names


@pytest.fixture(scope="module")
def printed_schema() -> dict[str, object]:
    """What ``connstorm schema`` prints, run as users run it."""
    result = subprocess.run([sys.executable, "-m", "connstorm", "schema"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    # the committed copy it prints is the model's schema, rendered now
    assert result.stdout == scenario_schema.schema_text()
    schema: dict[str, object] = json.loads(result.stdout)
    return schema


def test_schema_command_prints_draft_2020_12(printed_schema: dict[str, object]) -> None:
    assert printed_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(printed_schema)
    props = printed_schema["properties"]
    assert isinstance(props, dict)
    assert {"postgres", "pgbouncer", "lambda", "functions", "routes", "load", "thresholds",
            "rds_proxy", "timeline", "schedules", "live"} <= set(props)
    assert "source" not in props
    assert "raw" not in props


@pytest.mark.parametrize("name", builtin_names())
def test_schema_validates_every_builtin_scenario(printed_schema: dict[str, object],
                                                 name: str) -> None:
    doc = tomllib.loads((BUILTIN_DIR / f"{name}.toml").read_text())
    jsonschema.Draft202012Validator(printed_schema).validate(doc)


@pytest.mark.parametrize(("change", "complaint"), [
    ({"postgres": {"max_conections": 5, "max_connections": "lots"}}, "'lots' is not of type"),
    ({"load": {"userz": 5}}, r"Additional properties are not allowed \('userz'"),
    ({"pgbouncer": {"pool_mode": "sometimes"}}, "'sometimes' is not one of"),
    ({"lambda": {"freeze": 1}}, "1 is not of type 'boolean'"),
    ({"thresholds": {"too_many_connections": -1}}, "-1 is less than the minimum of 0"),
])
def test_schema_rejects_wrong_keys_and_types(printed_schema: dict[str, object],
                                             change: dict[str, object], complaint: str) -> None:
    doc = tomllib.loads((BUILTIN_DIR / "ci-smoke.toml").read_text())
    doc.update(change)
    with pytest.raises(jsonschema.ValidationError, match=complaint):
        jsonschema.Draft202012Validator(printed_schema).validate(doc)


def test_schema_carries_descriptions_defaults_and_enums() -> None:
    schema = scenario_schema.json_schema()
    pg = schema["$defs"]["PostgresConfig"]["properties"]["max_connections"]
    assert pg["default"] == 20
    assert "connection limit" in pg["description"]
    fn = schema["$defs"]["FunctionConfig"]["properties"]["database"]
    assert fn["enum"] == ["direct", "pgbouncer", "rds_proxy", "none"]


def test_schema_command_renders_when_no_copy_is_shipped(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(schema_command, "COMMITTED_SCHEMA", tmp_path / "absent.json")
    assert schema_command.run(argparse.Namespace(write=False, reference=False)) == 0
    assert capsys.readouterr().out == scenario_schema.schema_text()


def test_schema_command_reads_the_copy_schema_write_refreshes() -> None:
    assert scenario_schema.SCHEMA_PATH.resolve() == schema_command.COMMITTED_SCHEMA.resolve()


def test_schema_and_reference_committed_are_current() -> None:
    """Fails when a section changed without ``connstorm schema --write``."""
    assert scenario_schema.SCHEMA_PATH.read_text() == scenario_schema.schema_text(), (
        "run: connstorm schema --write")
    assert scenario_schema.REFERENCE_PATH.read_text() == scenario_schema.reference_markdown(), (
        "run: connstorm schema --write")


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenarios_point_editors_at_the_schema(name: str) -> None:
    first = (BUILTIN_DIR / f"{name}.toml").read_text().splitlines()[0]
    assert first == "#:schema ./scenario.schema.json"


def test_reference_names_every_section_and_key() -> None:
    text = scenario_schema.reference_markdown()
    for heading in ("## `[postgres]`", "## `[[functions]]`", "## `[rds_proxy]`",
                    "## `[[timeline]]`", "### `functions.vpc`"):
        assert heading in text
    assert "| `connection_borrow_timeout_s` |" in text
