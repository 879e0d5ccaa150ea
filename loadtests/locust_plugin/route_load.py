"""The load a scenario's ``[[routes]]`` ask for: which path to request next, and how.

Pure (no Locust import), so the orchestrator can encode the routes and tests
can check the mix without running Locust. The routes travel to Locust as JSON
in the ``CONNSTORM_ROUTES`` environment variable: the user classes are built
when Locust imports ``routes_locustfile.py``, before it parses any option, and
the environment is what ``--processes`` children and ``connstorm run --worker``
inherit as well.

Weights are kept exactly, not only on average: each user goes through its
routes in *rounds*, every round calls each route ``weight`` times (weights
divided by their greatest common divisor) in a shuffled order, so over a run
the mix is the weights' to within one round per user, and users do not march
in step. A path parameter takes a value drawn at random from its ``params``
entry (a list, or an integer range with both ends included); one the route
does not give takes an integer from :data:`DEFAULT_RANGE`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    # Not at run time: Locust's side needs only decode(), and the scenario model
    # (pydantic) would add about 0.1 s to every Locust start (issue 24).
    from connstorm.sections.routes import RouteConfig

ENV_ROUTES = "CONNSTORM_ROUTES"
#: Values of a path parameter the route gives none for (the workload seeds 1000 products).
DEFAULT_RANGE = (1, 1000)
#: Methods a route may name that are no HTTP method: ``ANY`` is loaded with GET.
_REQUEST_METHOD = {"ANY": "GET"}


@dataclass(frozen=True)
class RouteLoad:
    """One route as Locust loads it."""

    method: str
    path: str
    weight: int = 1
    #: Parameter -> values to pick from, or an inclusive ``(min, max)`` range.
    params: Mapping[str, tuple[str, ...] | tuple[int, int]] = field(default_factory=dict)
    ranges: frozenset[str] = frozenset()
    body: Any = None
    has_body: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def request_method(self) -> str:
        """The HTTP method sent (``ANY`` routes get GET)."""
        return _REQUEST_METHOD.get(self.method, self.method)

    @property
    def name(self) -> str:
        """The name Locust's statistics group the requests under: the path template."""
        return self.path

    def value(self, param: str, rng: random.Random) -> str:
        """One value of a path parameter."""
        if param in self.params:
            choice = self.params[param]
            if param in self.ranges:
                low, high = int(choice[0]), int(choice[1])
                return str(rng.randint(low, high))
            return str(rng.choice(choice))
        return str(rng.randint(*DEFAULT_RANGE))

    def url(self, rng: random.Random) -> str:
        """The path to request: the template with every ``{name}`` / ``{name+}`` filled."""
        out = []
        for segment in self.path.split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                name = segment[1:-1]
                greedy = name.endswith("+")
                name = name.rstrip("+")
                # A greedy parameter may span segments; any other value stays one segment.
                out.append(quote(self.value(name, rng), safe="/" if greedy else ""))
            else:
                out.append(segment)
        return "/".join(out)


def from_config(route: RouteConfig) -> RouteLoad:
    """A scenario route as Locust loads it."""
    from connstorm.sections.routes import ParamRange

    params: dict[str, tuple[str, ...] | tuple[int, int]] = {}
    ranges = set()
    for name, values in route.params.items():
        if isinstance(values, ParamRange):
            params[name] = (values.min, values.max)
            ranges.add(name)
        else:
            params[name] = tuple(str(v) for v in values)
    return RouteLoad(method=route.method, path=route.path, weight=route.load_weight,
                     params=params, ranges=frozenset(ranges), body=route.body,
                     has_body=route.body is not None, headers=dict(route.headers))


def encode(routes: Iterable[RouteConfig]) -> str:
    """The routes as ``CONNSTORM_ROUTES`` carries them (JSON)."""
    doc = []
    for route in map(from_config, routes):
        doc.append({"method": route.method, "path": route.path, "weight": route.weight,
                    "params": {k: list(v) for k, v in route.params.items()},
                    "ranges": sorted(route.ranges), "headers": dict(route.headers),
                    **({"body": route.body} if route.has_body else {})})
    return json.dumps(doc, separators=(",", ":"))


def decode(text: str) -> tuple[RouteLoad, ...]:
    """Routes from ``CONNSTORM_ROUTES``; ValueError when it is not what :func:`encode` writes."""
    doc = json.loads(text)
    if not isinstance(doc, list):
        raise ValueError(f"{ENV_ROUTES} must be a JSON list of routes")
    routes = []
    for entry in doc:
        ranges = frozenset(entry.get("ranges") or ())
        params: dict[str, tuple[str, ...] | tuple[int, int]] = {}
        for key, values in (entry.get("params") or {}).items():
            if key in ranges:
                params[str(key)] = (int(values[0]), int(values[1]))
            else:
                params[str(key)] = tuple(str(x) for x in values)
        routes.append(RouteLoad(
            method=str(entry["method"]).upper(), path=str(entry["path"]),
            weight=int(entry.get("weight", 1)), params=params, ranges=ranges,
            body=entry.get("body"), has_body="body" in entry,
            headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()}))
    if not any(route.weight > 0 for route in routes):
        raise ValueError(f"{ENV_ROUTES} has no route with a weight above 0")
    return tuple(routes)


def round_of(weights: Sequence[int], rng: random.Random) -> list[int]:
    """One round: each index ``weight / gcd`` times, shuffled (indices of weight 0 never)."""
    divisor = math.gcd(*(w for w in weights if w > 0)) or 1
    order = [index for index, weight in enumerate(weights) for _ in range(weight // divisor)]
    rng.shuffle(order)
    return order


class Rounds:
    """The routes one user calls next, round after round (see the module docstring)."""

    def __init__(self, weights: Sequence[int], rng: random.Random | None = None) -> None:
        self.weights = tuple(weights)
        self.rng = rng or random.Random()
        self._left: list[int] = []

    def next(self) -> int:
        """The index of the next route to call."""
        if not self._left:
            self._left = round_of(self.weights, self.rng)
        return self._left.pop()
