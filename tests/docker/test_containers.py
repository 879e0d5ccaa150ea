"""The testcontainers backend: the same servers, readiness, teardown and stack.json.

The stack test is parametrised over both backends, so the docker one is held to
exactly what the native one does.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from connstorm.error_kinds import classify_message
from connstorm.local_stack.containers import (
    OWNER_LABEL,
    PostgresContainer,
    docker_client,
    remove_orphans,
)
from connstorm.local_stack.ports import port_in_use
from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario
from tests.docker.conftest import BUILD_TIMEOUT_S, containers_labelled, engine_problem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 600)]

#: Ryuk needs an image from a registry; these tests clean up themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(params=["native", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn; the docker one only where an engine answers."""
    if request.param == "docker":
        problem = engine_problem()
        if problem is not None:
            pytest.skip(problem)
        request.getfixturevalue("connstorm_image")
    return str(request.param)


def mine() -> list[str]:
    return containers_labelled(f"{OWNER_LABEL}={os.getpid()}")


def test_stack_serves_both_paths_and_leaves_nothing_behind(backend: str, tmp_path: Path) -> None:
    # GIVEN a scenario with a small transaction pool, on the backend under test
    scenario = load_scenario("pgbouncer-transaction", overrides=[
        f'postgres.backend="{backend}"', "pgbouncer.default_pool_size=2",
        "postgres.seed_products=50"])
    stack = Stack(scenario, tmp_path / "run")
    # WHEN it starts
    with stack:
        info = json.loads((tmp_path / "run" / "stack.json").read_text())
        # THEN stack.json is private and says where everything is
        assert stat.S_IMODE((tmp_path / "run" / "stack.json").stat().st_mode) == 0o600
        for key in ("postgres_dsn", "postgres_admin_dsn", "pgbouncer_dsn",
                    "pgbouncer_admin_dsn", "api_url"):
            assert urlsplit(info[key]).hostname == "127.0.0.1", key
        # AND both paths and the API answer
        with psycopg.connect(info["postgres_dsn"]) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("app",)
        with psycopg.connect(info["pgbouncer_dsn"]) as conn:
            assert conn.execute("SELECT count(*) FROM products").fetchone() == (50,)
        with psycopg.connect(info["pgbouncer_admin_dsn"], autocommit=True,
                             prepare_threshold=None) as console:
            cur = console.execute("SHOW POOLS")
            names = [d.name for d in cur.description or ()]
            modes = {row[names.index("pool_mode")] for row in cur.fetchall()}
            assert "transaction" in modes
        with urllib.request.urlopen(info["api_url"] + "/health", timeout=30) as response:
            assert response.status == 200
        ports = [stack.postgres.port, stack.pgbouncer.port]  # type: ignore[union-attr]
        if backend == "docker":
            assert len(mine()) == 2
    # AND after stop nothing listens and no container is left
    assert not any(port_in_use(p) for p in ports)
    if backend == "docker":  # the native stack never asks for an engine
        assert mine() == []
    assert (tmp_path / "run" / "logs" / "postgres.log").is_file()


@pytest.mark.docker
def test_postgres_container_refuses_past_max_connections(connstorm_image: str,
                                                         tmp_path: Path) -> None:
    scenario = load_scenario("direct-small", overrides=[
        "postgres.max_connections=5", "postgres.superuser_reserved_connections=2",
        "pgbouncer.enabled=false"])
    with PostgresContainer(scenario.postgres, tmp_path, source="test") as pg:
        held = [psycopg.connect(pg.app_dsn) for _ in range(3)]
        try:
            with pytest.raises(psycopg.OperationalError) as refused:
                psycopg.connect(pg.app_dsn, connect_timeout=5)
            assert "remaining connection slots are reserved" in str(refused.value)
            assert classify_message(str(refused.value)) == "too_many_connections"
            # The superuser still gets in through its reserved slots.
            with psycopg.connect(pg.admin_dsn) as admin:
                assert admin.execute("SHOW max_connections").fetchone() == ("5",)
                # The image leaves LLVM out: a query costed for JIT still runs,
                # the server having turned JIT off for want of llvmjit.so
                admin.execute("SET jit = on")
                admin.execute("SET jit_above_cost = 0")
                total = admin.execute("SELECT sum(g) FROM generate_series(1, 1000) g")
                assert total.fetchone() == (500500,)
                assert admin.execute("SELECT pg_jit_available()").fetchone() == (False,)
        finally:
            for conn in held:
                conn.close()


@pytest.mark.docker
def test_bad_setting_fails_start_with_the_container_log(connstorm_image: str,
                                                        tmp_path: Path) -> None:
    from connstorm.errors import ScenarioError, StackError
    from connstorm.scenario import PostgresConfig

    config = PostgresConfig(settings={"max_connections": 5, "shared_bufers": "1MB"})
    with pytest.raises((StackError, ScenarioError)) as failed:
        PostgresContainer(config, tmp_path, source="bad.toml").__enter__()
    assert "shared_bufers" in str(failed.value)
    assert mine() == []


@pytest.mark.docker
def test_orphans_of_a_dead_process_are_removed(connstorm_image: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()

    def create(owner: int) -> str:
        created = subprocess.run(
            ["docker", "create", "--network", "host", "--label", f"{OWNER_LABEL}={owner}",
             connstorm_image, "true"], capture_output=True, text=True, timeout=300, check=True)
        return created.stdout.strip()

    orphan, owned = create(dead.pid), create(os.getpid())
    try:
        remove_orphans(docker_client())
        # The orphan is gone (this call or another worker's stack start removed it: every
        # stack start sweeps, so the count this call returns is not ours to assert) ...
        labelled = " ".join(containers_labelled(OWNER_LABEL))
        assert orphan[:12] not in labelled
        # ... and a container whose owner still runs is left alone
        assert owned[:12] in labelled
    finally:
        subprocess.run(["docker", "rm", "-f", orphan, owned], capture_output=True, timeout=60,
                       check=False)
