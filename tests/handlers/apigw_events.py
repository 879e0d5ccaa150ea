"""API Gateway proxy events, payload 1.0 (REST) and 2.0 (HTTP API), as AWS sends them."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

TEMPLATES = ("/health", "/items/{id}", "/items", "/orders", "/orders/{id}")


def _template(path: str) -> tuple[str | None, dict[str, str] | None]:
    for template in TEMPLATES:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        m = re.match(regex, path)
        if m:
            return template, (m.groupdict() or None)
    return None, None


def v1(method: str, path: str, query: dict[str, str] | None = None,
       body: str | None = None, b64: bool = False) -> dict[str, Any]:
    """A REST API (payload 1.0) event."""
    template, params = _template(path)
    return {
        "resource": template or path, "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": params, "stageVariables": None,
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": "prod",
                           "httpMethod": method, "resourcePath": template or path},
        "body": base64.b64encode(body.encode()).decode() if (b64 and body) else body,
        "isBase64Encoded": b64,
    }


def v2(method: str, path: str, query: dict[str, str] | None = None,
       body: str | None = None, b64: bool = False) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event."""
    template, params = _template(path)
    raw_query = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": f"{method} {template or path}", "rawPath": path,
        "rawQueryString": raw_query, "headers": {"content-type": "application/json"},
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": "$default",
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "pytest"}},
        "isBase64Encoded": b64,
    }
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode() if b64 else body
    return event
