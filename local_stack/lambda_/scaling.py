"""How fast and how far Lambda lets a function scale: limits, scaling rate, reasons.

Concurrency is busy + initializing environments (frozen ones do not count).
A request that finds no idle environment needs a new one; it is throttled when:

* the function has ``reserved_concurrency`` and is at it:
  ``ReservedFunctionConcurrentInvocationLimitExceeded``;
* an unreserved function would push the unreserved functions together over the
  account ``concurrency_limit`` minus everybody's reservations:
  ``ConcurrentInvocationLimitExceeded``;
* the scaling rate has no token left for a new environment. AWS documents a 429
  but no ``Reason`` for this case; we answer ``FunctionInvocationRateLimitExceeded``
  (``ReservedFunctionInvocationRateLimitExceeded`` for a reserved function), the
  "rate" reasons, so a report can tell scaling-rate throttles from
  concurrency-limit throttles.

Scaling models, both token buckets of *new environments*:

* ``current`` (since Nov 2023), per function: ``scaling_per_10s`` environments
  per 10 s, refilled continuously, never more than ``scaling_per_10s`` banked.
* ``legacy``, shared by the account: a burst of ``legacy_burst`` environments,
  then ``legacy_per_minute`` more per minute. Modelling it as a bucket of new
  environments (rather than a moving concurrency ceiling) gives the documented
  burst-then-linear ramp from a standing start, which is what load tests see.

Request rate ("Request rate is limited to 10 x concurrency"), a third bucket,
of *invocations* (warm ones too): a function with reserved concurrency R may
start 10 x R invocations per second, its own bucket; the unreserved functions
share one bucket of 10 x the account ``concurrency_limit``. Over it the reason
is again ``ReservedFunctionInvocationRateLimitExceeded`` or
``FunctionInvocationRateLimitExceeded``, the names AWS gives this very limit.
The bucket refills continuously and holds one second's worth, so a steady rate
just under the limit never throttles and a burst is absorbed up to 1 s of it.
A function reserving 0 has no rate bucket: its concurrency limit already
refuses everything, with the reason that says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from connstorm.scenario import FunctionConfig, LambdaConfig

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
RATE_LIMIT = "FunctionInvocationRateLimitExceeded"
RESERVED_RATE_LIMIT = "ReservedFunctionInvocationRateLimitExceeded"
#: Invocations per second allowed per unit of concurrency (AWS Lambda quotas).
REQUESTS_PER_CONCURRENCY = 10


class TokenBucket:
    """A bucket of ``capacity`` tokens refilled at ``rate_per_s``, starting full."""

    def __init__(self, capacity: float, rate_per_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(capacity)
        self.rate_per_s = float(rate_per_s)
        self.clock = clock
        self.tokens = float(capacity)
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now

    def take(self) -> bool:
        """Take one token if there is one."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def give_back(self) -> None:
        """Return a token taken for an environment that was never created."""
        self.tokens = min(self.capacity, self.tokens + 1.0)

    @property
    def available(self) -> float:
        """Tokens now (for stats)."""
        self._refill()
        return self.tokens


def scaling_bucket(account: LambdaConfig,
                   clock: Callable[[], float] = time.monotonic) -> TokenBucket:
    """A function's (``current``) or the account's (``legacy``) bucket of new environments."""
    if account.scaling == "legacy":
        return TokenBucket(account.legacy_burst, account.legacy_per_minute / 60.0, clock)
    return TokenBucket(account.scaling_per_10s, account.scaling_per_10s / 10.0, clock)


def request_rate_limited(fn: FunctionConfig, account: LambdaConfig) -> bool:
    """Whether ``fn`` is subject to the request-rate limit (its own setting, else the account's)."""
    if fn.request_rate_limit is not None:
        return fn.request_rate_limit
    return account.request_rate_limit


def request_rate_bucket(concurrency: int,
                        clock: Callable[[], float] = time.monotonic) -> TokenBucket | None:
    """A bucket of invocations for ``concurrency``: 10 x it per second, one second banked.

    ``None`` for a concurrency of 0 (nothing to limit: the concurrency limit refuses all).
    """
    if concurrency <= 0:
        return None
    per_s = REQUESTS_PER_CONCURRENCY * concurrency
    return TokenBucket(per_s, per_s, clock)


def request_rate_buckets(account: LambdaConfig, functions: Iterable[FunctionConfig],
                         clock: Callable[[], float] = time.monotonic,
                         ) -> dict[str, TokenBucket | None]:
    """Each function's request-rate bucket by name (``None``: not limited).

    Reserved functions get their own; the unreserved ones share the account's.
    """
    account_bucket: TokenBucket | None = None
    out: dict[str, TokenBucket | None] = {}
    for fn in functions:
        if not request_rate_limited(fn, account):
            out[fn.name] = None
        elif fn.reserved_concurrency is not None:
            out[fn.name] = request_rate_bucket(fn.reserved_concurrency, clock)
        else:
            if account_bucket is None:
                account_bucket = request_rate_bucket(account.concurrency_limit, clock)
            out[fn.name] = account_bucket
    return out


def concurrency_reason(fn: FunctionConfig, fn_concurrency: int, unreserved_concurrency: int,
                       unreserved_limit: int) -> str | None:
    """The throttle reason if one more concurrent execution of ``fn`` is not allowed."""
    if fn.reserved_concurrency is not None:
        return RESERVED_LIMIT if fn_concurrency >= fn.reserved_concurrency else None
    return ACCOUNT_LIMIT if unreserved_concurrency >= unreserved_limit else None


def rate_reason(fn: FunctionConfig) -> str:
    """The throttle reason when the scaling rate allows no new environment."""
    return RESERVED_RATE_LIMIT if fn.reserved_concurrency is not None else RATE_LIMIT
