"""The one-shot function that installs the workload schema on AWS (``deploy/template.yaml``).

Locally the Stack calls :func:`handlers.workload.schema.install` as soon as
PostgreSQL is up. On AWS the instance sits in private subnets no laptop
reaches, so the template deploys this function in the same VPC and users
invoke it once after the deploy::

    aws lambda invoke --function-name <SchemaFunctionName> --payload '{"products": 1000}' out.json

It reads the master user's credentials from ``DB_SECRET_ARN`` and the
application role's from ``DB_APP_SECRET_ARN`` (the template generates both),
connects straight to the instance (``DB_HOST``) as the master user, the owner of
database ``app``, and (see :mod:`.roles`)

1. installs the schema and seed rows (idempotent: running it again is harmless);
2. creates the application role named in the app secret, with its password,
   that RDS Proxy and the workload log in as (a second run finds it and only
   sets its password again);
3. creates the login role ``DB_IAM_USER`` (default ``connstorm_iam``) that pattern
   ``iam_token`` uses when the functions connect to the instance directly,
   granted ``rds_iam``;

both roles granted only the workload's table privileges. Until it has run, the
proxy cannot log in (the role does not exist yet). Its answer names the counts
and the roles, never a password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from . import schema
from .roles import install_app_user, install_iam_user
from .settings import DbSettings, SettingsError

DEFAULT_IAM_USER = "connstorm_iam"
DEFAULT_PRODUCTS = 1000
MAX_PRODUCTS = 10_000_000


def products_wanted(event: Any, environ: Mapping[str, str]) -> int:
    """The event's ``products``, else ``SEED_PRODUCTS``, else 1000; a bad value names itself."""
    raw: Any = event.get("products") if isinstance(event, Mapping) else None
    source = "event products"
    if raw is None:
        raw, source = environ.get("SEED_PRODUCTS", "").strip() or DEFAULT_PRODUCTS, "SEED_PRODUCTS"
    if isinstance(raw, bool):
        raise SettingsError(f"{source}: expected an integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: expected an integer, got {raw!r}") from None
    if not 0 <= value <= MAX_PRODUCTS:
        raise SettingsError(f"{source}: {value} is out of range 0..{MAX_PRODUCTS}")
    return value


def credentials(settings: DbSettings, secret_arn: str, variable: str) -> tuple[str, str]:
    """``(username, password)`` from a secret; boto3 finds the endpoint and region."""
    import boto3  # Lambda provides it; imported here so the module imports without it

    client = boto3.client("secretsmanager", region_name=settings.region)
    doc = json.loads(client.get_secret_value(SecretId=secret_arn)["SecretString"])
    try:
        return str(doc["username"]), str(doc["password"])
    except KeyError as exc:
        raise SettingsError(f"{variable}: the secret has no {exc.args[0]!r} key") from None


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Install the schema, seed it and create the roles; the answer has no secret in it."""
    env = os.environ
    products = products_wanted(event, env)
    settings = DbSettings.from_env(env)
    if settings.secret_arn is None:
        raise SettingsError("DB_SECRET_ARN is not set (schema function)")
    app_secret_arn = env.get("DB_APP_SECRET_ARN", "").strip()
    if not app_secret_arn:
        raise SettingsError("DB_APP_SECRET_ARN is not set (schema function)")
    user, password = credentials(settings, settings.secret_arn, "DB_SECRET_ARN")
    app_user, app_password = credentials(settings, app_secret_arn, "DB_APP_SECRET_ARN")
    if app_user == user:
        raise SettingsError(f"DB_APP_SECRET_ARN: names the master user {user!r}; "
                            "the application role must be a role of its own")
    iam_user = env.get("DB_IAM_USER", "").strip() or DEFAULT_IAM_USER
    dsn = make_conninfo(
        host=settings.host, port=settings.port, dbname=settings.dbname, user=user,
        password=password, sslmode=settings.sslmode, sslrootcert=settings.sslrootcert,
        connect_timeout=10, application_name=settings.application_name)
    schema.install(dsn, products)
    with psycopg.connect(dsn, autocommit=True) as conn:
        created = install_app_user(conn, app_user, app_password)
        rds_iam = install_iam_user(conn, iam_user)
    return {"products": products, "accounts": schema.accounts_for(products),
            "app_user": app_user, "app_user_created": created,
            "iam_user": iam_user, "rds_iam_granted": rds_iam}
