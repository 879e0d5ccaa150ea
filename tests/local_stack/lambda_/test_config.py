"""EmulatorConfig: built from a scenario, JSON round trip, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connstorm.errors import ScenarioError
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.task_root import builtin_handlers_dir
from connstorm.scenario import load_scenario


def _scenario(tmp_path: Path, functions: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\n[pgbouncer]\nenabled = true\n{functions}', encoding="utf-8")
    return path


def test_config_from_builtin_scenario_resolves_pattern_to_a_task_root_of_handlers(
        tmp_path: Path) -> None:
    config = EmulatorConfig.from_scenario(load_scenario("direct-small"), tmp_path,
                                          {"api": {"DB_HOST": "127.0.0.1"}})
    fn = config.function("api")
    # Like /var/task of the zip connstorm package builds: handlers/ and nothing of connstorm.
    task_root = Path(fn.code_dir)
    assert [p.name for p in task_root.iterdir()] == ["handlers"]
    assert (task_root / "handlers").resolve() == builtin_handlers_dir()
    assert fn.handler == "handlers.module_level_handler.lambda_handler"
    assert fn.env["DB_HOST"] == "127.0.0.1"
    assert config.run_dir == str(tmp_path.resolve())
    assert len(config.routes) == 5


def test_config_json_round_trip_is_identical(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[functions]]\nname = "f"\nhandler = "m.h"\n'
                               'reserved_concurrency = 3\nmax_lifetime_s = 60\n'
                               'env = {A = "1"}\n')
    config = EmulatorConfig.from_scenario(load_scenario(path), tmp_path / "run")
    config.write(tmp_path / "run" / "emulator-config.json")
    assert EmulatorConfig.read(tmp_path / "run" / "emulator-config.json") == config
    assert (tmp_path / "run" / "emulator-config.json").stat().st_mode & 0o777 == 0o600
    assert json.loads(config.to_json())["functions"][0]["reserved_concurrency"] == 3


def test_config_relative_code_dir_is_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    path = _scenario(tmp_path, '[[functions]]\nname = "f"\nhandler = "m.h"\ncode_dir = "code"\n')
    config = EmulatorConfig.from_scenario(load_scenario(path), tmp_path)
    assert config.function("f").code_dir == str(tmp_path / "code")


def test_config_stack_env_wins_over_scenario_env(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[functions]]\nname = "f"\nhandler = "m.h"\n'
                               'env = {DB_HOST = "scenario", KEEP = "yes"}\n')
    config = EmulatorConfig.from_scenario(load_scenario(path), tmp_path,
                                          {"f": {"DB_HOST": "stack"}})
    assert dict(config.function("f").env) == {"DB_HOST": "stack", "KEEP": "yes"}


def test_config_missing_code_dir_is_a_scenario_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[functions]]\nname = "f"\nhandler = "m.h"\ncode_dir = "nope"\n')
    with pytest.raises(ScenarioError,
                       match=r"\[\[functions\]\] f: code_dir: .*nope is not a folder"):
        EmulatorConfig.from_scenario(load_scenario(path), tmp_path)


def test_config_env_for_unknown_function_is_a_scenario_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[functions]]\nname = "f"\nhandler = "m.h"\n')
    with pytest.raises(ScenarioError, match=r"unknown function.*ghost"):
        EmulatorConfig.from_scenario(load_scenario(path), tmp_path, {"ghost": {}})


def test_config_round_trip_keeps_the_lifecycle_keys(tmp_path: Path) -> None:
    scenario = load_scenario("direct-small", overrides=[
        'functions.api.vpc={subnets=2, eni_model="per_environment", eni_attach_ms=50}',
        "functions.api.provisioned_concurrency=2",
        'schedules=[{function="api", every_s=5, payload={warmer=true}}]'])
    config = EmulatorConfig.from_scenario(scenario, tmp_path, {})
    back = EmulatorConfig.from_json(config.to_json())
    assert back == config
    fn = back.function("api")
    assert fn.vpc is not None
    assert (fn.vpc.subnets, fn.vpc.eni_model, fn.vpc.eni_attach_ms) == (2, "per_environment",
                                                                        50.0)
    assert fn.provisioned_concurrency == 2
    assert back.schedules[0].payload == {"warmer": True}
