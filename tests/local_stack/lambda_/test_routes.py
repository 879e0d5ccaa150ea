"""Route matching: API Gateway's choice of the most specific route."""

from __future__ import annotations

import pytest

from connstorm.local_stack.lambda_.routes import (
    RouteTable,
    RouteTemplateError,
    SimpleRoute,
    integration_timeout_s,
    route_key,
)
from connstorm.scenario import RouteConfig


def _table(*specs: tuple[str, str]) -> RouteTable:
    return RouteTable([SimpleRoute(m, p, f"{m} {p}") for m, p in specs])


def _picked(table: RouteTable, method: str, path: str) -> str | None:
    m = table.match(method, path)
    return None if m is None else m.route.function


def test_routes_exact_path_matches_and_extracts_nothing() -> None:
    m = _table(("GET", "/health")).match("GET", "/health")
    assert m is not None
    assert m.route.path == "/health"
    assert dict(m.path_parameters) == {}
    assert m.route_key == "GET /health"


def test_routes_variable_segment_extracts_value() -> None:
    m = _table(("GET", "/orders/{id}/lines/{line}")).match("GET", "/orders/7/lines/x-1")
    assert m is not None
    assert dict(m.path_parameters) == {"id": "7", "line": "x-1"}


def test_routes_variable_does_not_span_segments_or_match_empty() -> None:
    t = _table(("GET", "/items/{id}"))
    assert t.match("GET", "/items/1/2") is None
    assert t.match("GET", "/items/") is None
    assert t.match("GET", "/items") is None


def test_routes_greedy_proxy_takes_the_rest_of_the_path() -> None:
    t = _table(("GET", "/files/{proxy+}"))
    m = t.match("GET", "/files/a/b/c.txt")
    assert m is not None
    assert dict(m.path_parameters) == {"proxy": "a/b/c.txt"}
    assert t.match("GET", "/files") is None
    assert t.match("GET", "/files/") is None


def test_routes_root_greedy_matches_everything_but_root() -> None:
    t = _table(("ANY", "/{proxy+}"))
    assert _picked(t, "DELETE", "/x/y") == "ANY /{proxy+}"
    assert t.match("GET", "/") is None


def test_routes_root_path_matches_only_root() -> None:
    t = _table(("GET", "/"))
    assert _picked(t, "GET", "/") == "GET /"
    assert t.match("GET", "/x") is None


def test_routes_most_specific_wins_whatever_the_order() -> None:
    t = _table(("ANY", "/{proxy+}"), ("GET", "/items/{id}"), ("GET", "/items/special"),
               ("GET", "/{a}/{b}"))
    assert _picked(t, "GET", "/items/special") == "GET /items/special"
    assert _picked(t, "GET", "/items/3") == "GET /items/{id}"
    assert _picked(t, "GET", "/other/3") == "GET /{a}/{b}"
    assert _picked(t, "GET", "/a/b/c") == "ANY /{proxy+}"


def test_routes_literal_prefix_beats_variable_prefix() -> None:
    t = _table(("GET", "/{kind}/list"), ("GET", "/items/{id}"))
    assert _picked(t, "GET", "/items/list") == "GET /items/{id}"


def test_routes_named_method_beats_any_for_the_same_path() -> None:
    t = _table(("ANY", "/items/{id}"), ("POST", "/items/{id}"), ("ANY", "/x"), ("GET", "/x"))
    assert _picked(t, "POST", "/items/1") == "POST /items/{id}"
    assert _picked(t, "PUT", "/items/1") == "ANY /items/{id}"
    assert _picked(t, "GET", "/x") == "GET /x"
    assert _picked(t, "HEAD", "/x") == "ANY /x"


def test_routes_method_must_match_unless_any() -> None:
    t = _table(("GET", "/items"))
    assert t.match("POST", "/items") is None
    assert _picked(t, "get", "/items") == "GET /items"


def test_routes_unknown_path_is_none() -> None:
    assert _table(("GET", "/items")).match("GET", "/nope") is None


@pytest.mark.parametrize(("path", "why"), [
    ("items", "must start with '/'"),
    ("/items/", "must not end with '/'"),
    ("/a//b", "empty path segment"),
    ("/a/{x}y", "whole segment"),
    ("/{p+}/x", "must be the last segment"),
    ("/{a}/{a}", "used twice"),
])
def test_routes_bad_template_is_rejected_with_reason(path: str, why: str) -> None:
    with pytest.raises(RouteTemplateError, match=why):
        RouteTable([SimpleRoute("GET", path, "f")])


def test_routes_same_shape_twice_is_rejected() -> None:
    with pytest.raises(RouteTemplateError, match="defined twice"):
        RouteTable([SimpleRoute("GET", "/a/{x}", "f"), SimpleRoute("GET", "/a/{y}", "g")])


def test_routes_accept_scenario_route_config_and_default_timeouts() -> None:
    rest = RouteConfig(method="GET", path="/a/{id}", function="api", payload="1.0")
    http = RouteConfig(method="GET", path="/b", function="api", payload="2.0")
    custom = RouteConfig(method="GET", path="/c", function="api", integration_timeout_s=2.5)
    t = RouteTable([rest, http, custom])
    assert t.match("GET", "/a/1").timeout_s == 29.0  # type: ignore[union-attr]
    assert t.match("GET", "/b").timeout_s == 30.0  # type: ignore[union-attr]
    assert integration_timeout_s(custom) == 2.5
    assert route_key(rest) == "GET /a/{id}"
