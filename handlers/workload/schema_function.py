"""The one-shot function that installs the workload schema on AWS (``deploy/template.yaml``).

Locally the Stack calls :func:`handlers.workload.schema.install` as soon as
PostgreSQL is up. On AWS the instance sits in private subnets no laptop
reaches, so the template deploys this function in the same VPC and users
invoke it once after the deploy::

    aws lambda invoke --function-name <SchemaFunctionName> --payload '{"products": 1000}' out.json

It reads the database credentials from the Secrets Manager secret
(``DB_SECRET_ARN``; the template generates them), connects straight to the
instance (``DB_HOST``) as the secret's user, the owner of database ``app``, and

1. installs the schema and seed rows (idempotent: running it again is harmless);
2. creates the login role ``DB_IAM_USER`` (default ``connstorm_iam``) that pattern
   ``iam_token`` uses when the functions connect to the instance directly,
   granted ``rds_iam`` (so RDS accepts IAM tokens for it, and only those) and
   the workload's table privileges. A role granted ``rds_iam`` can no longer log
   in with a password, so it cannot be the secret's user, which RDS Proxy uses.

Its answer names the counts and the role, never the password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import schema
from .settings import DbSettings, SettingsError

#: The role RDS grants to users that log in with IAM tokens (exists on RDS only).
RDS_IAM_ROLE = "rds_iam"
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


def credentials(settings: DbSettings) -> tuple[str, str]:
    """``(username, password)`` from the secret; boto3 finds the endpoint and region."""
    import boto3  # Lambda provides it; imported here so the module imports without it

    client = boto3.client("secretsmanager", region_name=settings.region)
    doc = json.loads(client.get_secret_value(SecretId=settings.secret_arn)["SecretString"])
    try:
        return str(doc["username"]), str(doc["password"])
    except KeyError as exc:
        raise SettingsError(f"DB_SECRET_ARN: the secret has no {exc.args[0]!r} key") from None


def install_iam_user(conn: psycopg.Connection[Any], user: str) -> bool:
    """Create ``user`` (LOGIN) if missing and grant it the workload's tables.

    Returns whether ``rds_iam`` was granted: on RDS always; on a plain PostgreSQL
    (tests) the role does not exist and the user is left without it.
    """
    name = sql.Identifier(user)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
    has_rds_iam = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                               (RDS_IAM_ROLE,)).fetchone() is not None
    if has_rds_iam:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(RDS_IAM_ROLE), name))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                         "TO {}").format(name))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}")
                 .format(name))
    return has_rds_iam


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Install the schema, seed it and create the IAM role; the answer has no secret in it."""
    env = os.environ
    products = products_wanted(event, env)
    settings = DbSettings.from_env(env)
    if settings.secret_arn is None:
        raise SettingsError("DB_SECRET_ARN is not set (schema function)")
    user, password = credentials(settings)
    iam_user = env.get("DB_IAM_USER", "").strip() or DEFAULT_IAM_USER
    dsn = make_conninfo(
        host=settings.host, port=settings.port, dbname=settings.dbname, user=user,
        password=password, sslmode=settings.sslmode, connect_timeout=10,
        application_name=settings.application_name)
    schema.install(dsn, products)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rds_iam = install_iam_user(conn, iam_user)
    return {"products": products, "accounts": schema.accounts_for(products),
            "iam_user": iam_user, "rds_iam_granted": rds_iam}
