"""The example suite (``examples/pytest-suite``) run as a user runs it, on both backends.

It uses the ``lambda_rds_stack`` fixture of connstorm's pytest plugin, found
through the installed entry point: nothing is imported by the suite itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from connstorm.local_stack.containers import OWNER_LABEL
from tests.docker.conftest import BUILD_TIMEOUT_S, ROOT, containers_labelled, engine_problem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 600)]
EXAMPLE = ROOT / "examples" / "pytest-suite"


@pytest.mark.parametrize("backend", ["native", pytest.param("docker", marks=pytest.mark.docker)])
def test_example_suite_passes_with_the_fixture(backend: str,
                                               request: pytest.FixtureRequest) -> None:
    env = {**os.environ, "TESTCONTAINERS_RYUK_DISABLED": "true"}
    if backend == "docker":
        problem = engine_problem()
        if problem is not None:
            pytest.skip(problem)
        env["CONNSTORM_IMAGE"] = request.getfixturevalue("connstorm_image")
    before = set(containers_labelled(OWNER_LABEL)) if backend == "docker" else set()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--connstorm-backend", backend], cwd=EXAMPLE, env=env, capture_output=True,
        text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
    if backend == "docker":
        assert set(containers_labelled(OWNER_LABEL)) <= before


def test_plugin_rejects_an_unknown_backend_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--connstorm-backend", "podman"], cwd=EXAMPLE, capture_output=True, text=True,
        timeout=120, check=False)
    assert result.returncode == 4
    assert "--connstorm-backend: invalid choice: 'podman'" in result.stderr
