"""SQLAlchemy 2 over psycopg 3 with NullPool: otherwise the defaults.

What it sends and what the matrix shows: :mod:`..sqlalchemy_common.engine`
(the four SQLAlchemy configurations share it). The defaults: ``create_engine()``'s
QueuePool (``pool_size=5``, ``max_overflow=10``), reset on return by rollback,
``pool_pre_ping=False``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.pool import NullPool

from ...workload.settings import DbSettings
from .. import workload
from ..sqlalchemy_common import engine

CONFIG = "sqlalchemy_nullpool"
SETTINGS = DbSettings.from_env()
ENGINE = engine.engine(SETTINGS, poolclass=NullPool)
_run = engine.runner(ENGINE)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """API Gateway proxy handler (payload 1.0 or 2.0)."""
    return workload.handle(event, context, config=CONFIG, run=_run, errors=engine.ERRORS)
