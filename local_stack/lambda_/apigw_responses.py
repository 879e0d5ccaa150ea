"""A function's proxy response turned back into HTTP, as API Gateway does it.

REST APIs (payload 1.0) are strict: the response must be a JSON object with
``statusCode`` and only the keys ``statusCode``, ``headers``,
``multiValueHeaders``, ``body`` and ``isBase64Encoded``; anything else is a
"Malformed Lambda proxy response" and the client gets 502. HTTP APIs (payload
2.0) are lenient: a response that is valid JSON but has no ``statusCode`` is
returned as 200 with that JSON as an ``application/json`` body; ``cookies``
become ``Set-Cookie`` headers.

Headers the integration may not set because they frame the HTTP message are
renamed ``x-amzn-Remapped-<name>``, as API Gateway does, so a handler cannot
break the connection to the client. A header value with a line break is
malformed (it would otherwise split the response).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

REST_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
DEFAULT_CONTENT_TYPE = "application/json"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_REMAPPED = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive",
                       "upgrade", "date", "server", "te", "trailer"})


class MalformedResponseError(ValueError):
    """The function's response is not a valid proxy response: the client gets 502."""


@dataclass(frozen=True)
class ProxyResponse:
    """What the front sends the client: status, header lines in order, body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_response(payload: bytes, version: str) -> ProxyResponse:
    """Map a function's response for a route of payload ``version`` ("1.0" or "2.0")."""
    if version == "1.0":
        return parse_rest_response(payload)
    return parse_http_response(payload)


def _load(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson is strict where the standard library is not (integers over 64 bits,
    # escaped lone surrogates): what either accepts is JSON a handler may send.
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        raise MalformedResponseError("the response is not valid JSON") from None


def parse_rest_response(payload: bytes) -> ProxyResponse:
    """Map a payload 1.0 (REST API) proxy response; raises :class:`MalformedResponseError`."""
    doc = _load(payload)
    if not isinstance(doc, dict):
        raise MalformedResponseError("the response is not a JSON object")
    unknown = set(doc) - REST_KEYS
    if unknown:
        raise MalformedResponseError(f"unknown keys in the response: {sorted(unknown)}")
    if "statusCode" not in doc:
        raise MalformedResponseError("the response has no statusCode")
    status = _status(doc["statusCode"])
    single = _header_map(doc.get("headers"), "headers")
    multi = _multi_header_map(doc.get("multiValueHeaders"))
    # Where a name appears in both, multiValueHeaders wins (API Gateway merges them so).
    multi_names = {k.lower() for k in multi}
    lines = [(k, v) for k, v in single.items() if k.lower() not in multi_names]
    for k, values in multi.items():
        lines.extend((k, v) for v in values)
    body = _body(doc.get("body"), doc.get("isBase64Encoded", False))
    return _finish(status, lines, body)


def parse_http_response(payload: bytes) -> ProxyResponse:
    """Map a payload 2.0 (HTTP API) response; raises :class:`MalformedResponseError`."""
    doc = _load(payload)
    if not isinstance(doc, dict) or "statusCode" not in doc:
        # Valid JSON without a statusCode is the body itself.
        return ProxyResponse(200, (("Content-Type", DEFAULT_CONTENT_TYPE),), payload)
    status = _status(doc["statusCode"])
    lines = list(_header_map(doc.get("headers"), "headers").items())
    cookies = doc.get("cookies")
    if cookies is not None:
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise MalformedResponseError("cookies must be a list of strings")
        lines.extend(("Set-Cookie", _value(c, "cookies")) for c in cookies)
    body = _body(doc.get("body"), doc.get("isBase64Encoded", False))
    return _finish(status, lines, body)


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise MalformedResponseError(f"statusCode must be an integer, got {value!r}")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 200 <= value <= 599:
        raise MalformedResponseError(f"statusCode must be an integer 200-599, got {value!r}")
    return value


def _scalar(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return _value(str(value), where)
    raise MalformedResponseError(f"{where}: header values must be strings, got {value!r}")


def _value(text: str, where: str) -> str:
    if "\r" in text or "\n" in text or "\0" in text:
        raise MalformedResponseError(f"{where}: a header value contains a line break")
    return text


def _name(name: str, where: str) -> str:
    if not _TOKEN.match(name):
        raise MalformedResponseError(f"{where}: invalid header name {name!r}")
    return name


def _header_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedResponseError(f"{where} must be an object")
    out: dict[str, str] = {}
    for k, v in value.items():
        text = _scalar(v, where)
        if text is not None:
            out[_name(k, where)] = text
    return out


def _multi_header_map(value: Any) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedResponseError("multiValueHeaders must be an object")
    out: dict[str, list[str]] = {}
    for k, values in value.items():
        if not isinstance(values, list):
            raise MalformedResponseError(f"multiValueHeaders {k!r} must be a list")
        texts = [t for t in (_scalar(v, "multiValueHeaders") for v in values) if t is not None]
        out[_name(k, "multiValueHeaders")] = texts
    return out


def _body(value: Any, b64: Any) -> bytes:
    if not isinstance(b64, bool):
        raise MalformedResponseError(f"isBase64Encoded must be a boolean, got {b64!r}")
    if value is None:
        return b""
    if not isinstance(value, str):
        raise MalformedResponseError("body must be a string")
    if not b64:
        return value.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponseError("body is not valid base64") from None


def _finish(status: int, lines: list[tuple[str, str]], body: bytes) -> ProxyResponse:
    out: list[tuple[str, str]] = []
    has_type = False
    for k, v in lines:
        lk = k.lower()
        if lk in _REMAPPED:
            out.append((f"x-amzn-Remapped-{k}", v))
            continue
        has_type = has_type or lk == "content-type"
        out.append((k, v))
    if not has_type:
        out.append(("Content-Type", DEFAULT_CONTENT_TYPE))
    if status in (204, 304):
        body = b""
    return ProxyResponse(status, tuple(out), body)
