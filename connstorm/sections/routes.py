"""``[[routes]]``: the API Gateway routes of the local front, each to one function."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Float, KeyProblem, Str

PAYLOAD_VERSIONS = ("1.0", "2.0")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")


@dataclass(frozen=True, config=SECTION)
class RouteConfig:
    """One ``[[routes]]`` entry: an API Gateway route to a function."""

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

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _template(self) -> RouteConfig:
        from connstorm.local_stack.lambda_.routes import RouteTemplateError, compile_route

        if not self.path.startswith("/"):
            raise KeyProblem("path", f"must start with '/', got {self.path!r}")
        try:
            compile_route(self)
        except RouteTemplateError as exc:
            raise KeyProblem("path", str(exc)) from None
        return self

    @property
    def effective_timeout_s(self) -> float:
        """API Gateway's integration timeout: 29 s for REST (1.0), 30 s for HTTP APIs."""
        if self.integration_timeout_s is not None:
            return self.integration_timeout_s
        return 29.0 if self.payload == "1.0" else 30.0
