"""Lambda's Invoke API, so that ``boto3.client("lambda", endpoint_url=...)`` works unchanged.

``POST /2015-03-31/functions/{FunctionName}/invocations`` in AWS's rest-json
protocol: the function by name, partial ARN (``123456789012:function:name``) or
full ARN, with an optional ``:qualifier`` or ``?Qualifier=``; only ``$LATEST``
exists here. Headers ``X-Amz-Invocation-Type`` (``RequestResponse`` 200,
``Event`` 202, ``DryRun`` 204), ``X-Amz-Log-Type: Tail`` (answered with
``X-Amz-Log-Result``, base64 of the last 4 KB of the log) and
``X-Amz-Client-Context`` (base64 JSON).

Errors carry their code in ``x-amzn-ErrorType`` and a JSON body, which is how
botocore turns them into ``client.exceptions.<Code>``:

- 404 ``ResourceNotFoundException``: no such function (or qualifier);
- 429 ``TooManyRequestsException`` with ``Reason`` (``e.response["Reason"]``);
- 400 ``InvalidRequestContentException``: the payload is not JSON;
- 400 ``InvalidParameterValueException``: a bad header or function name;
- 413 ``RequestTooLargeException``: over 6 MB (1 MB for ``Event``);
- 409 ``ResourceConflictException``: a VPC function still ``Pending``, and 502
  ``SubnetIPAddressLimitReachedException``: its subnets have no address left
  for a new environment (:mod:`.vpc` says where these come from).

>>> import boto3
>>> from botocore.config import Config
>>> client = boto3.client("lambda", endpoint_url="http://127.0.0.1:PORT",
...                       region_name="us-east-1", aws_access_key_id="x",
...                       aws_secret_access_key="x",
...                       config=Config(retries={"total_max_attempts": 1}))
>>> client.invoke(FunctionName="api", Payload=b"{}")["StatusCode"]  # doctest: +SKIP
200
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from connstorm.local_stack.lambda_.config import ACCOUNT_ID
from connstorm.local_stack.lambda_.http_server import Later, Request, Response
from connstorm.local_stack.lambda_.ids import uuid4
from connstorm.local_stack.lambda_.invocation import (
    InvocationRequest,
    InvocationResult,
    InvocationType,
    Invoker,
    UnknownFunctionError,
    start_invocation,
)
from connstorm.local_stack.lambda_.vpc import PENDING, rejection

log = logging.getLogger(__name__)

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
#: Lambda's payload limits: 6 MB synchronous, 1 MB asynchronous (``Event``).
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD_BYTES = 1024 * 1024
#: ``X-Amz-Log-Result`` carries at most the last 4 KB of the log.
LOG_TAIL_BYTES = 4096
LATEST = "$LATEST"

_INVOCATION_TYPES: dict[str, InvocationType] = {
    "RequestResponse": "RequestResponse", "Event": "Event", "DryRun": "DryRun"}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_QUALIFIER = re.compile(r"^[A-Za-z0-9$_-]{1,128}$")
_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
                  r"function:(?P<rest>.+)$")
_PARTIAL_ARN = re.compile(r"^(?P<account>\d{12}):function:(?P<rest>.+)$")

class InvokeApiError(Exception):
    """An error answer of the Invoke API: status, AWS error code, message."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


@dataclass(frozen=True)
class FunctionRef:
    """A function name as the caller gave it, resolved to name and qualifier."""

    name: str
    qualifier: str | None


def parse_function_name(text: str, qualifier: str | None = None, *,
                        region: str = "us-east-1",
                        account_id: str = ACCOUNT_ID) -> FunctionRef:
    """Resolve a name, partial ARN or ARN (with optional ``:qualifier``).

    Raises :class:`InvokeApiError` (400 for a malformed name or a qualifier given
    twice differently, 404 for an ARN of another region or account).

    >>> parse_function_name("arn:aws:lambda:us-east-1:123456789012:function:api:$LATEST")
    FunctionRef(name='api', qualifier='$LATEST')
    """
    rest = text
    arn = _ARN.match(text)
    partial = _PARTIAL_ARN.match(text) if arn is None else None
    if arn is not None:
        if arn["region"] != region or arn["account"] != account_id:
            raise InvokeApiError(404, "ResourceNotFoundException",
                                 f"Function not found: {text}", Type="User")
        rest = arn["rest"]
    elif partial is not None:
        if partial["account"] != account_id:
            raise InvokeApiError(404, "ResourceNotFoundException",
                                 f"Function not found: {text}", Type="User")
        rest = partial["rest"]
    name, _, inline = rest.partition(":")
    if not _NAME.match(name) or (inline and not _QUALIFIER.match(inline)):
        raise InvokeApiError(400, "ValidationException",
                             f"1 validation error detected: Value '{text}' at 'functionName' "
                             f"failed to satisfy constraint: Member must satisfy regular "
                             f"expression pattern", Type="User")
    if qualifier is not None and not _QUALIFIER.match(qualifier):
        raise InvokeApiError(400, "ValidationException",
                             f"1 validation error detected: Value '{qualifier}' at "
                             f"'qualifier' failed to satisfy constraint", Type="User")
    if inline and qualifier and inline != qualifier:
        raise InvokeApiError(400, "InvalidParameterValueException",
                             "The derived qualifier from the function name does not match "
                             "the specified qualifier.", Type="User")
    return FunctionRef(name=name, qualifier=inline or qualifier)


def log_result(tail: str | None) -> str:
    """``X-Amz-Log-Result``: base64 of the last 4 KB of the invocation's log."""
    raw = (tail or "").encode("utf-8", "replace")[-LOG_TAIL_BYTES:]
    return base64.b64encode(raw).decode("ascii")


def invoke_function_name(path: str) -> str | None:
    """The ``{FunctionName}`` of an Invoke path, or None for any other path."""
    if path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX):
        name = path[len(INVOKE_PREFIX):-len(INVOKE_SUFFIX)]
        if name and "/" not in name:
            return name
    return None


class InvokeApi:
    """The ``Invoke`` operation; see the module docstring.

    :meth:`handle` answers at once, or with a
    :class:`~connstorm.local_stack.lambda_.http_server.Later` while the invocation runs.
    """

    def __init__(self, invoker: Invoker, *, region: str | None = None,
                 account_id: str = ACCOUNT_ID) -> None:
        if region is None:
            # ARNs must name the emulator's own region when the invoker knows it.
            region = str(getattr(getattr(invoker, "account", None), "region", "us-east-1"))
        self.invoker = invoker
        self.region = region
        self.account_id = account_id
        # Asynchronous (Event) invocations still running through an invoker without
        # ``submit``: kept so they are not garbage-collected mid-flight.
        self._background: set[asyncio.Future[InvocationResult]] = set()

    def arn(self, name: str, qualifier: str | None = None) -> str:
        """The function's ARN, as error messages quote it."""
        base = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{base}:{qualifier}" if qualifier else base

    def handle(self, request: Request, function_name: str) -> Response | Later:
        """Answer one Invoke call; never raises (a failure becomes 500 ServiceException)."""
        request_id = uuid4()
        try:
            return self._handle(request, function_name, request_id)
        except InvokeApiError as exc:
            return _error(exc, request_id)
        except Exception:
            log.exception("invoke api: %s failed", request.path)
            return _error(InvokeApiError(500, "ServiceException", "Internal error",
                                         Type="Service"), request_id)

    def _handle(self, request: Request, function_name: str,
                request_id: str) -> Response | Later:
        ref = parse_function_name(function_name, _query_value(request.query_string, "Qualifier"),
                                  region=self.region, account_id=self.account_id)
        if ref.qualifier not in (None, LATEST) or not self.invoker.has_function(ref.name):
            raise self._not_found(ref.name, ref.qualifier)
        kind = _INVOCATION_TYPES.get(request.header("X-Amz-Invocation-Type")
                                     or "RequestResponse")
        if kind is None:
            raise InvokeApiError(400, "InvalidParameterValueException",
                                 "X-Amz-Invocation-Type must be RequestResponse, Event or "
                                 "DryRun", Type="User")
        log_type = request.header("X-Amz-Log-Type") or "None"
        if log_type not in ("None", "Tail"):
            raise InvokeApiError(400, "InvalidParameterValueException",
                                 "X-Amz-Log-Type must be None or Tail", Type="User")
        client_context = _client_context(request.header("X-Amz-Client-Context"))
        limit = MAX_ASYNC_PAYLOAD_BYTES if kind == "Event" else MAX_SYNC_PAYLOAD_BYTES
        payload = _payload(request, limit)
        if kind == "DryRun":
            return Response(204, b"", (("x-amzn-RequestId", request_id),))
        invocation = InvocationRequest(function=ref.name, payload=payload,
                                       invocation_type=kind, log_tail=log_type == "Tail",
                                       client_context=client_context)
        try:
            future = start_invocation(self.invoker, invocation)
        except UnknownFunctionError:
            raise self._not_found(ref.name, None) from None
        if kind == "Event":
            if not future.done():
                self._background.add(future)
            future.add_done_callback(self._event_done)
            return Response(202, b"", (("x-amzn-RequestId", request_id),))
        tail = log_type == "Tail"
        return Later(future, lambda done: self._answer(done, ref.name, request_id, tail))

    def _not_found(self, name: str, qualifier: str | None) -> InvokeApiError:
        return InvokeApiError(404, "ResourceNotFoundException",
                              f"Function not found: {self.arn(name, qualifier)}", Type="User")

    def _event_done(self, future: asyncio.Future[InvocationResult]) -> None:
        # Lambda queues asynchronous events and retries throttles itself; the
        # caller already has its 202, so an outcome here is only logged.
        self._background.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("invoke api: Event invocation failed: %s", exc)
            return
        result = future.result()
        if result.outcome != "success":
            log.info("invoke api: Event invocation ended %s (%s)", result.outcome,
                     result.error_type or result.throttle_reason or "")

    def _answer(self, done: asyncio.Future[InvocationResult], name: str, request_id: str,
                tail: bool) -> Response:
        try:
            result = done.result()
        except UnknownFunctionError:
            return _error(self._not_found(name, None), request_id)
        except Exception:
            log.exception("invoke api: invoking %s failed", name)
            return _error(InvokeApiError(500, "ServiceException", "Internal error",
                                         Type="Service"), request_id)
        if result.outcome == "rejected":
            # A VPC function Pending (409) or out of subnet addresses (502): see .vpc.
            code = result.error_type or PENDING
            status, message, member = rejection(code)
            return _error(InvokeApiError(status, code, message, Type="User",
                                         **({member: message} if member != "message" else {})),
                          request_id)
        if result.outcome == "throttled":
            return _error(InvokeApiError(
                429, "TooManyRequestsException", "Rate Exceeded.", Type="User",
                Reason=result.throttle_reason or "ConcurrentInvocationLimitExceeded"),
                request_id)
        headers = [("Content-Type", "application/json"),
                   ("x-amzn-RequestId", result.request_id or request_id),
                   ("X-Amz-Executed-Version", result.executed_version)]
        body = result.payload
        if result.function_error is not None:
            headers.append(("X-Amz-Function-Error", result.function_error))
            if not body:
                body = json.dumps({"errorMessage": result.error_message or "",
                                   "errorType": result.error_type or "Unhandled"}).encode()
        if tail:
            headers.append(("X-Amz-Log-Result", log_result(result.log_tail)))
        return Response(200, body, headers)

    async def close(self) -> None:
        """Cancel asynchronous invocations still running (the server is stopping)."""
        for future in list(self._background):
            future.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _query_value(query_string: str, name: str) -> str | None:
    if not query_string:
        return None
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == name:
            return value
    return None


def _client_context(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
        json.loads(text)
    except (binascii.Error, ValueError):
        raise InvokeApiError(400, "InvalidParameterValueException",
                             "Client context must be a valid Base64-encoded JSON object.",
                             Type="User") from None
    return text


def _payload(request: Request, limit: int) -> bytes:
    if request.oversize or len(request.body) > limit:
        raise InvokeApiError(413, "RequestTooLargeException",
                             f"Request must be smaller than {limit} bytes for the "
                             f"InvokeFunction operation", Type="User")
    payload = request.body
    if not payload.strip():
        # An Invoke without a payload hands the function an empty object.
        return b"{}"
    try:
        json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise InvokeApiError(400, "InvalidRequestContentException",
                             f"Could not parse request body into json: {exc}",
                             Type="User") from None
    return payload


def _error(exc: InvokeApiError, request_id: str) -> Response:
    doc: dict[str, Any] = {"Type": exc.fields.get("Type", "User"), "message": exc.message}
    doc.update({k: v for k, v in exc.fields.items() if k != "Type"})
    return Response(exc.status, json.dumps(doc).encode(), (
        ("Content-Type", "application/json"), ("x-amzn-ErrorType", exc.code),
        ("x-amzn-RequestId", request_id)))
