"""Every failed request named by its kind, whoever's user sent it.

connstorm's own users describe a failure as ``HTTP 500 [too_many_connections]
...`` (:func:`connstorm.failures.describe_failure`), and everything downstream
(Locust's failure table and ``locust_failures.csv``, the errors-by-kind
counter, the summary, the thresholds) classifies that text. A locustfile of
one's own does not: Locust's ``HttpUser`` fails a 500 with ``HTTPError('500
Server Error: ... for url: /items/17')``, ``FastHttpUser`` with
``LocustBadStatusCode(code=500)``, which say nothing of the cause and split
one cause into a row per URL.

So the plugin rewords a failure before anyone records it: :func:`install`
wraps the ``fire`` of Locust's ``request`` event (the one hook every client
reports through, ``events.request.measure()`` included), and a failure that
came with an HTTP response of 400 or more and names no kind yet is described
from that response (its status, the error its JSON body names, the emulator's
``X-Connstorm-Error-Kind``). Locust's generic HTTP errors are replaced by the
description; a failure text of the user's own is kept, behind the status and
kind. Failures without a response (refused, timed out) are left alone: their
text already classifies.
"""

from __future__ import annotations

import re
from typing import Any

from connstorm import error_kinds
from connstorm.failures import ERROR_KIND_HEADER, classify_failure, describe_failure

#: Exception types Locust's clients raise for a bad status, saying nothing more.
GENERIC_HTTP_ERRORS = ("HTTPError", "LocustBadStatusCode")
_KIND_TAG = re.compile(r"\[([a-z_]+)\]")
_VAGUE = (error_kinds.HTTP_ERROR, error_kinds.OTHER)
_INSTALLED = "_connstorm_classifies_failures"


def reworded(text: str, *, generic: bool, status: int | None, body: str | bytes | None,
             kind_header: str | None) -> str | None:
    """The failure's new text, or None to keep it (no HTTP error, or a kind named already)."""
    if not status or status < 400:
        return None
    if any(tag in error_kinds.ALL_KINDS for tag in _KIND_TAG.findall(text)):
        return None  # described by connstorm's own users, or tagged by the user
    described = describe_failure(status, body, kind_header)
    if generic:
        return described
    kind = classify_failure(described)
    if kind in _VAGUE and classify_failure(text) not in _VAGUE:
        kind = classify_failure(text)
    return f"HTTP {status} [{kind}] {text}"


def _replacement(exception: BaseException, response: Any) -> BaseException | None:
    """A CatchResponseError with the reworded text, or None to keep ``exception``."""
    from locust.exception import CatchResponseError

    try:
        status = int(getattr(response, "status_code", 0) or 0)
        headers = getattr(response, "headers", None) or {}
        body = response.text if status >= 400 else None
    except Exception:  # a response that cannot be read is classified by its text alone
        return None
    generic = type(exception).__name__ in GENERIC_HTTP_ERRORS
    text = str(exception) if isinstance(exception, CatchResponseError) else repr(exception)
    new = reworded(text, generic=generic, status=status, body=body,
                   kind_header=headers.get(ERROR_KIND_HEADER))
    return CatchResponseError(new) if new is not None else None


def install(hook: Any) -> None:
    """Reword failures before every listener of ``hook`` (Locust's request event) sees them."""
    if getattr(hook, _INSTALLED, False):
        return
    fire = hook.fire

    def classifying_fire(**kwargs: Any) -> Any:
        exception, response = kwargs.get("exception"), kwargs.get("response")
        if exception is not None and response is not None:
            new = _replacement(exception, response)
            if new is not None:
                kwargs["exception"] = new
        return fire(**kwargs)

    hook.fire = classifying_fire
    setattr(hook, _INSTALLED, True)
