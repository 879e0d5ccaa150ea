"""``[[functions]]``: the Lambda functions the emulator runs, one table each."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from connstorm.sections.base import SECTION, Bool, Float, Int, KeyProblem, Str
from connstorm.sections.vpc import VpcConfig

PATTERNS: tuple[str, ...] = (
    "per_invocation",
    "leaky",
    "module_level",
    "module_level_resilient",
    "in_process_pool",
    "secrets_cached",
    "iam_token",
    "session_state",
)
Pattern = Literal["per_invocation", "leaky", "module_level", "module_level_resilient",
                  "in_process_pool", "secrets_cached", "iam_token", "session_state"]
DATABASE_PATHS = ("direct", "pgbouncer", "rds_proxy", "none")
DEFAULT_PRELOAD = ("psycopg", "psycopg_pool", "boto3", "botocore.session")


@dataclass(frozen=True, config=SECTION)
class FunctionConfig:
    """One ``[[functions]]`` entry: a Lambda function the emulator runs.

    Give either ``pattern`` (one of connstorm's handlers) or ``handler`` (your own
    ``module.function``, found in ``code_dir``).

    How long environments live is not documented: after an invocation "Lambda
    maintains the execution environment for some time in anticipation of another
    function invocation. However, Lambda terminates execution environments every
    few hours" (AWS, "Understanding the Lambda execution environment lifecycle",
    "Shutdown phase"). ``idle_lifetime_s``' default is what people measured
    (45-60 min in 2017, about 10 min since 2019), not a figure AWS gives.
    """

    name: Annotated[Str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    """The function's name (letters, digits, - and _; at most 64)."""
    handler: Str = Field(default="", pattern=r"^$|^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    """Your handler as module.function, found relative to code_dir."""
    code_dir: Str = "."
    """Folder of the function's code, relative to the scenario file."""
    pattern: Pattern | None = None
    """One of connstorm's connection patterns (handlers/<pattern>_handler.py)."""
    database: Literal["direct", "pgbouncer", "rds_proxy", "none"] = "pgbouncer"
    """How the handler reaches PostgreSQL: directly, through PgBouncer, through the RDS Proxy stand-in, or not at all."""
    timeout_s: Float = Field(default=10.0, ge=0.01, le=900)
    """The function timeout (Lambda: at most 900 s)."""
    memory_mb: Int = Field(default=512, ge=128, le=10240)
    """Memory size; an environment using more is killed, as on Lambda."""
    reserved_concurrency: Int | None = Field(default=None, ge=0, le=100_000)
    """Reserved concurrency: the function's own limit, taken from the account's; all functions together may reserve at most concurrency_limit - 100 (AWS keeps 100 unreserved)."""
    idle_lifetime_s: Float = Field(default=600.0, ge=0.1)
    """How long an idle environment lives before it is reaped. Observed, not documented: AWS says only "for some time" (measured: about 10 min since 2019)."""
    max_lifetime_s: Float | None = Field(default=None, ge=0.1)
    """Recycle environments after this long even when busy. AWS documents only "every few hours"; the exact time is not documented."""
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Environment variables of the function (values are strings; numbers and booleans are converted)."""
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    """Modules the environments' parent imports before forking, to make cold starts cheap."""
    request_rate_limit: Bool | None = None
    """This function's request-rate limit on or off; unset follows [lambda]."""
    event_retry_attempts: Int = Field(default=2, ge=0, le=2)
    """Retries of a failed Event invocation (MaximumRetryAttempts, 0-2)."""
    event_retry_delay_s: Float = Field(default=60.0, ge=0, le=21_600)
    """Wait before the first retry of a failed Event invocation; the second waits twice as long."""
    provisioned_concurrency: Int = Field(default=0, ge=0, le=100_000)
    """Environments initialised at stack start, kept warm and never reaped."""
    vpc: VpcConfig | None = None
    """Attach the function to a VPC: vpc = { subnets = 3, eni_model = "hyperplane" }."""

    @model_validator(mode="before")
    @classmethod
    def _pattern_or_handler(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            if data.get("pattern") is not None and data.get("handler") is not None:
                raise KeyProblem("pattern", "give either pattern or handler, not both")
            if data.get("pattern") is None and data.get("handler") is None:
                raise KeyProblem("handler", 'missing; give handler = "module.function" or pattern')
        return data

    @model_validator(mode="after")
    def _handler_of_pattern(self) -> FunctionConfig:
        if self.pattern and not self.handler:
            object.__setattr__(self, "handler", f"handlers.{self.pattern}_handler.lambda_handler")
        if (self.reserved_concurrency is not None
                and self.provisioned_concurrency > self.reserved_concurrency):
            raise KeyProblem("provisioned_concurrency",
                             f"must not exceed reserved_concurrency ({self.reserved_concurrency}),"
                             f" got {self.provisioned_concurrency}")
        return self

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if not isinstance(value, Mapping) or not all(
                isinstance(v, str | int | float | bool) for v in value.values()):
            raise ValueError("expected a table of strings")
        return {str(k): _env_str(v) for k, v in value.items()}


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
