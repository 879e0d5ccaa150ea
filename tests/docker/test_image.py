"""The image: PostgreSQL 15 and PgBouncer from Debian, connstorm importable, not root."""

from __future__ import annotations

import subprocess

import pytest

from tests.docker.conftest import BUILD_TIMEOUT_S, CONTAINER_UID

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]


def test_image_runs_servers_as_non_root_with_debians_versions(connstorm_image: str) -> None:
    # One container for every check: with vfs storage each one copies the image.
    script = ("id -u; postgres --version; pgbouncer --version | head -1; "
              "python -c 'import connstorm, handlers, loadtests, local_stack, awslambdaric'; "
              "connstorm --version")
    result = subprocess.run(["docker", "run", "--rm", "--network", "host", connstorm_image,
                             "sh", "-c", script], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(CONTAINER_UID)
    assert lines[1].startswith("postgres (PostgreSQL) 15.")
    assert lines[2].startswith("PgBouncer 1.18")
    assert lines[3].startswith("connstorm ")
