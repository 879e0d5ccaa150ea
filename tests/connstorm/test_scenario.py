"""Scenario files: each kind of mistake is one clear line; overrides; shipped examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connstorm.errors import ExitCode, ScenarioError
from connstorm.scenario import builtin_names, load_scenario

GOOD = """
name = "t"
[postgres]
max_connections = 20
[pgbouncer]
default_pool_size = 5
[[functions]]
name = "api"
pattern = "module_level"
database = "pgbouncer"
[[routes]]
method = "GET"
path = "/items/{id}"
function = "api"
"""

# (kind of mistake, file text, overrides, what the one line must say)
MISTAKES = [
    ("invalid TOML", "name = \n", [], "invalid TOML"),
    ("missing name", "[postgres]\nmax_connections = 5\n", [],
     "top level name: missing; every scenario needs a name"),
    ("unknown top-level key", "colour = 'red'\n" + GOOD, [], "top level colour: unknown key"),
    ("unknown key in a section", GOOD + "[load]\nuserz = 5\n", [], "[load] userz: unknown key"),
    ("wrong type", GOOD.replace("max_connections = 20", 'max_connections = "lots"'), [],
     '[postgres] max_connections: expected an integer, got "lots"'),
    ("out of range", GOOD.replace("max_connections = 20", "max_connections = 0"), [],
     "[postgres] max_connections: must be at least 1, got 0"),
    ("reserved >= max", GOOD.replace("max_connections = 20",
                                     "max_connections = 5\nsuperuser_reserved_connections = 5"),
     [], "[postgres] superuser_reserved_connections: must be less than max_connections (5)"),
    ("pool larger than the database allows", GOOD.replace("default_pool_size = 5",
                                                          "default_pool_size = 50"), [],
     "[pgbouncer] default_pool_size: the pool (50 server connections with the reserve) is "
     "larger than PostgreSQL allows an ordinary role"),
    ("unknown choice", GOOD.replace("default_pool_size = 5", 'pool_mode = "sometimes"'), [],
     "[pgbouncer] pool_mode: must be one of session, transaction, statement; got 'sometimes'"),
    ("unknown PgBouncer setting", GOOD + "", ["pgbouncer.pool_size=3"],
     "[pgbouncer] pool_size: unknown PgBouncer setting"),
    ("setting managed by connstorm", GOOD.replace("max_connections = 20",
                                                  "max_connections = 20\nport = 5432"), [],
     "[postgres] port: is managed by connstorm and cannot be set in a scenario"),
    ("route to an undefined function", GOOD.replace('function = "api"', 'function = "apx"'), [],
     "[[routes]] GET /items/{id}: function 'apx' is not defined in [[functions]]"),
    ("pattern and handler both", GOOD.replace('pattern = "module_level"',
                                              'pattern = "module_level"\nhandler = "a.b"'), [],
     "[[functions]] api: pattern: give either pattern or handler, not both"),
    ("pooler path with the pooler disabled", GOOD, ["pgbouncer.enabled=false"],
     "[pgbouncer] enabled: a function uses database = \"pgbouncer\" but PgBouncer is disabled"),
    ("override without =", GOOD, ["postgres.max_connections"],
     "--set postgres.max_connections: expected section.key=value"),
    ("override of an unknown key", GOOD, ["load.user=5"], "[load] user: unknown key"),
    ("malformed route template", GOOD.replace('path = "/items/{id}"', 'path = "/items/{id}x"'),
     [], "[[routes]] GET /items/{id}x: path:"),
    ("request rate limit not a boolean", GOOD, ["lambda.request_rate_limit=1"],
     "[lambda] request_rate_limit: expected true or false, got 1"),
    ("function request rate limit not a boolean", GOOD,
     ['functions.api.request_rate_limit="off"'],
     '[[functions]] api: request_rate_limit: expected true or false, got "off"'),
    ("too many event retries", GOOD, ["functions.api.event_retry_attempts=3"],
     "[[functions]] api: event_retry_attempts: must be at most 2, got 3"),
    ("negative event retry delay", GOOD, ["functions.api.event_retry_delay_s=-1"],
     "[[functions]] api: event_retry_delay_s: must be at least 0, got -1"),
    ("route param the path lacks", GOOD, ["routes.0.params={idx=[1]}"],
     "[[routes]] GET /items/{id}: params.idx: is not a parameter of /items/{id} "
     "(its parameters: id)"),
    ("route param range upside down", GOOD, ["routes.0.params={id={min=9, max=1}}"],
     "[[routes]] GET /items/{id}: params.id.max: must not be less than min (9), got 1"),
    ("route param neither list nor range", GOOD, ["routes.0.params={id=7}"],
     "[[routes]] GET /items/{id}: params.id: expected a list of values (id = [1, 2]) or an "
     "integer range (id = { min = 1, max = 9 }), got 7"),
    ("route param empty list", GOOD, ["routes.0.params={id=[]}"],
     "[[routes]] GET /items/{id}: params.id: is empty"),
    ("route param range missing max", GOOD, ["routes.0.params={id={min=1}}"],
     "[[routes]] GET /items/{id}: params.id: a range takes exactly min and max, got min"),
    ("route weight negative", GOOD, ["routes.0.weight=-1"],
     "[[routes]] GET /items/{id}: weight: must be at least 0, got -1"),
    ("every route weight 0", GOOD, ["routes.0.weight=0"],
     "[[routes]] GET /items/{id}: weight: every route has weight 0: nothing would send load"),
    ("route header not a string", GOOD, ["routes.0.headers={X-Count=1}"],
     "[[routes]] GET /items/{id}: headers.X-Count: expected a string, got 1"),
    ("route body not JSON", GOOD, ["routes.0.body=1979-05-27"],
     "[[routes]] GET /items/{id}: body: must be JSON"),
    ("empty locustfile", GOOD, ['load.locustfile=""'],
     "[load] locustfile: must not be empty (leave the key out instead)"),
]


@pytest.mark.parametrize(("kind", "text", "overrides", "expected"), MISTAKES,
                         ids=[m[0] for m in MISTAKES])
def test_scenario_mistake_is_one_clear_line(tmp_path: Path, kind: str, text: str,
                                            overrides: list[str], expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, overrides=overrides)
    message = str(err.value)
    assert message.startswith(str(path) + ": "), message
    assert expected in message
    assert "\n" not in message


def test_scenario_lambda_limits_default_to_aws(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    s = load_scenario(path)
    assert s.lambda_.request_rate_limit is True
    fn = s.function("api")
    assert fn.request_rate_limit is None  # follows [lambda]
    assert fn.event_retry_attempts == 2
    assert fn.event_retry_delay_s == 60.0


def test_scenario_lambda_limits_can_be_set(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    s = load_scenario(path, overrides=[
        "lambda.request_rate_limit=false", "functions.api.request_rate_limit=true",
        "functions.api.event_retry_attempts=0", "functions.api.event_retry_delay_s=0.5"])
    assert s.lambda_.request_rate_limit is False
    fn = s.function("api")
    assert fn.request_rate_limit is True
    assert fn.event_retry_attempts == 0
    assert fn.event_retry_delay_s == 0.5


def test_scenario_missing_file_lists_builtins() -> None:
    with pytest.raises(ScenarioError, match=r"nope: no such scenario file, .*direct-small"):
        load_scenario("nope")


@pytest.mark.slow
@pytest.mark.parametrize(("text", "expected"), [
    ("name = ", "invalid TOML"),
    ('name = "x"\n[postgres]\nmax_connections = "lots"\n', "[postgres] max_connections"),
    ('name = "x"\n[thresholds]\nmax_fail_ratio = 2\n', "[thresholds] max_fail_ratio: must be "
                                                       "at most 1"),
])
def test_scenario_mistake_through_the_cli_exits_3_without_traceback(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "connstorm", "up", str(path), "--out",
                             str(tmp_path / "run")], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == ExitCode.SCENARIO
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"connstorm: error: {path}: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_scenario_overrides_take_precedence_over_the_file() -> None:
    s = load_scenario("pgbouncer-transaction", overrides=[
        "postgres.max_connections=30", "pgbouncer.pool_mode=session",
        'pgbouncer.pool_mode="statement"', "functions.api.database=direct",
        "functions.0.timeout_s=3", "postgres.statement_timeout=\"5s\""])
    assert s.postgres.max_connections == 30
    assert s.postgres.settings["max_connections"] == 30
    assert s.postgres.settings["statement_timeout"] == "5s"
    assert s.pgbouncer.pool_mode == "statement"  # the last override wins
    assert s.pgbouncer.settings["pool_mode"] == "statement"
    assert s.function("api").database == "direct"
    assert s.function("api").timeout_s == 3.0
    assert s.raw["postgres"]["max_connections"] == 30


def test_scenario_override_naming_a_missing_function_is_clear() -> None:
    with pytest.raises(ScenarioError, match=r"--set functions.nope.timeout_s=1: functions: no "
                                            r"entry named or numbered 'nope'"):
        load_scenario("direct-small", overrides=["functions.nope.timeout_s=1"])


def test_scenario_builtins_all_load_and_cover_the_three_paths() -> None:
    names = builtin_names()
    assert {"direct-small", "pgbouncer-transaction", "pgbouncer-session"} <= set(names)
    loaded = {name: load_scenario(name) for name in names}
    assert loaded["direct-small"].functions[0].database == "direct"
    assert loaded["pgbouncer-transaction"].pgbouncer.pool_mode == "transaction"
    assert loaded["pgbouncer-session"].pgbouncer.pool_mode == "session"


def test_scenario_issue_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "issue.toml"
    path.write_text("""
name = "direct-small"
[postgres]
max_connections = 20
superuser_reserved_connections = 3
[pgbouncer]
pool_mode = "transaction"
default_pool_size = 10
max_client_conn = 1000
[lambda]
concurrency_limit = 1000
freeze = true
[[functions]]
name = "api"
handler = "handlers.module_level_handler.lambda_handler"
code_dir = "."
database = "pgbouncer"
timeout_s = 10
memory_mb = 512
reserved_concurrency = 100
idle_lifetime_s = 600
env = { LOG_LEVEL = "INFO" }
[[routes]]
method = "GET"
path = "/items/{id}"
function = "api"
payload = "2.0"
[load]
users = 100
spawn_rate = 20
duration_s = 60
[thresholds]
max_fail_ratio = 0.01
""")
    s = load_scenario(path)
    assert s.functions[0].env == {"LOG_LEVEL": "INFO"}
    assert s.routes[0].payload == "2.0"
    assert s.thresholds.max_fail_ratio == 0.01


@pytest.mark.parametrize(("overrides", "expected"), [
    (["load.userz=5"], "[load] userz: unknown key; did you mean users?"),
    (["pgbouncer.default_pool_sise=5"],
     "[pgbouncer] default_pool_sise: unknown PgBouncer setting; did you mean default_pool_size?"),
    (["thresholds.too_many_conections=0"],
     "[thresholds] too_many_conections: unknown key; did you mean too_many_connections?"),
    (["functions.api.timeout=5"], "[[functions]] api: timeout: unknown key; did you mean "
                                  "timeout_s?"),
    (["functions.api.vpc={subnetz=2}"],
     "[[functions]] api: vpc.subnetz: unknown key; did you mean subnets?"),
    (["rds_proxy.max_conections_percent=5"],
     "[rds_proxy] max_conections_percent: unknown key; did you mean max_connections_percent?"),
])
def test_scenario_unknown_key_suggests_the_nearest(tmp_path: Path, overrides: list[str],
                                                   expected: str) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(GOOD)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, overrides=overrides)
    # the file is fine: the line names the --set that broke it
    assert str(err.value) == f"{path}: --set {overrides[-1]}: {expected}"


def test_scenario_unknown_key_without_a_near_name_lists_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(GOOD)
    with pytest.raises(ScenarioError, match=r"\[load\] zzz: unknown key \(known: .*users"):
        load_scenario(path, overrides=["load.zzz=1"])


NEW_KEY_MISTAKES = [
    (["functions.api.provisioned_concurrency=-1"],
     "[[functions]] api: provisioned_concurrency: must be at least 0, got -1"),
    (["functions.api.reserved_concurrency=2", "functions.api.provisioned_concurrency=3"],
     "[[functions]] api: provisioned_concurrency: must not exceed reserved_concurrency (2)"),
    (['functions.api.vpc={eni_model="per_env"}'],
     "[[functions]] api: vpc.eni_model: must be one of hyperplane, per_environment"),
    (["functions.api.vpc={subnets=0}"], "[[functions]] api: vpc.subnets: must be at least 1"),
    (['timeline=[{at_s=5, action="deploy", target="nope"}]'],
     "[[timeline]] #1: target: 'nope' is not defined in [[functions]]"),
    (['timeline=[{at_s=5, action="kill_environments", target="api"}]'],
     "[[timeline]] #1: count: missing; kill_environments needs count, target"),
    (['timeline=[{at_s=5, action="freeze_database"}]'],
     "[[timeline]] #1: seconds: missing"),
    (['timeline=[{at_s=-1, action="restart_postgres"}]'],
     "[[timeline]] #1: at_s: must be at least 0, got -1"),
    (['timeline=[{at_s=1, action="restart_rds_proxy"}]'],
     "[[timeline]] #1: action: restart_rds_proxy, but [rds_proxy] is not enabled"),
    (['schedules=[{function="nope", every_s=5}]'],
     "[[schedules]] #1: function: 'nope' is not defined in [[functions]]"),
    (["rds_proxy.max_connections_percent=40", "rds_proxy.max_idle_connections_percent=60"],
     "[rds_proxy] max_idle_connections_percent: must not exceed max_connections_percent (40)"),
    (['rds_proxy.iam_auth="sometimes"'],
     "[rds_proxy] iam_auth: must be one of required, disabled; got 'sometimes'"),
    (["rds_proxy.connection_borrow_timeout_s=301"],
     "[rds_proxy] connection_borrow_timeout_s: must be at most 300, got 301"),
    # the Lambda lifecycle's keys (issue 14)
    (["functions.api.vpc={free_ips_per_subnet=-1}"],
     "[[functions]] api: vpc.free_ips_per_subnet: must be at least 0, got -1"),
    (["functions.api.vpc={eni_attach_ms=-5}"],
     "[[functions]] api: vpc.eni_attach_ms: must be at least 0, got -5"),
    (['functions.api.vpc={subnets=2, zones="a"}'],
     "[[functions]] api: vpc.zones: unknown key"),
    # reservations leave at least 100 of the account unreserved (all of a smaller one)
    (["functions.api.reserved_concurrency=901"],
     "[[functions]] api: reserved_concurrency: reservations of 901 (api 901) leave 99 of "
     "[lambda] concurrency_limit 1000 unreserved; Lambda keeps at least 100 for functions "
     "without reserved concurrency (reserve at most 900 in all)"),
    (["lambda.concurrency_limit=50", "functions.api.reserved_concurrency=1"],
     "[[functions]] api: reserved_concurrency: reservations of 1 (api 1) leave 49 of "
     "[lambda] concurrency_limit 50 unreserved; Lambda keeps at least 50"),
    (["functions.api.provisioned_concurrency=2000"],
     "[[functions]] api: provisioned_concurrency: the functions take 2000 in all, more than "
     "[lambda] concurrency_limit (1000)"),
    (['schedules=[{function="api", every_s=0}]'],
     "[[schedules]] #1: every_s: must be more than 0, got 0"),
    (['schedules=[{function="api"}]'], "[[schedules]] #1: every_s: missing"),
    (['timeline=[{at_s=1, action="deploy"}]'],
     "[[timeline]] #1: target: missing; deploy needs target"),
    (["lambda.cpu_shares=1"], "[lambda] cpu_shares: expected true or false, got 1"),
    # connstorm live's section (issue 12)
    (["live.poll_interval_s=0"], "[live] poll_interval_s: must be at least 1, got 0"),
    (["live.wait_for_metrics_s=-1"], "[live] wait_for_metrics_s: must be at least 0, got -1"),
    (['live.stack_nam="x"'], "[live] stack_nam: unknown key; did you mean stack_name?"),
]


@pytest.mark.parametrize(("overrides", "expected"), NEW_KEY_MISTAKES,
                         ids=[m[1].split(":")[1].strip() + ":" + m[0][-1][:30]
                              for m in NEW_KEY_MISTAKES])
def test_scenario_new_section_mistake_is_one_line(tmp_path: Path, overrides: list[str],
                                                  expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, overrides=overrides)
    message = str(err.value)
    assert message.startswith(f"{path}: --set {overrides[-1]}: ")
    assert expected in message
    assert "\n" not in message


def test_a_mistake_of_the_file_itself_is_blamed_on_the_file_even_with_a_set(
        tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD + "[load]\nuserz = 3\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, overrides=["postgres.max_connections=30"])
    assert str(err.value) == f"{path}: [load] userz: unknown key; did you mean users?"


def test_the_first_set_that_breaks_a_valid_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, overrides=["postgres.max_connections=30", "load.users=abc",
                                       "load.spawn_rate=x"])
    assert str(err.value) == (f'{path}: --set load.users=abc: [load] users: expected an '
                              f'integer, got "abc"')


def test_scenario_rds_proxy_path_enables_the_stand_in(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(GOOD)
    s = load_scenario(path, overrides=["functions.api.database=rds_proxy"])
    assert s.rds_proxy.enabled
    assert s.rds_proxy.max_connections_percent == 100
    assert s.rds_proxy.idle_percent == 50  # RDS Proxy: half of max_connections_percent
    assert s.rds_proxy.connection_borrow_timeout_s == 120.0
    assert s.rds_proxy.idle_client_timeout_s == 1800.0
    assert s.rds_proxy.iam_auth == "disabled"
    assert not load_scenario(path).rds_proxy.enabled


def test_scenario_reservations_up_to_the_unreserved_minimum_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    assert load_scenario(path, overrides=["functions.api.reserved_concurrency=900"])
    # reserving 0 throttles a function and takes nothing from the others
    assert load_scenario(path, overrides=["lambda.concurrency_limit=10",
                                          "functions.api.reserved_concurrency=0"])
