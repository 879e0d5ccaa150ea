"""The peak users of a run are decided once ([load] users, or --users): Locust's -u,
the dry run's plan and the summary's connection budget all read the same number."""

from __future__ import annotations

from pathlib import Path

import pytest

from connstorm.loadtests.orchestrator.connection_budget import connection_budget
from connstorm.loadtests.orchestrator.locust_command import locust_args
from connstorm.loadtests.orchestrator.run_options import RunOptions
from connstorm.scenario import load_scenario


def _locust_users(opts: RunOptions) -> int:
    args = locust_args(opts, "http://127.0.0.1:9", None)
    return int(args[args.index("-u") + 1])


@pytest.mark.parametrize("given", [None, 7])
def test_locust_and_the_connection_budget_count_the_same_users(tmp_path: Path,
                                                               given: int | None) -> None:
    scenario = load_scenario("direct-small", overrides=["load.users=40"])
    opts = RunOptions(scenario=scenario, run_dir=tmp_path, users=given)
    expected = 40 if given is None else given
    assert scenario.load.peak_users(opts.users) == expected
    assert _locust_users(opts) == expected
    # One environment per concurrent user (the concurrency limit is 1000).
    assert connection_budget(scenario, users=opts.users)["environments"] == expected


def test_spawn_rate_and_duration_follow_the_same_rule(tmp_path: Path) -> None:
    scenario = load_scenario("direct-small", overrides=["load.spawn_rate=3",
                                                        "load.duration_s=12"])
    args = locust_args(RunOptions(scenario=scenario, run_dir=tmp_path), "http://127.0.0.1:9",
                       None)
    assert args[args.index("-r") + 1] == "3"
    assert args[args.index("-t") + 1] == "12s"
    given = RunOptions(scenario=scenario, run_dir=tmp_path, spawn_rate=5.0, duration_s=30.0)
    args = locust_args(given, "http://127.0.0.1:9", None)
    assert (args[args.index("-r") + 1], args[args.index("-t") + 1]) == ("5", "30s")
