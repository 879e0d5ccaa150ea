"""Fixtures shared by every test area: run folders and real servers.

* ``tmp_run_dir``: a fresh, not yet created run folder.
* ``postgres_factory``: ``make(**postgres_keys) -> PostgresServer``, started;
  every server it made is stopped when the test ends.
* ``pgbouncer_factory``: ``make(postgres, **pgbouncer_keys) -> PgBouncerServer``.
* ``postgres_server``: one default cluster for the whole session (read-only use:
  make your own with the factory when you change settings or exhaust slots).
* ``scenario_with``: ``scenario_with("direct-small", postgres={...}, pgbouncer={...})``
  loads a built-in scenario with overrides, validated like ``--set``.

Keys are scenario keys (``[postgres]``/``[pgbouncer]`` of a scenario file), so
the server gets them exactly as ``connstorm up`` would.

The longest tests run first (see :func:`pytest_collection_modifyitems`), so that
``make test``'s workers (pytest-xdist) are not left waiting on one long test at
the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from connstorm.local_stack.pgbouncer import PgBouncerServer
from connstorm.local_stack.postgres import PostgresServer
from connstorm.scenario import Scenario, load_scenario


def _rank(item: pytest.Item) -> int:
    """0: container tests (minutes, mostly the engine's waiting), 1: other slow ones, 2: rest."""
    if item.get_closest_marker("docker") is not None:
        return 0
    return 1 if item.get_closest_marker("slow") is not None else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first, each group in its usual order: the workers finish close together.

    Every xdist worker sorts the same collection the same way (a stable sort of a
    fixed order), as xdist requires.
    """
    items.sort(key=_rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the container image now when container tests are to run.

    One process does it: the only one, or xdist's first worker (``gw0``).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker not in (None, "gw0") or session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("docker") for item in session.items):
        return
    from tests.docker.conftest import start_early_build

    start_early_build(session.config._tmp_path_factory)  # type: ignore[attr-defined]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def scenario_overrides(**sections: Mapping[str, Any]) -> list[str]:
    """``--set`` items for ``section={key: value}`` keyword arguments."""
    return [f"{section}.{key}={_toml_value(value)}"
            for section, keys in sections.items() for key, value in keys.items()]


@pytest.fixture
def scenario_with() -> Callable[..., Scenario]:
    """Load a built-in scenario with per-section overrides."""

    def load(name: str = "direct-small", **sections: Mapping[str, Any]) -> Scenario:
        return load_scenario(name, overrides=scenario_overrides(**sections))

    return load


@pytest.fixture
def tmp_run_dir(tmp_path: Path) -> Path:
    """A run folder path inside the test's temporary folder (not created yet)."""
    return tmp_path / "run"


@pytest.fixture
def postgres_factory(tmp_path: Path) -> Iterator[Callable[..., PostgresServer]]:
    """Start PostgreSQL clusters with scenario ``[postgres]`` keys; all stopped at the end."""
    with ExitStack() as servers:
        count = 0

        def make(**keys: Any) -> PostgresServer:
            nonlocal count
            count += 1
            keys.setdefault("max_connections", 20)
            scenario = load_scenario("direct-small", overrides=scenario_overrides(
                postgres=keys, pgbouncer={"enabled": False}))
            return servers.enter_context(
                PostgresServer(scenario.postgres, tmp_path / f"pg{count}", source="test"))

        yield make


@pytest.fixture
def pgbouncer_factory(tmp_path: Path) -> Iterator[Callable[..., PgBouncerServer]]:
    """Start PgBouncers in front of a given server with scenario ``[pgbouncer]`` keys."""
    with ExitStack() as servers:
        count = 0

        def make(postgres: Any, **keys: Any) -> PgBouncerServer:
            nonlocal count
            count += 1
            keys.setdefault("default_pool_size", 2)
            scenario = load_scenario("pgbouncer-transaction",
                                     overrides=scenario_overrides(pgbouncer=keys))
            return servers.enter_context(
                PgBouncerServer(scenario.pgbouncer, postgres, tmp_path / f"pb{count}"))

        yield make


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One default cluster (max_connections 20) shared by the session."""
    scenario = load_scenario("direct-small")
    with PostgresServer(scenario.postgres, tmp_path_factory.mktemp("shared-pg")) as server:
        yield server


@pytest.fixture
def private_scratch_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A shared scratch root of the test's own (``CONNSTORM_SCRATCH_DIR``), on tmpfs.

    A crashed run's scratch folder in the machine's shared root is fair game for every
    stack that starts: another xdist worker's stack would clean it before the test
    looks at it.
    """
    root = Path("/dev/shm") / f"connstorm-test-{secrets.token_hex(4)}"
    monkeypatch.setenv("CONNSTORM_SCRATCH_DIR", str(root))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
