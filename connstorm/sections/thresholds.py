"""The ``[thresholds]`` section: the limits a run is checked against at its end."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, Strict, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from connstorm import error_kinds
from connstorm.sections.base import SECTION, Bool, Float, Int


def _thresholds_schema(schema: dict[str, Any]) -> None:
    properties = schema.setdefault("properties", {})
    for kind in error_kinds.ALL_KINDS:
        properties[kind] = {"type": "integer", "minimum": 0,
                            "description": f"Most {kind} errors allowed."}


@dataclass(frozen=True, config=SECTION)
class RegressionConfig:
    """``[thresholds.regression]``: what counts as worse than the baseline (``--baseline``).

    Each variant is compared with the baseline's variant of the same name; a
    regression fails the run (exit code 6) like a broken threshold. A percentage
    is how much worse a figure may get: connection and environment peaks are
    whole numbers, so the allowed value is rounded up (10 % of 7 allows 8). A
    baseline without connections of a kind (no pinned connection, no proxy)
    allows none: the first one is a regression.

    Timings (p95, p99, requests/s) are compared only when their percentage is
    set: between two runs of the same code on a shared machine they moved by
    up to 3x while the connection figures stayed the same (docs/baselines.md,
    "Why timings are not judged by default"), so a default tolerance would fail
    CI on noise alone. Unset, they are still shown beside the baseline's.
    """

    peak_db_connections_pct: Float = Field(default=10.0, ge=0)
    """Most the peak PostgreSQL connections may rise, percent."""
    peak_proxy_database_connections_pct: Float = Field(default=10.0, ge=0)
    """Most the RDS Proxy's peak database connections may rise, percent."""
    peak_pinned_connections_pct: Float = Field(default=10.0, ge=0)
    """Most the RDS Proxy's peak pinned connections may rise, percent."""
    peak_environments_pct: Float = Field(default=10.0, ge=0)
    """Most the peak execution environments may rise, percent."""
    p95_pct: Float | None = Field(default=None, ge=0)
    """Most the 95th percentile response time may rise, percent; unset: shown, not judged (timings vary between identical runs)."""
    p99_pct: Float | None = Field(default=None, ge=0)
    """Most the 99th percentile response time may rise, percent; unset: shown, not judged."""
    rps_pct: Float | None = Field(default=None, ge=0, le=100)
    """Most the requests per second may fall, percent; unset: shown, not judged."""
    errors_pct: Float = Field(default=50.0, ge=0)
    """Most an error kind's share of requests may rise, percent."""
    new_error_kinds: Bool = True
    """An error kind the baseline did not have is a regression."""
    new_pin_reasons: Bool = True
    """A reason RDS Proxy pinned for that the baseline did not have is a regression."""


@dataclass(frozen=True, config={**SECTION, "json_schema_extra": _thresholds_schema})
class ThresholdsConfig:
    """The ``[thresholds]`` section: limits checked at the end of a run (exit code 6 when broken).

    Besides the keys below, each error kind is a key giving the most errors of
    that kind allowed, for example ``too_many_connections = 0``.
    """

    #: Keys besides the fields: one per error kind (for "did you mean").
    EXTRA_KEYS: ClassVar[tuple[str, ...]] = error_kinds.ALL_KINDS

    max_fail_ratio: Float | None = Field(default=None, ge=0, le=1)
    """Highest share of failed requests."""
    p95_ms: Float | None = Field(default=None, ge=0)
    """Highest 95th percentile response time."""
    p99_ms: Float | None = Field(default=None, ge=0)
    """Highest 99th percentile response time."""
    min_rps: Float | None = Field(default=None, ge=0)
    """Lowest mean requests per second."""
    max_db_connections: Int | None = Field(default=None, ge=0)
    """Most PostgreSQL client connections seen at once."""
    max_errors: SkipJsonSchema[Mapping[str, Annotated[int, Strict(), Field(ge=0)]]] = dataclasses.field(default_factory=dict)
    """Most errors allowed per kind, from the error-kind keys."""
    regression: RegressionConfig = dataclasses.field(default_factory=RegressionConfig)
    """What counts as worse than the baseline, with --baseline (defaults: docs/baselines.md)."""

    @model_validator(mode="before")
    @classmethod
    def _error_kinds(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        kinds = {k: v for k, v in data.items() if k in error_kinds.ALL_KINDS}
        rest = {k: v for k, v in data.items() if k not in kinds}
        if kinds:
            rest["max_errors"] = kinds
        return rest
