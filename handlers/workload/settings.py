"""Database settings read from environment variables, exactly as on AWS.

A function deployed to AWS gets these from its configuration; under the local
stack the Stack sets the ``DB_*`` ones and the emulator sets Lambda's own
(``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_LOG_STREAM_NAME``). Nothing here
knows which of the two it runs on.

``DB_SSLROOTCERT`` is checked here, at Init, because libpq would only say so at
the first connect of every environment, inside a request. On AWS the template
sets ``rds-ca-bundle.pem``, the file ``connstorm package --rds-ca-bundle`` adds
to the zip; Lambda unpacks the zip into ``LAMBDA_TASK_ROOT`` (AWS, "Defined
runtime environment variables": "The path to your Lambda function code").

=========================  ==============================================================
variable                   meaning
=========================  ==============================================================
``DB_HOST``                server or proxy host (required unless the secret has it)
``DB_PORT``                port, default 5432
``DB_NAME``                database, default ``app``
``DB_USER``                role (required unless it comes from the secret)
``DB_PASSWORD``            password (patterns that take it from the environment)
``DB_SECRET_ARN``          Secrets Manager secret (``secrets_cached``)
``DB_IAM_AUTH``            ``true``: the password is an RDS IAM token (``iam_token``)
``DB_CONNECT_TIMEOUT_S``   connect timeout, seconds, default 5
``DB_SSLMODE``             libpq ``sslmode``, default ``prefer``
``DB_SSLROOTCERT``         CA bundle for ``verify-ca``/``verify-full``; a relative path is
                           read from ``LAMBDA_TASK_ROOT`` (the unpacked zip), else the
                           working folder; it must exist
``DB_STATEMENT_TIMEOUT_MS`` server-side statement timeout, default 0 (none); the
                           resilient pattern uses 5000 when unset
``DB_POOL_SIZE``           pool size per environment (``in_process_pool``), default 2
``DB_APPLICATION_NAME``    prefix of ``application_name``, default the function name
``APP_WORK_MS``            milliseconds each answered request spends after its database
                           work, holding no connection and no transaction (the calls to
                           other services a real function makes), default 0
=========================  ==============================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: PostgreSQL truncates application_name to NAMEDATALEN - 1 bytes.
APPLICATION_NAME_MAX = 63
ENV_ID_CHARS = 12
_TRUE = frozenset({"1", "true", "yes", "on"})
_STREAM_ID = re.compile(r"\]([0-9a-fA-F]{12,})$")


class SettingsError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class DbSettings:
    """Where and how to connect; built once per environment by :meth:`from_env`."""

    host: str = ""
    port: int = 5432
    dbname: str = "app"
    user: str | None = None
    password: str | None = None
    secret_arn: str | None = None
    iam_auth: bool = False
    connect_timeout_s: float = 5.0
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    statement_timeout_ms: int | None = None
    pool_size: int = 2
    application_name: str = "lambda"
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DbSettings:
        """Read the settings; raises :class:`SettingsError` naming the bad variable."""
        env = os.environ if environ is None else environ
        host = env.get("DB_HOST", "").strip()
        secret_arn = env.get("DB_SECRET_ARN", "").strip() or None
        if not host and secret_arn is None:
            raise SettingsError("DB_HOST is not set (and no DB_SECRET_ARN to read it from)")
        timeout_ms = env.get("DB_STATEMENT_TIMEOUT_MS", "").strip()
        return cls(
            host=host,
            port=_int(env, "DB_PORT", 5432, lo=1, hi=65535),
            dbname=env.get("DB_NAME", "").strip() or "app",
            user=env.get("DB_USER", "").strip() or None,
            password=env.get("DB_PASSWORD") or None,
            secret_arn=secret_arn,
            iam_auth=env.get("DB_IAM_AUTH", "").strip().lower() in _TRUE,
            connect_timeout_s=_float(env, "DB_CONNECT_TIMEOUT_S", 5.0),
            sslmode=env.get("DB_SSLMODE", "").strip() or "prefer",
            sslrootcert=ca_bundle(env),
            statement_timeout_ms=(_int(env, "DB_STATEMENT_TIMEOUT_MS", 0, lo=0)
                                  if timeout_ms else None),
            pool_size=_int(env, "DB_POOL_SIZE", 2, lo=1, hi=1000),
            application_name=application_name(env),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )


def ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The absolute path ``DB_SSLROOTCERT`` names, or None when unset; it must be a file."""
    raw = environ.get("DB_SSLROOTCERT", "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_absolute():
        path = Path(environ.get("LAMBDA_TASK_ROOT", "").strip() or os.getcwd()) / path
    if not path.is_file():
        raise SettingsError(
            f"DB_SSLROOTCERT: {path} is not a file (build the zip with `connstorm package "
            "--rds-ca-bundle FILE`, or deploy with DbSslMode=require)")
    return str(path)


def work_seconds(environ: Mapping[str, str] | None = None) -> float:
    """``APP_WORK_MS`` in seconds: how long an answered request takes besides its queries.

    Why it exists: concurrency is requests/s times duration, and environments (so,
    under the direct pattern, connections) follow concurrency. Locally a query
    answers in a millisecond, so the duration, and with it the number of
    environments a load needs, would depend on how fast the machine is; a fixed
    time outside the database makes it depend on the load alone, as on AWS, where
    a function's duration is mostly the calls it waits for.
    """
    env = os.environ if environ is None else environ
    return _int(env, "APP_WORK_MS", 0, lo=0, hi=900_000) / 1000


def environment_id(environ: Mapping[str, str] | None = None) -> str:
    """The execution environment's id: the hex after ``[$LATEST]`` in the log stream name.

    Lambda names each environment's log stream ``YYYY/MM/DD/[$LATEST]<32 hex>``,
    and that is the only per-environment identity a function can see. Outside
    Lambda (a plain script) there is none: the process id stands in.
    """
    env = os.environ if environ is None else environ
    match = _STREAM_ID.search(env.get("AWS_LAMBDA_LOG_STREAM_NAME", ""))
    if match:
        return match.group(1).lower()
    return f"pid{os.getpid()}"


def application_name(environ: Mapping[str, str] | None = None) -> str:
    """``<prefix>:<first 12 hex of the environment id>``, at most 63 characters.

    The prefix is ``DB_APPLICATION_NAME``, else the function name, else ``lambda``;
    the prefix is cut, never the id, so collectors can always split on the last ``:``.
    """
    env = os.environ if environ is None else environ
    prefix = (env.get("DB_APPLICATION_NAME", "").strip()
              or env.get("AWS_LAMBDA_FUNCTION_NAME", "").strip() or "lambda")
    suffix = ":" + environment_id(env)[:ENV_ID_CHARS]
    return prefix[: APPLICATION_NAME_MAX - len(suffix)] + suffix


def _int(env: Mapping[str, str], name: str, default: int, lo: int | None = None,
         hi: int | None = None) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {text!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SettingsError(f"{name}: {value} is out of range")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}: expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be positive, got {text!r}")
    return value
