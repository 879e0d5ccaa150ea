"""``[[routes]]``: the API Gateway routes of the local front, each to one function.

A route also says how Locust loads it when the scenario's routes are not the
workload's own (see ``docs/own-functions.md``): ``weight`` (its share of the
requests), ``params`` (values for its path parameters), ``body`` and
``headers``. The built-in scenarios leave them unset and keep the workload's
realistic user.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from connstorm.route_template import RouteTemplateError, integration_timeout_s, parse_template
from connstorm.sections.base import SECTION, Float, Int, KeyProblem, Str, show

PAYLOAD_VERSIONS = ("1.0", "2.0")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")


@dataclass(frozen=True, config=SECTION)
class ParamRange:
    """An integer range for a path parameter, both ends included: ``{ min = 1, max = 1000 }``."""

    min: Int
    """Smallest value."""
    max: Int
    """Largest value (included)."""

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.min > self.max:
            raise KeyProblem("max", f"must not be less than min ({self.min}), got {self.max}")
        return self


#: A path parameter's values: a list to pick from, or an integer range.
ParamValues = Annotated[tuple[Str | Int, ...], Field(min_length=1)] | ParamRange


@dataclass(frozen=True, config=SECTION)
class RouteConfig:
    """One ``[[routes]]`` entry: an API Gateway route to a function, and how Locust loads it."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"]
    """HTTP method (any case), or ANY."""
    path: Str
    """Path template as API Gateway writes it: /items/{id}, /files/{proxy+}."""
    function: Str
    """Name of the [[functions]] entry the route invokes."""
    payload: Literal["1.0", "2.0"] = "2.0"
    """Event format: "1.0" (REST API) or "2.0" (HTTP API)."""
    integration_timeout_s: Float | None = Field(default=None, ge=0.05, le=30)
    """API Gateway's integration timeout; unset means 29 s (REST) or 30 s (HTTP API)."""
    weight: Int | None = Field(default=None, ge=0, le=10_000)
    """Share of the generated load: a route of weight 3 gets three requests for one of weight 1 (unset: 1; 0: never loaded)."""
    params: Mapping[str, ParamValues] = dataclasses.field(default_factory=dict)
    """Values for the path parameters: a list to pick from (id = [1, 2, 3]) or an integer range (id = { min = 1, max = 1000 }); unset ones take 1-1000."""
    body: Any = None
    """JSON body sent with each request (a table, an array, a string or a number)."""
    headers: Mapping[str, Str] = dataclasses.field(default_factory=dict)
    """Request headers sent with each request (names and string values)."""

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("body", mode="before")
    @classmethod
    def _json_body(cls, value: Any) -> Any:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError("must be JSON: tables, arrays, strings, numbers and booleans "
                             "(no dates, times or nan)") from None
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _param_values(cls, value: Any) -> Any:
        # Worded here: pydantic's own messages for a failed union name its internals.
        if not isinstance(value, Mapping):
            return value
        for name, values in value.items():
            _check_param(str(name), values)
        return value

    @model_validator(mode="after")
    def _template(self) -> RouteConfig:
        if not self.path.startswith("/"):
            raise KeyProblem("path", f"must start with '/', got {self.path!r}")
        try:
            compiled = parse_template(self.method, self.path)
        except RouteTemplateError as exc:
            raise KeyProblem("path", str(exc)) from None
        names = {name for name in compiled.names if name}
        for name in self.params:
            if name not in names:
                known = ", ".join(sorted(names)) or "none"
                raise KeyProblem(("params", name),
                                 f"is not a parameter of {self.path} (its parameters: {known})")
        return self

    @property
    def effective_timeout_s(self) -> float:
        """API Gateway's integration timeout: 29 s for REST (1.0), 30 s for HTTP APIs."""
        return integration_timeout_s(self.payload, self.integration_timeout_s)

    @property
    def load_weight(self) -> int:
        """``weight``, 1 when unset."""
        return 1 if self.weight is None else self.weight

    @property
    def shapes_load(self) -> bool:
        """Whether the entry says anything about the load (weight, params, body, headers)."""
        return (self.weight is not None or bool(self.params) or self.body is not None
                or bool(self.headers))


_PARAM_FORMS = "a list of values (id = [1, 2]) or an integer range (id = { min = 1, max = 9 })"


def _check_param(name: str, values: Any) -> None:
    """Raise a :class:`KeyProblem` unless ``values`` is a list of values or a range."""
    where: tuple[str, ...] = (name,)  # the field validator's location names params
    if isinstance(values, list | tuple):
        if not values:
            raise KeyProblem(where, f"is empty; give {_PARAM_FORMS}")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise KeyProblem(where, f"values must be strings or integers, got {show(value)}")
        return
    if isinstance(values, Mapping):
        if set(values) != {"min", "max"}:
            raise KeyProblem(where, f"a range takes exactly min and max, got "
                                    f"{', '.join(map(str, values)) or 'nothing'}")
        for key in ("min", "max"):
            if isinstance(values[key], bool) or not isinstance(values[key], int):
                raise KeyProblem((*where, key), f"expected an integer, got {show(values[key])}")
        if values["min"] > values["max"]:
            raise KeyProblem((*where, "max"), f"must not be less than min ({values['min']}), "
                                              f"got {values['max']}")
        return
    raise KeyProblem(where, f"expected {_PARAM_FORMS}, got {show(values)}")
