"""The driver matrix: one Lambda handler per Python driver configuration, each deployable as it is.

Each configuration is a folder here holding ``handler.py`` with
``lambda_handler(event, context)``; point a function at
``handlers.drivers.<name>.handler.lambda_handler`` and package its driver with
``connstorm package --driver <name>``. Every one answers the workload's routes
with the workload's statements (:mod:`.workload`), using its driver's defaults
except the one setting its name states: the point is what users get without
knowing. ``connstorm drivers`` runs them all directly, through each PgBouncer
and through the RDS Proxy stand-in, and says which work, pin, fail or exhaust.

Each folder's ``__init__.py`` names, in ``IMPORTS``, the only modules besides the
standard library and the workload that its code may import (its own driver);
``tests/handlers/test_imports.py`` holds them to it. This module is plain data,
so the command can list the configurations without importing any driver.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DriverConfig:
    """One configuration of the matrix."""

    #: The folder's name; ``--only`` takes it (or the driver's).
    name: str
    #: The driver as users name it (``summary.json``'s ``driver``).
    driver: str
    #: The setting that differs from the driver's defaults, or "defaults" (``config``).
    config: str
    #: Distributions whose versions the run records (and ``connstorm package`` installs).
    distributions: tuple[str, ...]
    #: What ``pip`` installs into the deployment zip for it.
    requirements: tuple[str, ...]
    #: Modules the emulator's zygote imports before forking this function's environments.
    preload: tuple[str, ...]

    @property
    def handler(self) -> str:
        """``handlers.drivers.<name>.handler.lambda_handler``."""
        return f"handlers.drivers.{self.name}.handler.lambda_handler"

    @property
    def label(self) -> str:
        """``psycopg 3: prepare_threshold=None``: one line of the matrix."""
        return f"{self.driver}: {self.config}"


_PSYCOPG = ("psycopg", "psycopg-binary")
_PSYCOPG_REQ = ("psycopg[binary]>=3.2",)
_SQLALCHEMY = ("SQLAlchemy", *_PSYCOPG)
_SQLALCHEMY_REQ = ("SQLAlchemy>=2.0", *_PSYCOPG_REQ)
_SQLALCHEMY_PRELOAD = ("psycopg", "sqlalchemy", "sqlalchemy.dialects.postgresql.psycopg")

CONFIGS: tuple[DriverConfig, ...] = (
    DriverConfig("psycopg_default", "psycopg 3", "defaults", _PSYCOPG, _PSYCOPG_REQ,
                 ("psycopg",)),
    DriverConfig("psycopg_no_prepare", "psycopg 3", "prepare_threshold=None", _PSYCOPG,
                 _PSYCOPG_REQ, ("psycopg",)),
    DriverConfig("psycopg_pool_1", "psycopg 3", "psycopg_pool ConnectionPool(min_size=1)",
                 (*_PSYCOPG, "psycopg-pool"), (*_PSYCOPG_REQ, "psycopg-pool>=3.2"),
                 ("psycopg", "psycopg_pool")),
    DriverConfig("psycopg2_default", "psycopg2", "defaults", ("psycopg2-binary",),
                 ("psycopg2-binary>=2.9",), ("psycopg2",)),
    DriverConfig("asyncpg_connection", "asyncpg", "a connection (defaults)", ("asyncpg",),
                 ("asyncpg>=0.29",), ("asyncpg", "asyncio")),
    DriverConfig("asyncpg_pool_1", "asyncpg", "create_pool(min_size=1, max_size=1)",
                 ("asyncpg",), ("asyncpg>=0.29",), ("asyncpg", "asyncio")),
    DriverConfig("pg8000_native", "pg8000", "native API (defaults)", ("pg8000",),
                 ("pg8000>=1.30",), ("pg8000.native",)),
    DriverConfig("sqlalchemy_nullpool", "SQLAlchemy 2 + psycopg 3", "NullPool", _SQLALCHEMY,
                 _SQLALCHEMY_REQ, _SQLALCHEMY_PRELOAD),
    DriverConfig("sqlalchemy_nullpool_pre_ping", "SQLAlchemy 2 + psycopg 3",
                 "NullPool, pool_pre_ping=True", _SQLALCHEMY, _SQLALCHEMY_REQ,
                 _SQLALCHEMY_PRELOAD),
    DriverConfig("sqlalchemy_queuepool_1", "SQLAlchemy 2 + psycopg 3", "QueuePool(pool_size=1)",
                 _SQLALCHEMY, _SQLALCHEMY_REQ, _SQLALCHEMY_PRELOAD),
    DriverConfig("sqlalchemy_queuepool_1_pre_ping", "SQLAlchemy 2 + psycopg 3",
                 "QueuePool(pool_size=1), pool_pre_ping=True", _SQLALCHEMY, _SQLALCHEMY_REQ,
                 _SQLALCHEMY_PRELOAD),
)
BY_NAME = {c.name: c for c in CONFIGS}
