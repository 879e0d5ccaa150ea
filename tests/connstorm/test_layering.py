"""The package layering: the command line on top, nothing below importing it back.

``connstorm/cli.py`` and ``connstorm/commands/`` use everything; the scenario
model, errors and error kinds in ``connstorm/`` are the base every package
imports. A module below the command line that imported it would pull argparse
set-up and every command into servers and handlers, and make cycles easy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connstorm", "local_stack", "loadtests", "reports", "handlers")
COMMAND_LINE = ("connstorm.cli", "connstorm.commands", "connstorm.__main__")
#: The house limit is ~500 lines a module (style guide: one module per noun).
MAX_LINES = 520


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", [p for p in _sources()
                                  if not _module(p).startswith(COMMAND_LINE)],
                         ids=lambda p: _module(p))
def test_layering_nothing_below_the_command_line_imports_it(path: Path) -> None:
    upward = {name for name in _imports(path) if name.startswith(COMMAND_LINE)}
    assert not upward, f"{_module(path)} imports the command line: {sorted(upward)}"


def test_layering_the_base_imports_without_the_command_line() -> None:
    code = ("import sys, connstorm.scenario, connstorm.errors, connstorm.error_kinds, "
            "connstorm.scenario_schema; "
            "print([m for m in sys.modules if m.startswith(('connstorm.cli', "
            "'connstorm.commands', 'locust', 'local_stack.lambda_.emulator'))])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: _module(p))
def test_layering_no_module_is_over_the_house_size(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_module(path)} has {lines} lines; split it by concept"
