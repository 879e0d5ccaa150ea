"""The ``[postgres]`` section: the PostgreSQL server connstorm starts (or one it is given)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from connstorm.sections.base import (
    SECTION,
    SETTING_VALUE_SCHEMA,
    Bool,
    Int,
    KeyProblem,
    SettingValue,
    Str,
    show,
)
from connstorm.sections.native import collect_settings

#: postgresql.conf settings connstorm sets itself: a scenario cannot override them.
POSTGRES_MANAGED = frozenset(
    {"port", "listen_addresses", "unix_socket_directories", "data_directory", "hba_file",
     "ident_file", "external_pid_file", "password_encryption"}
)
BACKENDS = ("native", "docker")
#: Typed fields that are also postgresql.conf settings.
_SERVER_FIELDS = ("max_connections", "superuser_reserved_connections", "idle_session_timeout",
                  "idle_in_transaction_session_timeout", "log_connections", "log_disconnections",
                  "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
_PG_DURATION = re.compile(r"^\s*\d+\s*(us|ms|s|min|h|d)?\s*$")


def _postgres_schema(schema: dict[str, Any]) -> None:
    schema["additionalProperties"] = {
        **SETTING_VALUE_SCHEMA,
        "description": "Any other postgresql.conf setting, under its own name and unit."}


@dataclass(frozen=True, config={**SECTION, "json_schema_extra": _postgres_schema})
class PostgresConfig:
    """The ``[postgres]`` section: the cluster connstorm starts, or an existing server.

    Besides the keys below, any postgresql.conf setting may be given under its
    own name and unit (``statement_timeout = "5s"``); connstorm passes it on and
    PostgreSQL checks it at start. ``settings`` holds all of them, the typed keys
    included, exactly as the server gets them.

    The ``tcp_keepalives_*`` defaults are RDS for PostgreSQL's (AWS, "Dead connection
    handling in PostgreSQL", "Key TCP keepalive parameters in RDS for PostgreSQL"),
    so that the connection of a vanished Lambda environment stays as long as on
    RDS: idle + interval x count = 360 s.
    """

    max_connections: Int = Field(default=20, ge=1, le=262143)
    """PostgreSQL's connection limit, superuser slots included."""
    superuser_reserved_connections: Int = Field(default=3, ge=0, le=262143)
    """Slots only a superuser may take; ordinary roles get the rest."""
    idle_session_timeout: Int | Str = 0
    """Close sessions idle this long (milliseconds, or a duration such as "10s"); 0 never."""
    idle_in_transaction_session_timeout: Int | Str = 0
    """Close sessions idle inside a transaction this long; 0 never."""
    log_connections: Bool = True
    """Log each connection (the server log is in the run folder)."""
    log_disconnections: Bool = True
    """Log each disconnection, with the session's length."""
    tcp_keepalives_idle: Int = Field(default=300, ge=0, le=2_147_483_647)
    """Seconds of silence before the server probes a client (RDS for PostgreSQL's default, 300; 0 is the system's)."""
    tcp_keepalives_interval: Int = Field(default=30, ge=0, le=2_147_483_647)
    """Seconds between unanswered keepalive probes (RDS's default, 30; 0 is the system's)."""
    tcp_keepalives_count: Int = Field(default=2, ge=0, le=2_147_483_647)
    """Unanswered probes before the server drops a vanished client (RDS's default, 2: gone after 360 s)."""
    settings: SkipJsonSchema[Mapping[str, SettingValue]] = dataclasses.field(default_factory=dict)
    """Every postgresql.conf setting of the section; filled in by connstorm."""
    url: Str | None = None
    """An existing server's URL (a superuser's) to use instead of a private cluster."""
    backend: Literal["native", "docker"] = "native"
    """How to run the cluster: "native" processes, or "docker" containers."""
    seed_products: Int = Field(default=1000, ge=0, le=10_000_000)
    """Rows of seed data (products) the workload gets."""

    @model_validator(mode="before")
    @classmethod
    def _native_settings(cls, data: Any) -> Any:
        return collect_settings(cls, data, typed=_SERVER_FIELDS, managed=POSTGRES_MANAGED,
                                allowed=None, what="PostgreSQL")

    @field_validator("idle_session_timeout", "idle_in_transaction_session_timeout",
                     mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and _PG_DURATION.match(value):
            return value.strip()
        raise ValueError(f'expected milliseconds or a PostgreSQL duration like "10s", '
                         f"got {show(value)}")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"expected a postgresql:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _reserved_below_max(self) -> PostgresConfig:
        if self.superuser_reserved_connections >= self.max_connections:
            raise KeyProblem("superuser_reserved_connections",
                             f"must be less than max_connections ({self.max_connections}), "
                             f"got {self.superuser_reserved_connections}")
        return self

    @property
    def app_slots(self) -> int:
        """Connections an ordinary role can open before PostgreSQL refuses it."""
        return self.max_connections - self.superuser_reserved_connections
