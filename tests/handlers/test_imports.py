"""``handlers/`` deploys to AWS without connstorm: it imports only what Lambda has."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import connstorm.handlers as handlers

#: Besides the standard library; the package's own modules import each other
#: relatively, so they run as ``handlers.*`` on AWS and ``connstorm.handlers.*`` here.
ALLOWED = {"psycopg", "psycopg_pool", "boto3", "botocore"}
ROOT = Path(handlers.__file__).resolve().parent


DRIVERS = ROOT / "drivers"


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(level, module)`` of every import in a file (level 0: absolute)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def _declared(folder: Path) -> set[str]:
    """A driver folder's ``IMPORTS`` (its own driver), read without importing it."""
    for node in ast.parse((folder / "__init__.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "IMPORTS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{folder}: __init__.py declares no IMPORTS")


def test_handlers_import_only_stdlib_psycopg_and_boto3() -> None:
    seen: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if DRIVERS in path.parents:
            continue
        for level, name in _imports(path):
            if level == 0:
                seen.setdefault(name.split(".")[0], set()).add(path.name)
    foreign = {top: files for top, files in seen.items()
               if top not in ALLOWED and top not in sys.stdlib_module_names}
    assert foreign == {}
    assert "psycopg" in seen


def test_each_driver_folder_imports_only_its_own_driver() -> None:
    """``handlers/drivers/<config>/`` may import what its IMPORTS names, nothing else.

    Shared modules at ``handlers/drivers/*.py`` are standard library only (every
    configuration loads them), and a folder may borrow from a sibling only when
    the sibling needs no driver it does not have itself (so zipping one
    configuration with its own driver is enough).
    """
    folders = sorted(p.parent for p in DRIVERS.glob("*/__init__.py"))
    assert len(folders) >= 11
    problems: list[str] = []
    for path in sorted(DRIVERS.rglob("*.py")):
        rel = path.relative_to(DRIVERS)
        own = _declared(DRIVERS / rel.parts[0]) if len(rel.parts) > 1 else set()
        for level, name in _imports(path):
            top = name.split(".")[0]
            if level == 0 and top not in own and top not in sys.stdlib_module_names:
                problems.append(f"{rel}: imports {name}")
            if level == len(rel.parts) and top and (DRIVERS / top).is_dir():
                sibling = _declared(DRIVERS / top)
                if not sibling <= own:
                    problems.append(f"{rel}: borrows from {top}, which needs {sibling - own}")
    assert problems == []


def test_every_driver_configuration_has_a_folder_and_a_handler() -> None:
    from connstorm.handlers.drivers import CONFIGS

    names = {c.name for c in CONFIGS}
    folders = {p.parent.name for p in DRIVERS.glob("*/handler.py")}
    assert names == folders
    for config in CONFIGS:
        source = (DRIVERS / config.name / "handler.py").read_text(encoding="utf-8")
        assert "def lambda_handler(event: Any, context: Any)" in source
        assert f'CONFIG = "{config.name}"' in source


def test_every_pattern_has_a_documented_handler() -> None:
    from connstorm.scenario import PATTERNS

    for pattern in PATTERNS:
        source = (ROOT / f"{pattern}_handler.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        for heading in ("What it is", "When it is right", "How it fails"):
            assert heading in doc, f"{pattern}: docstring lacks {heading!r}"
        assert "def lambda_handler(event: Any, context: Any)" in source
