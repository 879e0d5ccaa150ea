"""Lambda events as API Gateway builds them from an HTTP request.

Two shapes, chosen per route by its ``payload``:

- ``"1.0"``: the REST API proxy event (stage ``prod``): ``headers`` holds the last
  value of each header and ``multiValueHeaders`` all of them, likewise for the
  query string; ``pathParameters`` and the query fields are ``null`` when empty.
- ``"2.0"``: the HTTP API event (stage ``$default``): header names lower-cased,
  repeated values comma-joined, the ``Cookie`` header moved to ``cookies[]``,
  empty fields left out.

A body that is not UTF-8 text is passed base64-encoded with
``isBase64Encoded: true``, as API Gateway does for binary media. The front is
reached on its own host and port, the way a custom domain is, so ``domainName``
is the request's ``Host`` and paths carry no stage prefix.

These are pure functions of an :class:`HttpRequest` and the matched route, so
they are tested directly and checked with aws-lambda-powertools' parsers.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import parse_qsl

from connstorm.local_stack.lambda_.ids import root_trace_id, short_request_id, uuid4

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Content types API Gateway treats as text; anything else (or bytes that are not
# UTF-8) is binary and travels base64-encoded.
_TEXT_SUBTYPES = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv",
                  "graphql")


@dataclass(frozen=True)
class ApiContext:
    """The API's identity as it appears in ``requestContext``.

    The defaults mimic a real deployment closely enough for code that reads
    them (``apiId`` is ten lower-case characters, the account twelve digits).
    """

    api_id: str = "connstorm0"
    account_id: str = "123456789012"
    region: str = "us-east-1"
    rest_stage: str = "prod"
    http_stage: str = "$default"


DEFAULT_API = ApiContext()


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the front received it, independent of the web framework.

    ``path`` is the URL-decoded path, ``query_string`` the raw query without the
    ``?``, ``headers`` every header line in order with its name as sent.
    """

    method: str
    path: str
    query_string: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    port: int = 80

    def header(self, name: str) -> str | None:
        """The last value of a header, matched case-insensitively, or None."""
        return self._last_values.get(name.lower())

    @cached_property
    def _last_values(self) -> dict[str, str]:
        # Built once per request: the event builders ask for several headers.
        return {k.lower(): v for k, v in self.headers}


def is_text(body: bytes, content_type: str | None) -> bool:
    """Whether API Gateway would pass this body as text rather than base64."""
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        major, _, minor = mime.partition("/")
        if major != "text" and not any(s in minor for s in _TEXT_SUBTYPES):
            return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """The event's ``body`` and ``isBase64Encoded`` for a request body."""
    if not body:
        return None, False
    if is_text(body, content_type):
        return body.decode("utf-8"), False
    return base64.b64encode(body).decode("ascii"), True


def request_time(epoch_s: float) -> str:
    """API Gateway's ``requestTime``: ``09/Apr/2015:12:34:56 +0000`` (locale-free)."""
    return _request_time(int(epoch_s))


@lru_cache(maxsize=4)
def _request_time(second: int) -> str:
    # Under load thousands of requests share a second: format it once.
    t = time.gmtime(second)
    return (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")


@lru_cache(maxsize=1024)
def resource_id(template: str) -> str:
    """A stable six-character REST ``resourceId`` for a path template."""
    return hashlib.sha1(template.encode(), usedforsecurity=False).hexdigest()[:6]


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    return parse_qsl(query_string, keep_blank_values=True) if query_string else []


def _domain(host: str | None, api: ApiContext) -> tuple[str, str]:
    host = host or f"{api.api_id}.execute-api.{api.region}.amazonaws.com"
    return host, host.split(".", 1)[0]


def _forwarding(req: HttpRequest, last: Mapping[str, str],
                epoch_s: float) -> tuple[tuple[str, str], ...]:
    """Headers API Gateway adds on the way to the integration (``last``: lower-cased
    header names to their last value)."""
    xff = last.get("x-forwarded-for")
    return (
        ("X-Forwarded-For", f"{xff}, {req.source_ip}" if xff else req.source_ip),
        ("X-Forwarded-Port", str(req.port)),
        ("X-Forwarded-Proto", "http"),
        ("X-Amzn-Trace-Id", last.get("x-amzn-trace-id") or root_trace_id(epoch_s)),
    )


_FORWARDING_NAMES = frozenset({"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto",
                               "x-amzn-trace-id"})


def rest_event(req: HttpRequest, resource: str, path_parameters: Mapping[str, str],
               *, api: ApiContext | None = None, request_id: str | None = None,
               now_s: float | None = None) -> dict[str, Any]:
    """The payload 1.0 (REST API) proxy event for a request matched to ``resource``."""
    api = api or DEFAULT_API
    epoch_s = time.time() if now_s is None else now_s
    request_id = request_id or uuid4()
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    last: dict[str, str] = {}
    for k, v in req.headers:
        name = k.lower()
        last[name] = v
        if name in _FORWARDING_NAMES:
            continue
        headers[k] = v
        values = multi_headers.get(k)
        if values is None:
            multi_headers[k] = [v]
        else:
            values.append(v)
    for k, v in _forwarding(req, last, epoch_s):
        headers[k] = v
        multi_headers[k] = [v]
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for k, v in _query_pairs(req.query_string):
        query[k] = v
        multi_query.setdefault(k, []).append(v)
    body, b64 = encode_body(req.body, last.get("content-type"))
    domain, prefix = _domain(last.get("host"), api)
    user_agent = last.get("user-agent")
    return {
        "resource": resource,
        "path": req.path,
        "httpMethod": req.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": api.account_id,
            "apiId": api.api_id,
            "resourceId": resource_id(resource),
            "resourcePath": resource,
            "httpMethod": req.method,
            "extendedRequestId": short_request_id(),
            "requestTime": request_time(epoch_s),
            "path": req.path,
            "protocol": req.protocol,
            "stage": api.rest_stage,
            "domainPrefix": prefix,
            "requestTimeEpoch": int(epoch_s * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": req.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": domain,
            "deploymentId": resource_id(api.api_id + api.rest_stage),
        },
        "body": body,
        "isBase64Encoded": b64,
    }


def http_event(req: HttpRequest, route_key: str, path_parameters: Mapping[str, str],
               *, api: ApiContext | None = None, request_id: str | None = None,
               now_s: float | None = None) -> dict[str, Any]:
    """The payload 2.0 (HTTP API) event for a request matched to ``route_key``."""
    api = api or DEFAULT_API
    epoch_s = time.time() if now_s is None else now_s
    # One pass over the header lines (this runs for every request of a load test).
    headers: dict[str, str] = {}
    last: dict[str, str] = {}
    cookies: list[str] = []
    for k, v in req.headers:
        name = k.lower()
        last[name] = v
        if name in _FORWARDING_NAMES:
            continue
        if name == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        headers[name] = f"{headers[name]},{v}" if name in headers else v
    for k, v in _forwarding(req, last, epoch_s):
        headers[k.lower()] = v
    query: dict[str, str] = {}
    for k, v in _query_pairs(req.query_string):
        query[k] = f"{query[k]},{v}" if k in query else v
    body, b64 = encode_body(req.body, last.get("content-type"))
    domain, prefix = _domain(last.get("host"), api)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.path,
        "rawQueryString": req.query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["requestContext"] = {
        "accountId": api.account_id,
        "apiId": api.api_id,
        "domainName": domain,
        "domainPrefix": prefix,
        "http": {
            "method": req.method,
            "path": req.path,
            "protocol": req.protocol,
            "sourceIp": req.source_ip,
            "userAgent": last.get("user-agent") or "",
        },
        "requestId": request_id or short_request_id(),
        "routeKey": route_key,
        "stage": api.http_stage,
        "time": request_time(epoch_s),
        "timeEpoch": int(epoch_s * 1000),
    }
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = b64
    return event
