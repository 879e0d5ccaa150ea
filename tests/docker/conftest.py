"""Fixtures of the container tests: the engine, the image (built once), compose.

Tests here are marked ``docker`` and skip with a one-line reason when no Docker
engine answers. The image is built once per session, by the first of
pytest-xdist's workers that needs it while the others wait (``--network host``,
base image ``$CONNSTORM_BASE_IMAGE``, else a local ``debian-base:bookworm`` (made
with debootstrap by the machine's engine installer, see
``scripts/docker-engine.sh``) when it exists, else the Dockerfile's default);
later builds reuse the engine's layer cache.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.session_once import session_lock, shared_folder

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BASE_IMAGE = "debian-base:bookworm"
#: Building from scratch on a loaded 2-core machine with vfs storage is slow.
BUILD_TIMEOUT_S = 1500
CONTAINER_UID = 10001


def engine_problem() -> str | None:
    """None when a Docker engine answers, else why not (one line)."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command on PATH"
    try:
        result = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"],
                                capture_output=True, text=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 15 s"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine answers: {last}"
    return None


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when available, else ``docker-compose`` (v1), else None."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                               timeout=30, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True,
                          timeout=30, check=False).returncode == 0


def base_image() -> str | None:
    """The BASE_IMAGE build argument to use (None: the Dockerfile's default)."""
    explicit = os.environ.get("CONNSTORM_BASE_IMAGE")
    if explicit:
        return explicit
    return LOCAL_BASE_IMAGE if _image_exists(LOCAL_BASE_IMAGE) else None


def build_image(tag: str) -> None:
    """``docker build`` the repository as ``tag``; pytest.fail with the log tail on error."""
    argv = ["docker", "build", "--network", "host", "-t", tag]
    base = base_image()
    if base is not None:
        argv += ["--build-arg", f"BASE_IMAGE={base}"]
    # A TLS-intercepting proxy's CA (this machine has one) must reach pip in the build.
    # Exactly what the README's "$(cat .../*.crt)" passes (trailing newlines cut),
    # so that a build by hand and one by the tests share the layer cache.
    extra = "".join(Path(p).read_text(encoding="utf-8")
                    for p in sorted(glob.glob("/usr/local/share/ca-certificates/*.crt")))
    extra = extra.rstrip("\n")
    if extra:
        argv += ["--build-arg", f"EXTRA_CA_CERTS={extra}"]
    result = subprocess.run([*argv, str(ROOT)], capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        pytest.fail(f"docker build failed (status {result.returncode}):\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (one line) when no engine answers."""
    problem = engine_problem()
    if problem is not None:
        pytest.skip(problem)


def build_once(tag: str, shared: Path) -> None:
    """Build ``tag`` once per test session, however many xdist workers need it.

    The first worker to get here builds under a lock; the others wait for it and
    find the image built (a build that failed is tried again by the next one, so
    each reports its own failure). :func:`start_early_build` gets here first,
    in the background, as soon as the tests are collected.
    """
    marker = shared / f"docker-built-{tag.replace('/', '_').replace(':', '_')}"
    with session_lock(shared, "docker-build"):
        if not marker.exists():
            build_image(tag)
            marker.touch()


def image_tag() -> str:
    """The tag the tests build and run (``$CONNSTORM_TEST_IMAGE``, else connstorm:test)."""
    return os.environ.get("CONNSTORM_TEST_IMAGE", "connstorm:test")


def start_early_build(factory: pytest.TempPathFactory) -> threading.Thread | None:
    """Build the image on a background thread while the first tests run.

    Called once per session (by the first xdist worker, or the only process) when
    container tests were collected and an engine answers; :func:`build_once`'s
    lock makes every container test wait for it. A failure is left for the
    tests' own build to report.
    """
    if engine_problem() is not None:
        return None
    shared = shared_folder(factory)

    def build() -> None:
        with contextlib.suppress(BaseException):  # pytest.fail is an exception too
            build_once(image_tag(), shared)

    thread = threading.Thread(target=build, name="docker-build", daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def connstorm_image(docker_engine: None,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The connstorm image built from this checkout; ``CONNSTORM_IMAGE`` points at it."""
    tag = image_tag()
    build_once(tag, shared_folder(tmp_path_factory))
    previous = os.environ.get("CONNSTORM_IMAGE")
    os.environ["CONNSTORM_IMAGE"] = tag
    try:
        yield tag
    finally:
        if previous is None:
            os.environ.pop("CONNSTORM_IMAGE", None)
        else:
            os.environ["CONNSTORM_IMAGE"] = previous


@pytest.fixture(scope="session")
def compose(docker_engine: None) -> list[str]:
    """The compose command line (v2 plugin or v1); skip when neither is installed."""
    command = compose_command()
    if command is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed")
    return command


def containers_labelled(label: str) -> list[str]:
    """Ids of every container (running or not) carrying ``label`` (``key`` or ``key=value``)."""
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return out.split()
