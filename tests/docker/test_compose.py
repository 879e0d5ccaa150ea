"""The compose stack end to end, with the host-network override (all on loopback).

One stack serves the scenario ``both-paths`` (the same handlers direct and
through PgBouncer); a short headless load through each path shows
``too_many_connections`` directly and none through the pool; ``down -v`` leaves
no container, network or volume.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connstorm.local_stack.ports import free_port
from tests.docker.conftest import BUILD_TIMEOUT_S, CONTAINER_UID, ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 1200)]

SCENARIOS = ROOT / "tests" / "docker" / "scenarios"
PROJECT_LABEL = "com.docker.compose.project"


@dataclass
class ComposeStack:
    """One compose project of this test, with its ports and run folder."""

    argv: list[str]
    env: dict[str, str]
    project: str
    runs: Path

    def __call__(self, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], capture_output=True, text=True, env=self.env,
                              cwd=ROOT, timeout=timeout_s, check=False)

    def port(self, name: str) -> int:
        return int(self.env[f"CONNSTORM_{name.upper()}_PORT"])

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes still carrying the project's label."""
        out: dict[str, list[str]] = {}
        for kind, argv in (("containers", ["docker", "ps", "-aq"]),
                           ("networks", ["docker", "network", "ls", "-q"]),
                           ("volumes", ["docker", "volume", "ls", "-q"])):
            result = subprocess.run([*argv, "--filter", f"label={PROJECT_LABEL}={self.project}"],
                                    capture_output=True, text=True, timeout=60, check=True)
            out[kind] = result.stdout.split()
        return out


@pytest.fixture
def compose_stack(compose: list[str], connstorm_image: str,
                  tmp_path: Path) -> Iterator[ComposeStack]:
    project = f"connstorm-test-{secrets.token_hex(4)}"
    runs = tmp_path / "runs"
    runs.mkdir()
    # The containers write as their own non-root user.
    if os.geteuid() == 0:
        os.chown(runs, CONTAINER_UID, CONTAINER_UID)
    else:
        runs.chmod(0o777)
    env = {
        **os.environ,
        "CONNSTORM_IMAGE": connstorm_image,
        "CONNSTORM_SCENARIOS_DIR": str(SCENARIOS),
        "CONNSTORM_SCENARIO": "/scenarios/both-paths.toml",
        "CONNSTORM_RUNS_DIR": str(runs),
        "CONNSTORM_UID": str(CONTAINER_UID),
        "CONNSTORM_GID": str(CONTAINER_UID),
        # Creating a container copies the whole image with vfs storage: slow.
        "COMPOSE_HTTP_TIMEOUT": "600",
    }
    # Host networking: every service needs a port nobody else on the machine uses.
    for name in ("pg", "pgbouncer", "emulator", "locust_master", "locust_web"):
        env[f"CONNSTORM_{name.upper()}_PORT"] = str(free_port())
    argv = [*compose, "-p", project, "--project-directory", str(ROOT),
            "-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.hostnet.yml")]
    stack = ComposeStack(argv=argv, env=env, project=project, runs=runs)
    try:
        yield stack
    finally:
        stack("down", "-v", "--remove-orphans", "-t", "10", timeout_s=300)


def load(stack: ComposeStack, prefix: str) -> dict[str, Any]:
    """A short headless run through ``/<prefix>``; its summary's variant."""
    target = f"http://127.0.0.1:{stack.port('emulator')}/{prefix}"
    result = stack("run", "--rm", "-T", "--no-deps", "loadtest", "--target-url", target,
                   "--users", "30", "--spawn-rate", "15", "--duration", "10s",
                   "--out", f"/runs/{prefix}")
    summary_path = stack.runs / prefix / "summary.json"
    # 6: a threshold (too_many_connections = 0) broke, which the direct path must do.
    assert result.returncode in (0, 6), result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    variant: dict[str, Any] = summary["variants"][0]
    return variant


def test_compose_reproduces_the_storm_directly_and_not_through_pgbouncer(
        compose_stack: ComposeStack) -> None:
    stack = compose_stack
    # GIVEN the stack up with the host-network override, healthy in order
    up = stack("up", "-d", "--no-build", "postgres", "pgbouncer", "emulator")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]

    # WHEN load goes through PgBouncer first (its pool takes 10 of 17 ordinary
    # slots), then straight to PostgreSQL
    pooled = load(stack, "pooled")
    direct = load(stack, "direct")

    # THEN only the direct path runs out of connections
    assert pooled["requests"] > 0
    assert pooled["errors_by_kind"].get("too_many_connections", 0) == 0
    assert direct["requests"] > 0
    assert direct["errors_by_kind"].get("too_many_connections", 0) > 0
    assert direct["peak_db_connections"] <= direct["max_connections"] == 20

    # AND down -v leaves nothing of the project behind
    down = stack("down", "-v", "--remove-orphans", "-t", "10")
    assert down.returncode == 0, down.stderr[-3000:]
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
