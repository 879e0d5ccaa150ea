"""Which users send the load, and your own locustfile checked before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connstorm.errors import ExitCode, LocustfileError
from connstorm.loadtests.locust_plugin.route_load import ENV_ROUTES, decode
from connstorm.loadtests.orchestrator.locustfiles import (
    PLUGIN_LOCUSTFILE,
    ROUTES_LOCUSTFILE,
    WORKLOAD_LOCUSTFILE,
    check_own,
    load_source,
)
from connstorm.scenario import load_scenario

OWN_USERS = Path(__file__).resolve().parents[1] / "own_function" / "own_users.py"


def test_builtin_scenarios_keep_the_workloads_user() -> None:
    source = load_source(load_scenario("direct-small"))
    assert (source.kind, source.files, dict(source.env)) == ("workload", (WORKLOAD_LOCUSTFILE,),
                                                             {})


@pytest.mark.parametrize("overrides", [
    ['routes=[{method="GET", path="/health", function="api"}]'],  # a subset
    ["routes.1.weight=2"],  # the workload's routes, weighted by the scenario
    ['routes.0.headers={X-Test="yes"}'],
])
def test_other_routes_generate_the_users(overrides: list[str]) -> None:
    scenario = load_scenario("direct-small", overrides=overrides)
    source = load_source(scenario)
    assert source.kind == "routes"
    assert source.files == (ROUTES_LOCUSTFILE,)
    routes = decode(source.env[ENV_ROUTES])
    assert [(r.method, r.path) for r in routes] == [(r.method, r.path) for r in scenario.routes]


def test_own_locustfile_wins_and_keeps_the_plugin(tmp_path: Path) -> None:
    scenario_file = tmp_path / "sub" / "s.toml"
    scenario_file.parent.mkdir()
    scenario_file.write_text('name = "s"\n[load]\nlocustfile = "users/mine.py"\n')
    source = load_source(load_scenario(scenario_file))
    # [load] locustfile is relative to the scenario file; the plugin comes after it
    assert source.kind == "own"
    assert source.files == (tmp_path / "sub" / "users" / "mine.py", PLUGIN_LOCUSTFILE)
    assert source.locustfile_arg == f"{tmp_path}/sub/users/mine.py,{PLUGIN_LOCUSTFILE}"
    # --locustfile (relative to the working directory) wins over it
    given = load_source(load_scenario(scenario_file), Path("other.py"))
    assert given.own == Path.cwd() / "other.py"


def test_check_own_lists_the_users_with_locust_itself() -> None:
    source = load_source(load_scenario("direct-small"), OWN_USERS)
    assert check_own(source) == ("ShopperUser", "FastShopperUser")
    assert check_own(load_source(load_scenario("direct-small"))) == ()  # not your own


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("missing.py", None, "missing.py: no such locustfile"),
    ("users.txt", "x = 1\n", "users.txt: a locustfile must be a .py file"),
    ("nousers.py", "import locust\nX = 1\n", "nousers.py: no Locust User class in it"),
    ("abstract.py", "from locust import HttpUser\nclass Base(HttpUser):\n    abstract = True\n",
     "abstract.py: no Locust User class in it"),
    ("broken.py", "import no_such_module_anywhere\n",
     "broken.py: Locust cannot load it: ModuleNotFoundError: No module named "
     "'no_such_module_anywhere'"),
    ("syntax.py", "def f(:\n", "syntax.py: Locust cannot load it: SyntaxError"),
])
def test_check_own_refuses_a_locustfile_that_cannot_run(tmp_path: Path, name: str,
                                                        text: str | None, expected: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(LocustfileError) as err:
        check_own(load_source(load_scenario("direct-small"), path))
    assert str(err.value).startswith(str(tmp_path)), err.value
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == ExitCode.LOCUSTFILE == 12


def test_routes_json_is_what_the_locust_side_reads() -> None:
    scenario = load_scenario("direct-small", overrides=[
        'routes=[{method="GET", path="/items/{id}", function="api", weight=3, '
        'params={id={min=1, max=5}}}]'])
    doc = json.loads(load_source(scenario).env[ENV_ROUTES])
    assert doc == [{"method": "GET", "path": "/items/{id}", "weight": 3,
                    "params": {"id": [1, 5]}, "ranges": ["id"], "headers": {}}]
