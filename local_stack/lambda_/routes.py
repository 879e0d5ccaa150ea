"""API Gateway routes: path templates matched the way API Gateway picks a route.

A route is a method (or ``ANY``) plus a path template such as ``/items/{id}`` or
``/files/{proxy+}``. When several routes match a request, API Gateway picks the
most specific one: literal segments beat ``{name}`` variables, which beat a
greedy ``{proxy+}``; for the same path a named method beats ``ANY``. A request no
route matches gets 404 ``{"message":"Not Found"}`` from the front.

The table is built once when the emulator starts and consulted on every request,
so matching is cheap: templates without variables are looked up in a dict, the
rest are tried in specificity order (already sorted) and the first hit wins.

>>> table = RouteTable([SimpleRoute("GET", "/items/{id}", "api")])
>>> m = table.match("GET", "/items/42")
>>> (m.route.function, m.path_parameters)
('api', {'id': '42'})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from connstorm import route_template
from connstorm.route_template import ANY, PathTemplate, RouteTemplateError, parse_template

__all__ = ["ANY", "CompiledRoute", "RouteMatch", "RouteSpec", "RouteTable", "RouteTemplateError",
           "SimpleRoute", "compile_route", "integration_timeout_s", "route_key"]


class RouteSpec(Protocol):
    """What the front needs of a route.

    Both :class:`connstorm.scenario.RouteConfig` and the core's own route spec
    satisfy it; ``integration_timeout_s`` of ``None`` means API Gateway's default.
    """

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def function(self) -> str: ...

    @property
    def payload(self) -> str: ...

    @property
    def integration_timeout_s(self) -> float | None: ...


@dataclass(frozen=True)
class SimpleRoute:
    """A plain :class:`RouteSpec`, for tests, benchmarks and doctests."""

    method: str
    path: str
    function: str
    payload: str = "2.0"
    integration_timeout_s: float | None = None


def integration_timeout_s(route: RouteSpec) -> float:
    """API Gateway's integration timeout: 29 s for REST (1.0), 30 s for HTTP APIs (2.0)."""
    return route_template.integration_timeout_s(route.payload, route.integration_timeout_s)


def route_key(route: RouteSpec) -> str:
    """The HTTP API ``routeKey`` of a route: ``"GET /items/{id}"``."""
    return f"{route.method.upper()} {route.path}"


@dataclass(frozen=True)
class CompiledRoute:
    """A route with its template parsed once (:mod:`connstorm.route_template`), ready to match."""

    route: RouteSpec
    method: str
    template: PathTemplate
    timeout_s: float
    route_key: str

    @property
    def segments(self) -> tuple[str, ...]:
        """The template's segments, split on '/'."""
        return self.template.segments

    @property
    def names(self) -> tuple[str | None, ...]:
        """For each segment: the variable's name, or None for a literal."""
        return self.template.names

    @property
    def greedy(self) -> bool:
        """Whether the last segment is a greedy ``{name+}``."""
        return self.template.greedy

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """Path parameters when ``parts`` (the request path split on '/') match, else None."""
        return self.template.match(parts)


@dataclass(frozen=True)
class RouteMatch:
    """The route a request matched and the values of its path variables."""

    route: RouteSpec
    path_parameters: Mapping[str, str]
    timeout_s: float
    route_key: str


def compile_route(route: RouteSpec) -> CompiledRoute:
    """Parse a route's template; raises :class:`RouteTemplateError` for a bad one."""
    return CompiledRoute(route=route, method=route.method.upper(),
                         template=parse_template(route.method, route.path),
                         timeout_s=integration_timeout_s(route), route_key=route_key(route))


def _specificity(c: CompiledRoute) -> tuple[tuple[int, ...], int, int]:
    # Compare segment by segment (a literal first segment beats a variable one
    # whatever follows), then longer templates, then a named method over ANY.
    return (c.template.rank, len(c.segments), 0 if c.method == ANY else 1)


class RouteTable:
    """All routes of the front, matched the way API Gateway does.

    >>> t = RouteTable([SimpleRoute("ANY", "/{proxy+}", "a"), SimpleRoute("GET", "/x", "b")])
    >>> t.match("GET", "/x").route.function, t.match("POST", "/x").route.function
    ('b', 'a')
    >>> t.match("GET", "/") is None
    True
    """

    def __init__(self, routes: Sequence[RouteSpec]) -> None:
        compiled = [compile_route(r) for r in routes]
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for c in compiled:
            # Two templates that differ only in variable names are the same route.
            shape = tuple("{}" if n is not None else s for s, n in zip(c.segments, c.names,
                                                                         strict=True))
            key = (c.method, shape + (("+",) if c.greedy else ()))
            if key in seen:
                raise RouteTemplateError(f"route {c.method} {c.route.path}: defined twice")
            seen.add(key)
        # Routes without variables: an exact dict lookup, the common case under load.
        self._exact: dict[tuple[str, str], CompiledRoute] = {}
        self._templated: list[CompiledRoute] = []
        for c in compiled:
            if all(n is None for n in c.names):
                self._exact[(c.method, "/" + "/".join(c.segments))] = c
            else:
                self._templated.append(c)
        self._templated.sort(key=_specificity, reverse=True)
        self._routes = tuple(compiled)

    @property
    def routes(self) -> tuple[CompiledRoute, ...]:
        """Every route, in the order given."""
        return self._routes

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The most specific route for ``method`` and the decoded ``path``, or None."""
        method = method.upper()
        exact = self._exact.get((method, path)) or self._exact.get((ANY, path))
        if exact is not None:
            return RouteMatch(exact.route, {}, exact.timeout_s, exact.route_key)
        parts = path[1:].split("/") if path.startswith("/") else path.split("/")
        for c in self._templated:
            if c.method != method and c.method != ANY:
                continue
            params = c.match(parts)
            if params is not None:
                return RouteMatch(c.route, params, c.timeout_s, c.route_key)
        return None
