"""pytest plugin registered as ``connstorm``: a throwaway Lambda + RDS stack per session.

Installed with connstorm (entry point ``pytest11``), so any test suite gets the
``lambda_rds_stack`` fixture: a session-scoped :class:`~connstorm.local_stack.stack.Stack`
(PostgreSQL, PgBouncer, the workload schema and the Lambda emulator of a
scenario), stopped when the session ends::

    def test_items_answer(lambda_rds_stack):
        url = lambda_rds_stack.info()["api_url"] + "/items/1"
        assert urllib.request.urlopen(url).status == 200

Options (command line > ini file > environment > default):

* ``--connstorm-backend native|docker`` (ini ``connstorm_backend``, env
  ``CONNSTORM_BACKEND``): processes on this machine, or PostgreSQL and PgBouncer
  as containers of the connstorm image (testcontainers); default: the scenario's
  ``[postgres] backend``.
* ``--connstorm-scenario NAME|FILE`` (ini ``connstorm_scenario``, env
  ``CONNSTORM_SCENARIO``): default ``pgbouncer-transaction``.

The plugin loads in every pytest run of a project that has connstorm installed,
this one included: it imports nothing heavy until the fixture is used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from connstorm.local_stack.stack import Stack

BACKENDS = ("native", "docker")
DEFAULT_SCENARIO = "pgbouncer-transaction"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's options and ini keys."""
    group = parser.getgroup("connstorm", "connstorm's lambda_rds_stack fixture")
    group.addoption("--connstorm-backend", choices=BACKENDS, default=None,
                    help="run the stack's PostgreSQL and PgBouncer as processes (native) or "
                         "containers (docker); default: the scenario's [postgres] backend")
    group.addoption("--connstorm-scenario", default=None, metavar="NAME|FILE",
                    help=f"scenario of lambda_rds_stack (default {DEFAULT_SCENARIO})")
    parser.addini("connstorm_backend", "default for --connstorm-backend", default="")
    parser.addini("connstorm_scenario", "default for --connstorm-scenario", default="")


def _setting(config: pytest.Config, name: str) -> str | None:
    option = config.getoption(f"connstorm_{name}", default=None)
    if option:
        return str(option)
    ini = config.getini(f"connstorm_{name}")
    if ini:
        return str(ini)
    return os.environ.get(f"CONNSTORM_{name.upper()}") or None


def stack_settings(config: pytest.Config) -> tuple[str, str | None]:
    """``(scenario, backend)`` as the options, ini keys and environment give them."""
    backend = _setting(config, "backend")
    if backend is not None and backend not in BACKENDS:
        raise pytest.UsageError(f"connstorm backend must be one of {', '.join(BACKENDS)}, "
                                f"got {backend!r}")
    return _setting(config, "scenario") or DEFAULT_SCENARIO, backend


@pytest.fixture(scope="session")
def lambda_rds_stack(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A started local stack for the whole session; its ``stack.json`` is in ``run_dir``.

    Use ``.info()`` for the URLs (``api_url``, ``postgres_dsn``, ``pgbouncer_dsn``...),
    ``.postgres`` and ``.pgbouncer`` for the servers. Tests share it: make
    your own Stack when a test changes settings or exhausts connections.
    """
    from connstorm.errors import ConnstormError
    from connstorm.local_stack.stack import Stack
    from connstorm.scenario import load_scenario

    name, backend = stack_settings(request.config)
    overrides = [f'postgres.backend="{backend}"'] if backend else []
    stack: Stack | None = None
    try:
        scenario = load_scenario(name, overrides=overrides)
        stack = Stack(scenario, tmp_path_factory.mktemp("connstorm-stack"))
        stack.start()
    except ConnstormError as exc:
        _stop_quietly(stack)
        pytest.fail(f"lambda_rds_stack: {exc}", pytrace=False)
    except BaseException:
        _stop_quietly(stack)
        raise
    try:
        yield stack
    finally:
        stack.stop()


def _stop_quietly(stack: Any) -> None:
    # The start error is the one worth reporting; a failing stop would hide it.
    if stack is not None:
        with contextlib.suppress(Exception):
            stack.stop()
