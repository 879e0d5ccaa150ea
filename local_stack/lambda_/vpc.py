"""A function's VPC attachment: the ``Pending`` window and the subnets' addresses.

Lambda has networked VPC functions in two ways (AWS Lambda Developer Guide, "Giving
Lambda functions access to resources in an Amazon VPC", section "Hyperplane ENIs";
AWS Compute Blog, "Announcing improved VPC networking for AWS Lambda functions",
2019, for the older model), and a function's ``vpc = { eni_model = ... }`` picks one:

* ``hyperplane`` (since 2019): the function's network interfaces are made once,
  when it is created or its VPC settings change, and shared by all of its
  environments. Meanwhile the function is ``Pending`` and every invocation
  fails; afterwards it is ``Active`` and a cold start costs nothing extra. Here
  the function is ``Pending`` from the emulator's start for ``eni_attach_ms``
  (AWS documents no duration: "several minutes" at worst; the scenario picks
  one). Invoke answers what Lambda answers then: HTTP 409
  ``ResourceConflictException``, "The operation cannot be performed at this
  time. The function is currently in the following state: Pending" (AWS Lambda
  developer guide, "Troubleshoot invocation issues in Lambda"; status 409 from
  botocore's ``lambda/2015-03-31/service-2.json``, whose member is ``message``).
  API Gateway turns a rejected invoke into 500 (the guide's mapping).
* ``per_environment`` (before 2019, the model the background article's "250
  per subnet" describes): each new environment takes an address in one of the
  function's subnets (the one with the most free, as Lambda spread interfaces
  over the subnets' availability zones) and pays ``eni_attach_ms`` before its
  Init starts (so the client waits for it; ``Init Duration`` does not show it).
  When every subnet is full, Invoke answers HTTP 502
  ``SubnetIPAddressLimitReachedException`` ("Lambda couldn't set up VPC access
  for the Lambda function because one or more configured subnets has no
  available IP addresses", botocore's service-2.json, member ``Message``).
  That, not ``ENILimitReachedException``, is the error for this case:
  ``ENILimitReachedException`` is the *account's* limit on network interfaces,
  which the article's failure (too few subnets) never reaches. API Gateway
  answers it with 502. An address is freed when its environment is gone
  (reaped, killed or crashed). A sandbox re-initialised after a timeout or crash
  keeps its interface on AWS; here its fresh runtime takes a free address if
  there is one and pays no attach time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connstorm.scenario import VpcConfig

PENDING = "ResourceConflictException"
SUBNET_FULL = "SubnetIPAddressLimitReachedException"
ENI_LIMIT = "ENILimitReachedException"
#: Invoke API errors a VPC function's invocation can get: code -> (HTTP status, message).
REJECTIONS: dict[str, tuple[int, str]] = {
    PENDING: (409, "The operation cannot be performed at this time. The function is "
                   "currently in the following state: Pending"),
    SUBNET_FULL: (502, "Lambda couldn't set up VPC access for the Lambda function because "
                       "one or more configured subnets has no available IP addresses."),
    ENI_LIMIT: (502, "Lambda couldn't create an elastic network interface in the VPC, "
                     "specified as part of Lambda function configuration, because the limit "
                     "for network interfaces has been reached."),
}
#: The member botocore's model names for each error's message (``message`` or ``Message``).
MESSAGE_MEMBER = {PENDING: "message", SUBNET_FULL: "Message", ENI_LIMIT: "Message"}


class VpcAttachment:
    """One function's VPC state: ``Pending`` until a time, and its subnets' free addresses."""

    def __init__(self, vpc: VpcConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.vpc = vpc
        self.per_environment = vpc.eni_model == "per_environment"
        self.attach_s = vpc.eni_attach_ms / 1000.0 if self.per_environment else 0.0
        #: When the function becomes ``Active`` (0.0: it is). Only hyperplane waits.
        self.pending_until = 0.0 if self.per_environment else clock() + vpc.eni_attach_ms / 1000
        self.clock = clock
        self.free = [vpc.free_ips_per_subnet] * vpc.subnets if self.per_environment else []
        self.refused = 0

    @property
    def state(self) -> str:
        """The function's ``State``: ``Pending`` or ``Active``."""
        return "Pending" if self.pending() else "Active"

    def pending(self) -> bool:
        """Whether the function is still ``Pending`` (its interfaces being set up)."""
        if self.pending_until and self.clock() < self.pending_until:
            return True
        self.pending_until = 0.0
        return False

    def take(self) -> int | None:
        """An address for a new environment: the index of its subnet, or None if all are full.

        Always 0 for ``hyperplane``, whose environments share the function's interfaces.
        """
        if not self.per_environment:
            return None
        best = max(range(len(self.free)), key=self.free.__getitem__)
        if self.free[best] <= 0:
            self.refused += 1
            return None
        self.free[best] -= 1
        return best

    def release(self, subnet: int) -> None:
        """Give back the address an environment held in ``subnet``."""
        if 0 <= subnet < len(self.free):
            self.free[subnet] = min(self.vpc.free_ips_per_subnet, self.free[subnet] + 1)

    @property
    def in_use(self) -> int:
        """Addresses held by environments now (``per_environment`` only)."""
        return self.vpc.free_ips_per_subnet * len(self.free) - sum(self.free)

    def stats(self) -> dict[str, object]:
        """The ``vpc`` part of the function's stats."""
        return {"state": self.state, "eni_model": self.vpc.eni_model,
                "addresses_in_use": self.in_use, "addresses_free": sum(self.free),
                "refused": self.refused}


def rejection(code: str) -> tuple[int, str, str]:
    """(HTTP status, message, message member) of a VPC rejection code."""
    status, message = REJECTIONS[code]
    return status, message, MESSAGE_MEMBER[code]
