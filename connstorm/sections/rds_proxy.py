"""The ``[rds_proxy]`` section: connstorm's RDS Proxy stand-in, with RDS Proxy's own settings.

Names and defaults are RDS Proxy's (AWS RDS User Guide, "Creating a proxy for
Amazon RDS", connection settings; RDS API Reference, "ConnectionPoolConfiguration"
and "CreateDBProxy", ``IdleClientTimeout``): it has no pool mode to choose, only
how much of the database's ``max_connections`` it may use, how many of those it
keeps idle, how long a client waits to borrow one, and when idle clients are closed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Bool, Float, Int, KeyProblem, Str

IAM_AUTH = ("required", "disabled")


@dataclass(frozen=True, config=SECTION)
class RdsProxyConfig:
    """The ``[rds_proxy]`` section: the RDS Proxy stand-in that multiplexes and pins as RDS Proxy does.

    A function with ``database = "rds_proxy"`` turns it on by itself.
    """

    enabled: Bool = False
    """Start the stand-in (implied when a function uses database = "rds_proxy")."""
    max_connections_percent: Int = Field(default=100, ge=1, le=100)
    """MaxConnectionsPercent: share of the database's max_connections the proxy may open."""
    max_idle_connections_percent: Int | None = Field(default=None, ge=0, le=100)
    """MaxIdleConnectionsPercent: share it keeps open while idle; unset is half of max_connections_percent (50)."""
    connection_borrow_timeout_s: Float = Field(default=120.0, ge=0, le=300)
    """ConnectionBorrowTimeout: how long a client waits for a database connection before its query fails."""
    idle_client_timeout_s: Float = Field(default=1800.0, ge=1, le=28_800)
    """IdleClientTimeout: a client connection idle this long is closed."""
    init_query: Str | None = None
    """InitQuery: SQL run on each new database connection."""
    iam_auth: Literal["required", "disabled"] = "disabled"
    """IAMAuth: "required" takes only IAM tokens as passwords; "disabled" takes the role's password (SCRAM)."""
    realtime_priority: Bool = True
    """Run the stand-in's event loop at real-time priority (needs CAP_SYS_NICE): RDS Proxy runs on hosts of its own and never waits for the clients' or the database's CPU."""

    @model_validator(mode="after")
    def _idle_within_max(self) -> RdsProxyConfig:
        if self.idle_percent > self.max_connections_percent:
            raise KeyProblem("max_idle_connections_percent",
                             f"must not exceed max_connections_percent "
                             f"({self.max_connections_percent}), got {self.idle_percent}")
        return self

    @property
    def idle_percent(self) -> int:
        """MaxIdleConnectionsPercent in force (RDS Proxy's default is half the maximum)."""
        if self.max_idle_connections_percent is None:
            return self.max_connections_percent // 2
        return self.max_idle_connections_percent
