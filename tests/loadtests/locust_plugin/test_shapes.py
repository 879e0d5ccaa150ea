"""Load shapes as pure functions of elapsed time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connstorm.loadtests.locust_plugin.shapes import ShapeParams, target


def test_shape_constant_holds_until_run_time() -> None:
    p = ShapeParams("constant", users=30, spawn_rate=5, run_time_s=10)
    assert target(p, 0) == (30, 5)
    assert target(p, 9.9) == (30, 5)
    assert target(p, 10) is None


def test_shape_ramp_grows_linearly_then_holds() -> None:
    p = ShapeParams("ramp", users=80, spawn_rate=1, run_time_s=100)
    counts = [target(p, t)[0] for t in (0, 20, 40, 80, 95)]  # type: ignore[index]
    assert counts == [1, 20, 40, 80, 80]


def test_shape_steps_adds_step_users_per_step() -> None:
    p = ShapeParams("steps", users=25, spawn_rate=1, run_time_s=60, step_users=10,
                    step_duration_s=5)
    assert [target(p, t)[0] for t in (0, 4.9, 5, 10, 30)] == [10, 10, 20, 25, 25]  # type: ignore[index]


def test_shape_spike_bursts_in_the_middle_third() -> None:
    p = ShapeParams("spike", users=50, spawn_rate=2, run_time_s=30)
    assert target(p, 1) == (5, 50.0)
    assert target(p, 15) == (50, 50.0)
    assert target(p, 25) == (5, 50.0)


def test_shape_unknown_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown shape 'zigzag'"):
        target(ShapeParams("zigzag"), 0)


def test_shape_params_read_locust_options() -> None:
    options = SimpleNamespace(shape="steps", num_users=40, spawn_rate=4.0, run_time=20,
                              step_users=5, step_duration_s=2.0)
    assert ShapeParams.from_options(options) == ShapeParams("steps", 40, 4.0, 20.0, 5, 2.0)
    assert ShapeParams.from_options(None) == ShapeParams()
