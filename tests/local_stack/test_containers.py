"""The docker backend's failures, without a Docker engine: one line each, nothing left.

``connstorm up --backend docker`` runs as a real subprocess against what a user
may really have: no testcontainers installed (hidden by a ``sys.modules``
entry), no engine (``DOCKER_HOST`` at a dead socket), an engine with no registry
for the reaper's image or without the connstorm image (the stand-in engine of
:mod:`tests.local_stack.engine_stand_in`, driven by the real docker SDK and
testcontainers). ``tests/docker/test_containers.py`` does the same against a
real engine where one answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connstorm.errors import ExitCode
from connstorm.local_stack.containers import DEFAULT_IMAGE
from tests.local_stack.engine_stand_in import EngineStandIn

ROOT = Path(__file__).resolve().parents[2]
#: ``connstorm`` with the docker backend's packages made unimportable, as on a
#: plain ``pip install connstorm``.
WITHOUT_EXTRA = ("import sys; sys.modules['testcontainers'] = None; "
                 "sys.modules['docker'] = None; from connstorm.cli.main import main; "
                 "sys.exit(main(sys.argv[1:]))")


def _up(tmp_path: Path, env: dict[str, str], *, code: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("TESTCONTAINERS_", "DOCKER_", "CONNSTORM_IMAGE"))}
    full_env.update(env)
    head = [sys.executable, "-c", code] if code else [sys.executable, "-m", "connstorm"]
    return subprocess.run([*head, "up", "--backend", "docker", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=full_env, check=False)


def _one_line_error(result: subprocess.CompletedProcess[str], code: ExitCode) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    # A notice that stale scratch folders of dead runs were cleaned may come first.
    lines = [line for line in result.stderr.strip().splitlines()
             if " connstorm.local_stack.scratch " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("connstorm: error: ")
    assert result.returncode == code, result.stderr
    return lines[0]


def _nothing_left(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert not (run / "stack.json").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run" and p.suffix != ".sock"]
    assert leftovers == []


def test_pyproject_declares_the_docker_extra_and_the_manual_names_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    docker = " ".join(project["optional-dependencies"]["docker"])
    assert "testcontainers" in docker
    assert "docker>=" in docker
    assert "pip install 'connstorm[docker]'" in (ROOT / "docs" / "containers.md").read_text()


def test_up_docker_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    result = _up(tmp_path, {}, code=WITHOUT_EXTRA)
    line = _one_line_error(result, ExitCode.ENVIRONMENT)
    assert "pip install 'connstorm[docker]'" in line
    _nothing_left(tmp_path)


def test_up_docker_with_no_engine_is_one_line(tmp_path: Path) -> None:
    result = _up(tmp_path, {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    line = _one_line_error(result, ExitCode.ENVIRONMENT)
    assert "no Docker engine answers" in line
    assert 'backend = "native"' in line
    _nothing_left(tmp_path)


def test_up_docker_reaper_without_registry_names_the_fix(tmp_path: Path) -> None:
    # GIVEN an engine that has the connstorm image but reaches no registry
    with EngineStandIn(tmp_path, images={DEFAULT_IMAGE}) as engine:
        # WHEN the reaper is left enabled (testcontainers' default)
        result = _up(tmp_path, {"DOCKER_HOST": engine.url})
        # THEN one line names the reaper and the setting that does without it
        line = _one_line_error(result, ExitCode.ENVIRONMENT)
        assert "reaper" in line
        assert "TESTCONTAINERS_RYUK_DISABLED=true" in line
        assert "POST /images/create" in engine.calls
        assert engine.created == []
    _nothing_left(tmp_path)


def test_up_docker_missing_image_says_how_to_build_it(tmp_path: Path) -> None:
    with EngineStandIn(tmp_path, images={DEFAULT_IMAGE}) as engine:
        result = _up(tmp_path, {"DOCKER_HOST": engine.url, "TESTCONTAINERS_RYUK_DISABLED": "true",
                                "CONNSTORM_IMAGE": "connstorm-never-built:none"})
        line = _one_line_error(result, ExitCode.ENVIRONMENT)
        assert "docker build -t connstorm-never-built:none ." in line
        assert engine.created == []
    _nothing_left(tmp_path)


def test_up_docker_container_refused_is_one_line_and_stop_does_not_raise(tmp_path: Path) -> None:
    # GIVEN an engine that has the image but refuses to create the container
    # (the stand-in answers 500), so the start stops half way
    with EngineStandIn(tmp_path, images={DEFAULT_IMAGE}) as engine:
        result = _up(tmp_path, {"DOCKER_HOST": engine.url,
                                "TESTCONTAINERS_RYUK_DISABLED": "true"})
        # THEN the stack's stop after that half start raised nothing more
        line = _one_line_error(result, ExitCode.STACK)
        assert "postgres container did not start" in line
        assert "Container is not started" not in result.stderr
        assert engine.created != []
    _nothing_left(tmp_path)


def test_stop_after_a_half_start_does_not_raise(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from testcontainers.core.config import testcontainers_config

    from connstorm.errors import StackError
    from connstorm.local_stack.containers import PostgresContainer
    from connstorm.scenario import load_scenario

    with EngineStandIn(tmp_path, images={DEFAULT_IMAGE}) as engine:
        monkeypatch.setenv("DOCKER_HOST", engine.url)
        # (the docker tests' session fixture points CONNSTORM_IMAGE at its own build)
        monkeypatch.delenv("CONNSTORM_IMAGE", raising=False)
        monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
        server = PostgresContainer(load_scenario("direct-small").postgres, tmp_path / "run")
        with pytest.raises(StackError, match="did not start"):
            server.start()
        server.stop()
        server.stop()
        assert not server.running()
        assert server.container_id is None
