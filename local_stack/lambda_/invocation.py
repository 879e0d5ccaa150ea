"""What the front and the Invoke API ask of the emulator core, and what they get back.

This is the seam between the HTTP side (API Gateway front, Invoke API) and the
core (environments, scheduling, Runtime API): both sides depend only on these
types, so either can change without the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

InvocationType = Literal["RequestResponse", "Event", "DryRun"]
#: ``rejected``: the Invoke API refused it with an AWS error other than a throttle
#: (``error_type`` is the code, e.g. a VPC function's ``ResourceConflictException``).
Outcome = Literal["success", "function_error", "timeout", "crash", "init_error", "throttled",
                  "rejected"]

THROTTLE_REASONS = (
    "ConcurrentInvocationLimitExceeded",
    "FunctionInvocationRateLimitExceeded",
    "ReservedFunctionConcurrentInvocationLimitExceeded",
    "ReservedFunctionInvocationRateLimitExceeded",
    "CallerRateLimitExceeded",
)


@dataclass(frozen=True)
class InvocationRequest:
    """One invocation of a function, as the Invoke API or the front hands it over."""

    function: str
    payload: bytes
    invocation_type: InvocationType = "RequestResponse"
    log_tail: bool = False
    client_context: str | None = None
    #: Give up waiting after this many seconds (API Gateway's integration timeout);
    #: the invocation itself runs on until the function's own timeout.
    wait_timeout_s: float | None = None


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one invocation.

    ``payload`` is the function's response, or for a function error the JSON
    ``{"errorMessage", "errorType", ...}`` body Lambda returns. ``throttle_reason``
    is set only for ``outcome == "throttled"``. ``waited_out`` is true when
    ``wait_timeout_s`` expired before the function answered.
    """

    request_id: str
    outcome: Outcome
    payload: bytes = b""
    error_type: str | None = None
    error_message: str | None = None
    throttle_reason: str | None = None
    log_tail: str | None = None
    env_id: str | None = None
    cold: bool = False
    init_ms: float | None = None
    duration_ms: float | None = None
    waited_out: bool = False
    executed_version: str = "$LATEST"

    @property
    def function_error(self) -> str | None:
        """The ``X-Amz-Function-Error`` header value, ``Unhandled`` on any function error."""
        if self.outcome in ("function_error", "timeout", "crash", "init_error"):
            return "Unhandled"
        return None


class UnknownFunctionError(LookupError):
    """No function by that name: the Invoke API answers 404 ResourceNotFoundException."""


class Invoker(Protocol):
    """The core as the HTTP side sees it."""

    def has_function(self, name: str) -> bool:
        """Whether a function by that name exists."""
        ...

    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        """Run one invocation; raises :class:`UnknownFunctionError` for an unknown function."""
        ...


def start_invocation(invoker: Invoker, request: InvocationRequest
                     ) -> asyncio.Future[InvocationResult]:
    """Start ``request`` on ``invoker`` and return the future of its result.

    The emulator's ``submit`` starts it without a task (its hot path); any other
    :class:`Invoker` gets a task around ``invoke``. Raises
    :class:`UnknownFunctionError` at once when ``submit`` knows the name is unknown;
    through a task it arrives as the future's exception instead.
    """
    submit = getattr(invoker, "submit", None)
    if submit is not None:
        future: asyncio.Future[InvocationResult] = submit(request)
        return future
    return asyncio.ensure_future(invoker.invoke(request))
