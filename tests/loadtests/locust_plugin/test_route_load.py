"""The load routes ask for: exact weights per round, filled paths, and the JSON between sides."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from connstorm.loadtests.locust_plugin.route_load import (
    DEFAULT_RANGE,
    Rounds,
    RouteLoad,
    decode,
    encode,
    round_of,
)
from connstorm.scenario import load_scenario

SCENARIO = """
name = "t"
[[functions]]
name = "api"
handler = "app.handler"
database = "none"
[[routes]]
method = "GET"
path = "/items/{id}"
function = "api"
weight = 3
params = { id = { min = 5, max = 9 } }
[[routes]]
method = "post"
path = "/orders/{kind}/{proxy+}"
function = "api"
params = { kind = ["a b", 7], proxy = ["x/y z"] }
body = { hello = "world", n = [1, 2] }
headers = { X-Test = "yes" }
[[routes]]
method = "ANY"
path = "/plain/{free}"
function = "api"
weight = 0
"""


@pytest.fixture
def routes(tmp_path: Path) -> tuple[RouteLoad, ...]:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return decode(encode(load_scenario(path).routes))


def test_route_load_survives_the_trip_through_json(routes: tuple[RouteLoad, ...]) -> None:
    items, orders, plain = routes
    assert (items.method, items.path, items.weight) == ("GET", "/items/{id}", 3)
    assert items.params == {"id": (5, 9)}
    assert items.ranges == {"id"}
    assert not items.has_body
    assert items.headers == {}
    assert orders.method == "POST"
    assert orders.weight == 1
    assert orders.params == {"kind": ("a b", "7"), "proxy": ("x/y z",)}
    assert orders.has_body
    assert orders.body == {"hello": "world", "n": [1, 2]}
    assert orders.headers == {"X-Test": "yes"}
    assert plain.weight == 0
    assert plain.request_method == "GET"


def test_route_load_fills_paths_from_params(routes: tuple[RouteLoad, ...]) -> None:
    items, orders, plain = routes
    rng = random.Random(7)
    ids = Counter(items.url(rng) for _ in range(2000))
    assert set(ids) == {f"/items/{n}" for n in range(5, 10)}  # both ends included
    urls = {orders.url(rng) for _ in range(200)}
    # one segment stays one segment (quoted); the greedy parameter keeps its slashes
    assert urls == {"/orders/a%20b/x/y%20z", "/orders/7/x/y%20z"}
    free = {int(plain.url(rng).rsplit("/", 1)[1]) for _ in range(500)}
    assert min(free) >= DEFAULT_RANGE[0]
    assert max(free) <= DEFAULT_RANGE[1]


def test_route_load_rounds_keep_the_weights_exactly() -> None:
    rng = random.Random(1)
    # weights divided by their gcd: a round of 6:2:0 has three, one and none
    assert Counter(round_of([6, 2, 0], rng)) == {0: 3, 1: 1}
    rounds = Rounds([3, 1], rng)
    picks = Counter(rounds.next() for _ in range(4 * 250))
    assert picks == {0: 750, 1: 250}
    # ... and a round's order is shuffled, so users do not march in step
    orders = {tuple(round_of([3, 1], rng)) for _ in range(50)}
    assert len(orders) == 4


def test_route_load_refuses_routes_that_send_nothing() -> None:
    with pytest.raises(ValueError, match="no route with a weight above 0"):
        decode('[{"method": "GET", "path": "/x", "weight": 0}]')
    with pytest.raises(ValueError, match="JSON list"):
        decode('{"method": "GET"}')
