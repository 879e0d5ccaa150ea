"""How a failed request is described, and how that description is classified.

Users mark a failure as ``HTTP <status> [<kind>] <error text>``: the status and
the error text the handler (or API Gateway) put in the body, with the kind when
the body names one. The same string ends up in Locust's failure table, its
``locust_failures.csv`` (merged over all workers by Locust itself) and the
request event, so every reader classifies it the same way with
:func:`classify_failure`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from connstorm import error_kinds

#: The emulator front's diagnostic header
#: (``connstorm.local_stack.lambda_.front.ERROR_KIND_HEADER``).
ERROR_KIND_HEADER = "X-Connstorm-Error-Kind"
_KIND_TAG = re.compile(r"\[([a-z_]+)\]")
# Locust wraps a failure text in the exception's repr, e.g. CatchResponseError('...').
_MAX_TEXT = 300
_MAX_PLAIN_TEXT = 120
_TAG = re.compile(r"<[^>]*>")


def body_error(body: str | bytes | None) -> tuple[str, str | None]:
    """The error text and kind in a JSON error body (``{"error", "kind"}`` or ``{"message"}``)."""
    if not body:
        return "", None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        doc: Any = json.loads(body)
    except ValueError:
        # An HTML error page (a proxy's, a CDN's): its words, not its markup.
        return " ".join(_TAG.sub(" ", body).split())[:_MAX_PLAIN_TEXT], None
    if not isinstance(doc, dict):
        return " ".join(str(doc).split())[:_MAX_TEXT], None
    text = doc.get("error") or doc.get("message") or doc.get("errorMessage") or ""
    if isinstance(text, dict):
        text = text.get("message") or json.dumps(text)
    kind = doc.get("kind")
    return " ".join(str(text).split())[:_MAX_TEXT], kind if isinstance(kind, str) else None


def describe_failure(status: int, body: str | bytes | None,
                     kind_header: str | None = None) -> str:
    """The failure text of a response: ``HTTP 500 [too_many_connections] connection failed...``.

    ``kind_header`` is the emulator's ``X-Connstorm-Error-Kind``: API Gateway's own
    502 body says only "Internal server error", the header says why.
    """
    text, kind = body_error(body)
    if kind not in error_kinds.ALL_KINDS and kind_header in error_kinds.ALL_KINDS:
        kind = kind_header
    if kind not in error_kinds.ALL_KINDS:
        kind = classify_failure(f"HTTP {status} {text}")
    return f"HTTP {status} [{kind}] {text}".rstrip()


def classify_failure(message: str | None) -> str:
    """The kind of a failure text: its ``[kind]`` tag, else the text's classification.

    Any HTTP status that does not say more is ``http_error``; a failure without
    a status (connection refused, timeout) is classified by its text alone.
    """
    text = message or ""
    for tag in _KIND_TAG.findall(text):
        if tag in error_kinds.ALL_KINDS:
            return str(tag)
    kind = error_kinds.classify_message(text)
    if kind == error_kinds.OTHER:
        if re.search(r"HTTP 504\b", text):
            return error_kinds.GATEWAY_TIMEOUT
        if re.search(r"HTTP 429\b", text):
            return error_kinds.LAMBDA_THROTTLED
        if re.search(r"HTTP \d{3}\b", text) or "HTTPError" in text:
            return error_kinds.HTTP_ERROR
        lowered = text.lower()
        if "refused" in lowered:
            return error_kinds.CONNECTION_REFUSED
        if "timed out" in lowered or "timeout" in lowered:
            return error_kinds.CONNECT_TIMEOUT
    return kind
