"""``docker-compose.yml`` validated by the compose tool itself, without an engine.

These run in the ordinary test run (not marked ``docker``): ``config`` only
parses and interpolates; they skip when no compose tool is installed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docker.conftest import ROOT, compose_command

SERVICES = {"postgres", "pgbouncer", "emulator", "locust-master", "locust-worker", "loadtest"}


def compose_config(*files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    key = (files, tuple(sorted((env or {}).items())))
    if key not in _CACHE:
        _CACHE[key] = _compose_config(files, env)
    return _CACHE[key]


_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}


def _compose_config(files: tuple[str, ...], env: dict[str, str] | None) -> dict[str, Any]:
    command = compose_command()
    if command is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed")
    argv = [*command, "--project-directory", str(ROOT)]
    for name in files:
        argv += ["-f", str(ROOT / name)]
    # `--profile` makes v2 list profiled services too; v1 lists them anyway.
    if command[-1] == "compose":
        argv += ["--profile", "loadtest"]
    result = subprocess.run([*argv, "config"], capture_output=True, text=True, timeout=60,
                            check=False, cwd=ROOT, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert isinstance(doc, dict)
    return doc


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host_ip, published port) of each port mapping, in either tool's output form."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            parts = port.split(":")
            out.append((parts[0], parts[1]))
        else:
            out.append((str(port.get("host_ip")), str(port.get("published"))))
    return out


def test_compose_file_is_valid_with_every_service() -> None:
    doc = compose_config("docker-compose.yml")
    assert set(doc["services"]) == SERVICES
    assert set(doc["volumes"]) == {"pgdata", "secrets"}


DEFAULT_FILES = ("docker-compose.yml", "docker-compose.override.yml")


def test_compose_publishes_ports_on_loopback_only() -> None:
    # What `docker compose up` reads by itself: the file and its override.
    doc = compose_config(*DEFAULT_FILES)
    for name, service in doc["services"].items():
        for host_ip, _ in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"
    assert published(doc["services"]["postgres"]) == [("127.0.0.1", "15432")]


def test_compose_ports_follow_the_environment() -> None:
    doc = compose_config(*DEFAULT_FILES, env={"CONNSTORM_PG_PORT": "25432",
                                                    "CONNSTORM_LOCUST_WEB_PORT": "28089"})
    assert published(doc["services"]["postgres"]) == [("127.0.0.1", "25432")]
    assert published(doc["services"]["locust-master"]) == [("127.0.0.1", "28089")]
    env = doc["services"]["pgbouncer"]["environment"]
    assert str(env["CONNSTORM_PG_PORT"]) == "25432"


def test_compose_waits_for_health_before_starting_dependents() -> None:
    doc = compose_config("docker-compose.yml")
    services = doc["services"]
    for name in ("postgres", "pgbouncer", "emulator", "locust-master"):
        assert "test" in services[name]["healthcheck"], name
    assert services["emulator"]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    assert services["locust-worker"]["depends_on"]["locust-master"]["condition"] == \
        "service_healthy"
    # Scaling needs workers without fixed names or ports.
    assert "container_name" not in services["locust-worker"]
    assert "ports" not in services["locust-worker"]


def test_hostnet_override_moves_every_service_to_host_networking() -> None:
    doc = compose_config("docker-compose.yml", "docker-compose.hostnet.yml")
    for name, service in doc["services"].items():
        assert service["network_mode"] == "host", name
        # docker-compose 1.x refuses published ports on the host network.
        assert "ports" not in service, name
        env = service["environment"]
        assert env["CONNSTORM_LISTEN_ADDR"] == "127.0.0.1", name
        assert env["CONNSTORM_PG_HOST"] == "127.0.0.1", name
        assert str(env["CONNSTORM_PG_PORT"]) == "15432", name


def test_compose_mounts_the_scenario_folder_given() -> None:
    folder = Path(ROOT / "tests" / "docker" / "scenarios")
    doc = compose_config("docker-compose.yml", env={"CONNSTORM_SCENARIOS_DIR": str(folder)})
    volumes = doc["services"]["emulator"]["volumes"]
    texts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in volumes]
    assert any(t.startswith(f"{folder}:/scenarios") for t in texts), texts
