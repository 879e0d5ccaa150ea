"""A function's ``vpc`` table: which subnets its environments' network interfaces use.

Two models of Lambda's VPC networking (AWS Lambda Developer Guide, "Giving Lambda
functions access to resources in an Amazon VPC", section "Hyperplane ENIs"; the
older model: AWS Compute Blog, "Announcing improved VPC networking for AWS Lambda
functions", 2019):
``hyperplane`` (since 2019: interfaces are set up once per function, which is
``Pending`` meanwhile) and ``per_environment`` (the older model the background
article describes: each environment takes an address in a subnet and pays
``eni_attach_ms`` on its cold start; a full subnet fails the invocation).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Float, Int

ENI_MODELS = ("hyperplane", "per_environment")


@dataclass(frozen=True, config=SECTION)
class VpcConfig:
    """A function's VPC attachment: ``vpc = { subnets = 3, eni_model = "hyperplane" }``."""

    subnets: Int = Field(default=3, ge=1, le=16)
    """Subnets the function is attached to (the article advises three, one per availability zone)."""
    free_ips_per_subnet: Int = Field(default=250, ge=0, le=65_536)
    """Free addresses in each subnet ("per_environment": one per environment)."""
    eni_model: Literal["hyperplane", "per_environment"] = "hyperplane"
    """"hyperplane" (today's Lambda) or "per_environment" (one interface per environment)."""
    eni_attach_ms: Float = Field(default=1000.0, ge=0, le=600_000)
    """"hyperplane": how long the function stays Pending at start; "per_environment": what each cold start pays."""
