"""The docker backend's failures against a real engine: one line each, nothing left.

The same cases as ``tests/local_stack/test_containers.py`` (which runs them
against an engine stand-in everywhere), where a Docker engine answers: a reaper
whose image no registry serves (a closed loopback port as the registry), and an
image that was never built.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connstorm.errors import ExitCode
from connstorm.local_stack.containers import OWNER_LABEL
from connstorm.local_stack.ports import free_port
from tests.docker.conftest import containers_labelled, engine_problem

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(autouse=True)
def _engine() -> None:
    problem = engine_problem()
    if problem is not None:
        pytest.skip(problem)


def _up(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TESTCONTAINERS_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "connstorm", "up", "--backend", "docker",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=full_env, check=False)


def _one_line(result: subprocess.CompletedProcess[str], code: ExitCode) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    # A notice that stale scratch folders of dead runs were cleaned may come first.
    lines = [line for line in result.stderr.strip().splitlines()
             if " connstorm.local_stack.scratch " not in line]
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, result.stderr
    return lines[0]


def test_reaper_without_registry_is_one_line(tmp_path: Path, connstorm_image: str) -> None:
    before = set(containers_labelled(OWNER_LABEL))
    registry = f"127.0.0.1:{free_port()}"
    result = _up(tmp_path, {"RYUK_CONTAINER_IMAGE": f"{registry}/testcontainers/ryuk:none",
                            "CONNSTORM_IMAGE": connstorm_image})
    line = _one_line(result, ExitCode.ENVIRONMENT)
    assert "TESTCONTAINERS_RYUK_DISABLED=true" in line
    assert set(containers_labelled(OWNER_LABEL)) <= before


def test_missing_image_is_one_line(tmp_path: Path) -> None:
    result = _up(tmp_path, {"TESTCONTAINERS_RYUK_DISABLED": "true",
                            "CONNSTORM_IMAGE": "connstorm-never-built:none"})
    line = _one_line(result, ExitCode.ENVIRONMENT)
    assert "docker build -t connstorm-never-built:none ." in line
