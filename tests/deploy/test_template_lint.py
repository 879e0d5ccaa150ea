"""cfn-lint (with the SAM transform) and ``sam validate --lint`` pass on the template, offline.

Both tools run from ``.venv-tools/`` (see :func:`tests.deploy.cfn.tool`) in an
environment that can reach nothing but a closed port on loopback and has no
credentials (:func:`tests.deploy.cfn.offline_env`). cfn-lint evaluates
conditions statically, and also lints with each combination of the
parameters that switch resources on and off. A template with a dangling
reference is refused by both: the checks can fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.cfn import TEMPLATE, offline_env, tool

TIMEOUT_S = 240
#: Parameter sets that switch conditional resources on and off (and pass the Rules).
COMBINATIONS = [
    [],
    ["ConnectMode=direct", "HandlerPattern=module_level", "ApiType=HTTP_AND_REST",
     "DbSslMode=require"],
    ["ConnectMode=proxy", "ProxyIamAuth=DISABLED", "HandlerPattern=secrets_cached",
     "ReservedConcurrency=0", "ProxyDebugLogging=true", "DbEngineVersion=15"],
    ["ConnectMode=direct", "HandlerPattern=iam_token", "ApiType=HTTP_AND_REST",
     "DbSslMode=verify-full", "ProxyDebugLogging=false"],
]


def run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                          env=offline_env(home), cwd=TEMPLATE.parent.parent,
                          stdin=subprocess.DEVNULL)


def broken_copy(tmp_path: Path) -> Path:
    """The template with an output naming a resource that does not exist."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    text = TEMPLATE.read_text(encoding="utf-8").replace(
        "    Value: !Ref Db\n", "    Value: !Ref NoSuchDatabase\n", 1)
    assert "NoSuchDatabase" in text
    path = folder / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("parameters", COMBINATIONS, ids=lambda p: " ".join(p) or "defaults")
def test_cfn_lint_passes(parameters: list[str], tmp_path: Path) -> None:
    # informational checks too (stateful resources say what deletion does)
    argv = [str(tool("cfn-lint")), "--format", "parseable", "--include-checks", "I"]
    if parameters:
        argv += ["--parameters", *parameters]
    done = run([*argv, "--", str(TEMPLATE)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_cfn_lint_refuses_a_dangling_reference(tmp_path: Path) -> None:
    done = run([str(tool("cfn-lint")), "--format", "parseable", "--",
                str(broken_copy(tmp_path))], tmp_path)
    assert done.returncode != 0
    assert "NoSuchDatabase" in done.stdout


@pytest.mark.slow
def test_sam_validate_lint_passes_offline(tmp_path: Path) -> None:
    done = run([str(tool("sam")), "validate", "--lint", "--template-file", str(TEMPLATE),
                "--region", "us-east-1"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


@pytest.mark.slow
def test_sam_validate_lint_refuses_a_dangling_reference(tmp_path: Path) -> None:
    done = run([str(tool("sam")), "validate", "--lint", "--template-file",
                str(broken_copy(tmp_path)), "--region", "us-east-1"], tmp_path)
    assert done.returncode != 0
    assert "NoSuchDatabase" in done.stdout + done.stderr
