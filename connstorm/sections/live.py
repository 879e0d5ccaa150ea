"""The ``[live]`` section: settings of ``connstorm live`` against a deployed stack."""

from __future__ import annotations

from pydantic import Field
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Float, Int, Str


@dataclass(frozen=True, config=SECTION)
class LiveConfig:
    """The ``[live]`` section: which deployed stack to load and how to read CloudWatch."""

    stack_name: Str | None = None
    """CloudFormation stack of deploy/template.yaml (``--stack-name`` wins)."""
    region: Str | None = None
    """The stack's region (``--region`` wins; else the boto3 chain's)."""
    metrics_period_s: Int = Field(default=60, ge=1, le=3600)
    """CloudWatch period of the metrics read (most are one-minute metrics)."""
    wait_for_metrics_s: Float = Field(default=180.0, ge=0, le=1800)
    """How long to wait after the load for the window's last data points (--metrics-wait wins)."""
    poll_interval_s: Float = Field(default=30.0, ge=1, le=600)
    """How often CloudWatch is read during the load, for the live view (--poll-interval wins)."""
