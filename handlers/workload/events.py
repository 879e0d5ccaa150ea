"""API Gateway proxy events in, proxy responses out, for payload 1.0 and 2.0.

REST APIs send payload 1.0 (``httpMethod``, ``path``, ``resource``); HTTP APIs
send 2.0 (``version: "2.0"``, ``requestContext.http.method``, ``rawPath``,
``routeKey``). Both carry ``pathParameters``, ``queryStringParameters`` (2.0
joins repeated values with commas), ``body`` and ``isBase64Encoded``. The
handlers see only :class:`Request`, so routing is written once.

A response uses only the keys both versions accept (``statusCode``, ``headers``,
``body``, ``isBase64Encoded``): a REST API answers 502 to any unknown key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class BadEventError(ValueError):
    """The event is not an API Gateway proxy event this code understands."""


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request the routes use, whatever the payload version."""

    method: str
    path: str
    version: str = "1.0"
    #: The route template API Gateway matched (``/items/{id}``), when it says so.
    template: str | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Response:
    """A JSON response; :meth:`to_proxy` turns it into what API Gateway expects."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_proxy(self) -> dict[str, Any]:
        """The proxy-integration dictionary, valid for payload 1.0 and 2.0."""
        headers = {"Content-Type": "application/json", **self.headers}
        return {"statusCode": self.status, "headers": headers,
                "body": json.dumps(self.body, separators=(",", ":"), default=str),
                "isBase64Encoded": False}


def error(status: int, message: str, kind: str | None = None) -> Response:
    """``{"error": message, "kind"?: kind}``: the one error body every route uses."""
    body: dict[str, Any] = {"error": message}
    if kind:
        body["kind"] = kind
    return Response(status, body)


def parse_event(event: Any) -> Request:
    """Read a proxy event of either payload version; raises :class:`BadEventError`."""
    if not isinstance(event, Mapping):
        raise BadEventError("expected an API Gateway proxy event (an object), "
                            f"got {type(event).__name__}")
    context = _mapping(event.get("requestContext"))
    request_id = context.get("requestId")
    if event.get("version") == "2.0":
        http = _mapping(context.get("http"))
        method = http.get("method")
        path = event.get("rawPath") or http.get("path")
        route_key = event.get("routeKey")
        template = route_key.partition(" ")[2] if isinstance(route_key, str) else ""
    else:
        method = event.get("httpMethod")
        path = event.get("path")
        template = event.get("resource") or ""
    if not isinstance(method, str) or not isinstance(path, str):
        raise BadEventError("not an API Gateway proxy event: no HTTP method or path")
    return Request(
        method=method.upper(),
        path=path,
        version="2.0" if event.get("version") == "2.0" else "1.0",
        template=template if isinstance(template, str) and template.startswith("/") else None,
        path_params=_str_map(event.get("pathParameters")),
        query=_str_map(event.get("queryStringParameters")),
        headers={k.lower(): v for k, v in _str_map(event.get("headers")).items()},
        body=_body(event),
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _body(event: Mapping[str, Any]) -> str | None:
    body = event.get("body")
    if body is None:
        return None
    if not isinstance(body, str):
        raise BadEventError("body must be a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # ValueError: non-ASCII text, bad UTF-8
            raise BadEventError("body is marked base64 but does not decode to UTF-8") from None
    return body
