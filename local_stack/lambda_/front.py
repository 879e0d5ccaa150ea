"""The API Gateway front: HTTP requests in, Lambda invocations, HTTP responses out.

Routes come from the scenario's ``[[routes]]``; each request that matches one is
turned into a payload 1.0 or 2.0 event (:mod:`.apigw_events`), handed to the
core through the :class:`~connstorm.local_stack.lambda_.invocation.Invoker` seam, and the
function's answer is mapped back (:mod:`.apigw_responses`). Failures are
answered the way API Gateway answers them, because that is what a load test
against the real thing sees:

=========================================  ==========================================
what happened                              client gets
=========================================  ==========================================
no route for method and path               404 ``{"message":"Not Found"}``
body (or the event built from it) > 6 MB   413 ``{"message":"Request Entity Too Large"}``
invoke throttled or rejected (a VPC         500 ``Internal server error``
function still ``Pending``)
VPC subnets out of addresses               502 ``Internal server error``
function error, timeout, crash, init       502 ``Internal server error``
error, malformed proxy response
integration timeout, REST (29 s)           504 ``{"message": "Endpoint request timed out"}``
integration timeout, HTTP API (30 s)       503 ``{"message":"Service Unavailable"}``
=========================================  ==========================================

REST APIs say ``{"message": "Internal server error"}``, HTTP APIs
``{"message":"Internal Server Error"}``, as the real services do.

Nothing a client sends can take the server down: every failure while handling a
request becomes an answer (500 at worst) and a log line.

The emulator's server hands it every request that is not its own
(``/_connstorm/*``, the Invoke API): :meth:`Front.handle` answers at once, or
with a :class:`~connstorm.local_stack.lambda_.http_server.Later` while the invocation runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connstorm import error_kinds
from connstorm.local_stack.lambda_ import apigw_events, apigw_responses, vpc
from connstorm.local_stack.lambda_.apigw_events import ApiContext, HttpRequest
from connstorm.local_stack.lambda_.http_server import Later, Request, Response
from connstorm.local_stack.lambda_.ids import short_request_id, uuid4
from connstorm.local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    Invoker,
    UnknownFunctionError,
    start_invocation,
)
from connstorm.local_stack.lambda_.routes import RouteMatch, RouteSpec, RouteTable

log = logging.getLogger(__name__)

#: Lambda's synchronous payload limit, which is what bounds an API Gateway request.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Methods API Gateway knows; anything else matches no route.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

_JSON = "application/json"


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    error_type: str | None = None


_NOT_FOUND = _Answer(404, b'{"message":"Not Found"}', "NotFoundException")
_TOO_LARGE = _Answer(413, b'{"message":"Request Entity Too Large"}', "RequestTooLongException")
_REST_500 = _Answer(500, b'{"message": "Internal server error"}', "InternalServerErrorException")
_REST_502 = _Answer(502, b'{"message": "Internal server error"}', "InternalServerErrorException")
_REST_504 = _Answer(504, b'{"message": "Endpoint request timed out"}',
                    "IntegrationTimeoutException")
_HTTP_500 = _Answer(500, b'{"message":"Internal Server Error"}')
_HTTP_502 = _Answer(502, b'{"message":"Internal Server Error"}')
_HTTP_503 = _Answer(503, b'{"message":"Service Unavailable"}')

#: Diagnostic header on the front's own error answers: the classified error kind.
ERROR_KIND_HEADER = "X-Connstorm-Error-Kind"


class Front:
    """Routes, event building and response mapping for one emulator's API.

    One instance serves every route: the server passes it each request that is
    not its own.
    """

    def __init__(self, invoker: Invoker, routes: Sequence[RouteSpec],
                 api: ApiContext | None = None) -> None:
        if api is None:
            # Same region as the emulator's own ARNs when the invoker knows it.
            region = getattr(getattr(invoker, "account", None), "region", None)
            api = ApiContext(region=str(region)) if region else apigw_events.DEFAULT_API
        self.invoker = invoker
        self.table = RouteTable(routes)
        self.api = api

    def handle(self, request: Request) -> Response | Later:
        """Answer one request; never raises (a failure becomes a 500 and a log line)."""
        try:
            return self._handle(request)
        except Exception:
            log.exception("front: %s %s failed", request.method, request.path)
            return _answer(_REST_500, request_id=None, rest=True)

    def _handle(self, request: Request) -> Response | Later:
        method = request.method
        match = self.table.match(method, request.path) if method in METHODS else None
        if match is None:
            return _answer(_NOT_FOUND, request_id=None, rest=False)
        rest = match.route.payload == "1.0"
        if request.oversize:
            return _answer(_TOO_LARGE, request_id=None, rest=rest)
        http_request = HttpRequest(
            method=method, path=request.path, query_string=request.query_string,
            headers=request.headers, body=request.body, source_ip=request.remote,
            protocol=f"HTTP/{request.version}", port=request.local_port)
        if rest:
            request_id = uuid4()
            event = apigw_events.rest_event(http_request, match.route.path,
                                            match.path_parameters, api=self.api,
                                            request_id=request_id)
        else:
            request_id = short_request_id()
            event = apigw_events.http_event(http_request, match.route_key,
                                            match.path_parameters, api=self.api,
                                            request_id=request_id)
        payload = dumps_event(event)
        if len(payload) > MAX_PAYLOAD_BYTES:
            return _answer(_TOO_LARGE, request_id=request_id, rest=rest)
        try:
            future = start_invocation(self.invoker, InvocationRequest(
                function=match.route.function, payload=payload,
                wait_timeout_s=match.timeout_s))
        except UnknownFunctionError:
            return self._unknown_function(match, rest, request_id)
        return Later(future, lambda done: self._answer_result(done, match, rest, request_id))

    def _answer_result(self, done: asyncio.Future[InvocationResult], match: RouteMatch,
                       rest: bool, request_id: str) -> Response:
        try:
            result = done.result()
        except UnknownFunctionError:
            return self._unknown_function(match, rest, request_id)
        except Exception:
            # The invoke was rejected by a failure of the service: API Gateway says 500.
            log.exception("front: invoking %s failed", match.route.function)
            return _answer(_REST_500 if rest else _HTTP_500, request_id=request_id, rest=rest)
        return map_result(result, rest=rest, request_id=request_id)

    @staticmethod
    def _unknown_function(match: RouteMatch, rest: bool, request_id: str) -> Response:
        log.error("front: route %s names unknown function %r", match.route_key,
                  match.route.function)
        return _answer(_REST_500 if rest else _HTTP_500, request_id=request_id, rest=rest)


def map_result(result: InvocationResult, *, rest: bool, request_id: str) -> Response:
    """The client's answer for an invocation's outcome (see the module's table)."""
    if result.waited_out:
        return _answer(_REST_504 if rest else _HTTP_503, request_id=request_id, rest=rest,
                       kind=error_kinds.GATEWAY_TIMEOUT)
    if result.outcome == "throttled":
        return _answer(_REST_500 if rest else _HTTP_500, request_id=request_id, rest=rest,
                       kind=error_kinds.LAMBDA_THROTTLED)
    if result.outcome == "rejected":
        if result.error_type == vpc.PENDING:  # the invoke was rejected: 500
            return _answer(_REST_500 if rest else _HTTP_500, request_id=request_id,
                           rest=rest, kind=error_kinds.LAMBDA_PENDING)
        return _answer(_REST_502 if rest else _HTTP_502, request_id=request_id, rest=rest,
                       kind=error_kinds.LAMBDA_VPC_LIMIT)
    if result.outcome != "success":
        return _answer(_REST_502 if rest else _HTTP_502, request_id=request_id, rest=rest,
                       kind=_function_error_kind(result))
    try:
        mapped = apigw_responses.parse_response(result.payload, "1.0" if rest else "2.0")
    except apigw_responses.MalformedResponseError as exc:
        _note_malformed(result, str(exc))
        return _answer(_REST_502 if rest else _HTTP_502, request_id=request_id, rest=rest,
                       kind=error_kinds.HTTP_ERROR)
    id_header = _id_header(rest)
    lowered = id_header.lower()
    headers = [h for h in mapped.headers if h[0].lower() != lowered]
    headers.append((id_header, request_id))
    return Response(mapped.status, mapped.body, headers)


_malformed_seen: set[str] = set()


def _note_malformed(result: InvocationResult, why: str) -> None:
    # Under load a broken handler answers thousands of times: say each kind of
    # malformation once at WARNING, the repeats at DEBUG.
    key = why.split(":", 1)[0]
    level = logging.DEBUG if key in _malformed_seen else logging.WARNING
    _malformed_seen.add(key)
    log.log(level, "front: Malformed Lambda proxy response (request %s, environment %s): %s "
            "-> 502", result.request_id, result.env_id, why)


def _id_header(rest: bool) -> str:
    return "x-amzn-RequestId" if rest else "apigw-requestid"


def _function_error_kind(result: InvocationResult) -> str:
    """The kind behind a 502: what the function's error message says (a handler that
    could not connect at Init says ``too_many_connections``), else its errorType, else
    what befell the environment."""
    for text in (result.error_message, result.error_type):
        kind = error_kinds.classify_message(text)
        if kind != error_kinds.OTHER:
            return kind
    return {"timeout": error_kinds.LAMBDA_TIMEOUT, "crash": error_kinds.LAMBDA_CRASH,
            "init_error": error_kinds.LAMBDA_INIT_ERROR}.get(result.outcome, error_kinds.OTHER)


def _answer(answer: _Answer, *, request_id: str | None, rest: bool,
            kind: str | None = None) -> Response:
    headers = [("Content-Type", _JSON)]
    if rest and answer.error_type is not None:
        headers.append(("x-amzn-ErrorType", answer.error_type))
    if kind is not None:
        # Not an AWS header: API Gateway's bodies hide why the integration failed,
        # and a load test needs the kind per request (docs/emulator-http.md).
        headers.append((ERROR_KIND_HEADER, kind))
    if request_id is not None:
        headers.append((_id_header(rest), request_id))
    return Response(answer.status, answer.body, headers)


def dumps_event(event: dict[str, Any]) -> bytes:
    """The event as JSON bytes: orjson (fast), or the standard library for text that
    orjson refuses (lone surrogates from undecodable header bytes)."""
    try:
        return orjson.dumps(event)
    except orjson.JSONEncodeError:
        return json.dumps(event, separators=(",", ":")).encode()
